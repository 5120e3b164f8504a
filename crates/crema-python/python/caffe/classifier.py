"""caffe.Classifier: a Net that takes H x W x K images, resizes, crops
(centre, or ten crops averaged), preprocesses and returns class scores."""
import numpy as np

from . import io
from .pycaffe import Net, TEST_PHASE


def input_transformer(net, mean, input_scale, raw_scale, channel_swap):
    """The Transformer Classifier and Detector set up for a net's first input:
    images H x W x C to C x H x W, then each given preprocessing step."""
    in_ = net.inputs[0]
    t = io.Transformer({in_: net.blobs[in_].shape})
    t.set_transpose(in_, (2, 0, 1))
    if mean is not None:
        t.set_mean(in_, mean)
    if input_scale is not None:
        t.set_input_scale(in_, input_scale)
    if raw_scale is not None:
        t.set_raw_scale(in_, raw_scale)
    if channel_swap is not None:
        t.set_channel_swap(in_, channel_swap)
    return t


class Classifier(Net):
    """``Classifier(model_file, pretrained_file, image_dims=None, mean=None,
    input_scale=None, raw_scale=None, channel_swap=None)``: the net in TEST
    phase with a Transformer for its first input (images transposed to C x H x W)."""

    def __init__(self, model_file, pretrained_file, image_dims=None, mean=None,
                 input_scale=None, raw_scale=None, channel_swap=None):
        Net.__init__(self, model_file, pretrained_file, TEST_PHASE)
        in_ = self.inputs[0]
        self.transformer = input_transformer(self, mean, input_scale, raw_scale, channel_swap)
        self.crop_dims = np.array(self.blobs[in_].shape[2:])
        self.image_dims = np.array(image_dims if image_dims is not None else self.crop_dims)

    def predict(self, inputs, oversample=True):
        """Class scores (N x classes) of H x W x K images: each is resized to
        image_dims, then either cut into ten crops whose scores are averaged
        (oversample) or cropped at the centre."""
        h, w = (int(d) for d in self.image_dims)
        images = np.zeros((len(inputs), h, w, np.asarray(inputs[0]).shape[2]), dtype=np.float32)
        for i, im in enumerate(inputs):
            images[i] = io.resize_image(im, (h, w))
        if oversample:
            images = io.oversample(images, self.crop_dims)
        else:
            ch, cw = (int(d) for d in self.crop_dims)
            top, left = (h - ch) // 2, (w - cw) // 2
            images = images[:, top:top + ch, left:left + cw, :]
        in_ = self.inputs[0]
        batch = np.asarray([self.transformer.preprocess(in_, im) for im in images], dtype=np.float32)
        scores = self.forward_all(**{in_: batch})[self.outputs[0]]
        if oversample:
            scores = scores.reshape((len(scores) // 10, 10, -1)).mean(axis=1)
        return scores
