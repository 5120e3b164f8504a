"""caffe.Detector: windowed detection as in R-CNN (Girshick et al., "Rich
feature hierarchies for accurate object detection and semantic
segmentation"). Each window of an image is cropped (optionally with a border
of context), warped to the net's input size, preprocessed and classified in
batches."""
import os

import numpy as np

from . import io
from .classifier import input_transformer
from .pycaffe import Net, TEST_PHASE


class Detector(Net):
    """``Detector(model_file, pretrained_file, mean=None, input_scale=None,
    raw_scale=None, channel_swap=None, context_pad=None)``: the net in TEST
    phase with a Transformer for its first input (images transposed to
    C x H x W). ``context_pad`` pixels of the net's input are context around
    each window, as R-CNN extracts features."""

    def __init__(self, model_file, pretrained_file, mean=None, input_scale=None,
                 raw_scale=None, channel_swap=None, context_pad=None):
        Net.__init__(self, model_file, TEST_PHASE, weights=pretrained_file)
        self.transformer = input_transformer(self, mean, input_scale, raw_scale, channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows):
        """Classifies windows of images. ``images_windows``: (image filename,
        windows) pairs, each window (ymin, xmin, ymax, xmax). Returns one dict
        per window, in order: {'filename', 'window', 'prediction'}."""
        images_windows = [(fname, [np.asarray(w) for w in windows]) for fname, windows in images_windows]
        crops = []
        for fname, windows in images_windows:
            image = io.load_image(fname).astype(np.float32)
            crops.extend(self.crop(image, w) for w in windows)
        if not crops:
            return []
        in_ = self.inputs[0]
        batch = np.asarray([self.transformer.preprocess(in_, c) for c in crops], dtype=np.float32)
        predictions = self.forward_all(**{in_: batch})[self.outputs[0]]
        detections, i = [], 0
        for fname, windows in images_windows:
            for w in windows:
                detections.append({"window": w, "prediction": predictions[i], "filename": fname})
                i += 1
        return detections

    def detect_selective_search(self, image_fnames):
        """detect_windows over Selective Search proposals, which need the
        `selective_search_ijcv_with_python` package (and MATLAB) installed."""
        try:
            import selective_search_ijcv_with_python as selective_search
        except ImportError as e:
            raise ImportError(
                "detect_selective_search needs the selective_search_ijcv_with_python package "
                "(https://github.com/sergeyk/selective_search_ijcv_with_python); "
                "use detect_windows with your own windows instead"
            ) from e
        # Absolute paths: the proposals are computed by MATLAB in another directory.
        image_fnames = [os.path.abspath(f) for f in image_fnames]
        windows = selective_search.get_windows(image_fnames, cmd="selective_search_rcnn")
        return self.detect_windows(zip(image_fnames, windows))

    def crop(self, im, window):
        """The window (ymin, xmin, ymax, xmax) of an H x W x K image. With
        context_pad, the box is enlarged so that, once warped to the input
        size, ``context_pad`` pixels on each side are surroundings; parts
        outside the image are filled with the mean (in image space)."""
        window = np.asarray(window)
        if not self.context_pad:
            return im[int(window[0]):int(window[2]), int(window[1]):int(window[3])]
        crop_size = self.blobs[self.inputs[0]].width  # R-CNN's inputs are square
        scale = crop_size / (1.0 * crop_size - self.context_pad * 2)
        half_h = (window[2] - window[0] + 1) / 2.0
        half_w = (window[3] - window[1] + 1) / 2.0
        center = (window[0] + half_h, window[1] + half_w)
        box = np.round(np.tile(center, 2) + scale * np.array((-half_h, -half_w, half_h, half_w)))
        scale_h = crop_size / (box[2] - box[0] + 1)
        scale_w = crop_size / (box[3] - box[1] + 1)
        # How far the enlarged box reaches outside the image, in input pixels.
        pad_y = int(round(max(0, -box[0]) * scale_h))
        pad_x = int(round(max(0, -box[1]) * scale_w))
        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0.0, [im_h, im_w, im_h, im_w])
        clip_h, clip_w = box[2] - box[0] + 1, box[3] - box[1] + 1
        if clip_h <= 0 or clip_w <= 0:
            raise ValueError("window %s lies outside the %dx%d image" % (tuple(window), im_h, im_w))
        crop_h = min(int(round(clip_h * scale_h)), crop_size - pad_y)
        crop_w = min(int(round(clip_w * scale_w)), crop_size - pad_x)
        context = im[int(box[0]):int(box[2]), int(box[1]):int(box[3])]
        out = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        out[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = io.resize_image(context, (crop_h, crop_w))
        return out

    def configure_crop(self, context_pad):
        """Sets the crop size (the input's, as H x W x K) and the context
        border; with context, the mean that fills the outside of the image is
        taken back to image space (channel order and raw scale undone)."""
        in_ = self.inputs[0]
        tpose = self.transformer.transpose[in_]
        inv_tpose = [tpose[t] for t in tpose]
        self.crop_dims = np.array(self.blobs[in_].shape[1:])[inv_tpose]
        self.context_pad = context_pad
        if not context_pad:
            return
        mean = self.transformer.mean.get(in_)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
            return
        crop_mean = np.array(mean, dtype=np.float32).transpose(inv_tpose)
        order = self.transformer.channel_swap.get(in_)
        if order is not None:
            crop_mean = crop_mean[:, :, [list(order).index(i) for i in range(crop_mean.shape[2])]]
        raw_scale = self.transformer.raw_scale.get(in_)
        if raw_scale is not None:
            crop_mean = crop_mean / raw_scale
        self.crop_mean = crop_mean
