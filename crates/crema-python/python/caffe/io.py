"""Conversions between numpy arrays and Caffe's messages (BlobProto,
BlobProtoVector, Datum), pycaffe's ``caffe.io``, and the Transformer that
turns H x W x K images into a net's C x H x W input and back."""
import numpy as np

from . import _caffe
from .proto import caffe_pb2


def blobproto_to_array(blob, return_diff=False):
    """A BlobProto's data (or diff) as an array of its shape; blobs saved
    before N-D shapes existed use num/channels/height/width."""
    values = blob.diff if return_diff else blob.data
    if blob.HasField("shape"):
        shape = tuple(blob.shape.dim)
    else:
        shape = (blob.num, blob.channels, blob.height, blob.width)
    return np.array(values).reshape(shape)


def array_to_blobproto(arr, diff=None):
    """A BlobProto with ``arr``'s shape and values (and ``diff``'s, when given)."""
    arr = np.asarray(arr)
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(arr.shape)
    blob.data.extend(arr.astype(float).flat)
    if diff is not None:
        diff = np.asarray(diff)
        if diff.shape != arr.shape:
            raise ValueError("diff shape %s differs from data shape %s" % (diff.shape, arr.shape))
        blob.diff.extend(diff.astype(float).flat)
    return blob


def arraylist_to_blobprotovector_str(arraylist):
    """A serialized BlobProtoVector of the arrays."""
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend([array_to_blobproto(a) for a in arraylist])
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(serialized):
    """The arrays of a serialized BlobProtoVector."""
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(serialized)
    return [blobproto_to_array(b) for b in vec.blobs]


def array_to_datum(arr, label=None):
    """A Datum of a C x H x W array: bytes for uint8, float_data otherwise."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError("a Datum holds a 3-D (channels, height, width) array, not %d-D" % arr.ndim)
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = arr.shape
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(float).flat)
    if label is not None:
        datum.label = label
    return datum


def datum_to_array(datum):
    """A Datum's C x H x W array (uint8 from its bytes, float from float_data)."""
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
    return np.array(datum.float_data).astype(float).reshape(shape)


def load_image(filename, color=True):
    """A JPEG or PNG as an H x W x K float32 array in [0, 1], channels RGB
    (K = 3; gray files are replicated) or gray (K = 1) when ``color`` is false.
    Decoded by crema's image reader; gray from colour uses the BT.601 weights
    of Caffe's C++ tools."""
    img = _caffe._read_image(str(filename), bool(color))
    if color:
        img = img[:, :, ::-1]  # crema decodes to Caffe's BGR; pycaffe's images are RGB
    return img.astype(np.float32) / 255.0


def resize_image(im, new_dims, interp_order=1):
    """Resizes an H x W x K image to ``new_dims`` (height, width), every channel
    alike: interp_order 1 is bilinear, 0 nearest, both with pixel centres
    aligned ((i + 0.5) * scale - 0.5) and edges clamped, as Caffe's data layers
    resize. Returns float32."""
    im = np.asarray(im, dtype=np.float32)
    h, w = im.shape[:2]
    nh, nw = int(new_dims[0]), int(new_dims[1])
    if (nh, nw) == (h, w):
        return im.copy()
    if nh <= 0 or nw <= 0 or h == 0 or w == 0:
        raise ValueError("cannot resize a %dx%d image to %dx%d" % (h, w, nh, nw))
    if interp_order == 0:
        ys = np.minimum(((np.arange(nh) + 0.5) * h / nh).astype(int), h - 1)
        xs = np.minimum(((np.arange(nw) + 0.5) * w / nw).astype(int), w - 1)
        return im[ys][:, xs].copy()
    if interp_order != 1:
        raise ValueError("interp_order must be 0 (nearest) or 1 (bilinear), not %r" % (interp_order,))

    def taps(n_out, n_in):
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    y0, y1, wy = taps(nh, h)
    x0, x1, wx = taps(nw, w)
    wy = wy.reshape((nh, 1) + (1,) * (im.ndim - 2))
    wx = wx.reshape((1, nw) + (1,) * (im.ndim - 2))
    top = im[y0][:, x0] * (1 - wx) + im[y0][:, x1] * wx
    bottom = im[y1][:, x0] * (1 - wx) + im[y1][:, x1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


def oversample(images, crop_dims):
    """Ten crops of each H x W x K image: the four corners and the center, then
    the same five mirrored left-right. Returns (10 * len(images), h, w, K)."""
    crop_h, crop_w = (int(d) for d in crop_dims)
    out = []
    for im in images:
        im = np.asarray(im)
        h, w = im.shape[:2]
        if crop_h > h or crop_w > w:
            raise ValueError("crop %dx%d is larger than the image %dx%d" % (crop_h, crop_w, h, w))
        top, left = (h - crop_h) // 2, (w - crop_w) // 2
        corners = [(0, 0), (0, w - crop_w), (h - crop_h, 0), (h - crop_h, w - crop_w), (top, left)]
        crops = [im[y:y + crop_h, x:x + crop_w] for y, x in corners]
        out.extend(crops)
        out.extend(c[:, ::-1] for c in crops)
    return np.asarray(out, dtype=np.float32)


class Transformer:
    """Prepares images for a net's inputs: ``inputs`` maps input name to its
    blob shape (N, C, H, W). preprocess applies, in order: transpose, channel
    swap, raw scale, mean subtraction, input scale; deprocess undoes them."""

    def __init__(self, inputs):
        self.inputs = {k: tuple(v) for k, v in inputs.items()}
        self.transpose = {}
        self.channel_swap = {}
        self.raw_scale = {}
        self.mean = {}
        self.input_scale = {}

    def _check_input(self, in_):
        if in_ not in self.inputs:
            raise KeyError("%r is not one of the inputs %s" % (in_, sorted(self.inputs)))

    def preprocess(self, in_, data):
        """An H x W x K image as the C x H x W float32 input of ``in_``; an
        image of another height and width is resized (bilinear) first."""
        self._check_input(in_)
        out = np.array(data, dtype=np.float32)
        if out.ndim != 3:
            raise ValueError("preprocess takes one H x W x K image, not an array of shape %s" % (out.shape,))
        want = tuple(self.inputs[in_][2:])
        if out.shape[:2] != want:
            out = resize_image(out, want)
        if in_ in self.transpose:
            out = out.transpose(self.transpose[in_])
        if in_ in self.channel_swap:
            out = out[list(self.channel_swap[in_]), :, :]
        if in_ in self.raw_scale:
            out *= self.raw_scale[in_]
        if in_ in self.mean:
            out -= self.mean[in_]
        if in_ in self.input_scale:
            out *= self.input_scale[in_]
        return out

    def deprocess(self, in_, data):
        """The inverse of preprocess: a net input back to an H x W x K image."""
        self._check_input(in_)
        out = np.array(data, dtype=np.float32).squeeze()
        if in_ in self.input_scale:
            out /= self.input_scale[in_]
        if in_ in self.mean:
            out += self.mean[in_]
        if in_ in self.raw_scale:
            out /= self.raw_scale[in_]
        if in_ in self.channel_swap:
            out = out[np.argsort(self.channel_swap[in_]), :, :]
        if in_ in self.transpose:
            out = out.transpose(np.argsort(self.transpose[in_]))
        return out

    def set_transpose(self, in_, order):
        """The axis order that takes the image (H, W, K) to the input's (C, H, W), e.g. (2, 0, 1)."""
        self._check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise ValueError("transpose order %s needs %d axes" % (tuple(order), len(self.inputs[in_]) - 1))
        self.transpose[in_] = tuple(order)

    def set_channel_swap(self, in_, order):
        """A channel permutation after transposing, e.g. (2, 1, 0) for RGB to BGR."""
        self._check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise ValueError("channel order %s needs %d channels" % (tuple(order), self.inputs[in_][1]))
        self.channel_swap[in_] = tuple(order)

    def set_raw_scale(self, in_, scale):
        """A factor applied before the mean (e.g. 255 for images loaded in [0, 1])."""
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_, mean):
        """A per-channel mean (shape (C,)) or a C x H x W mean image to subtract."""
        self._check_input(in_)
        mean = np.asarray(mean, dtype=np.float32)
        channels, rest = self.inputs[in_][1], self.inputs[in_][2:]
        if mean.ndim == 1:
            if mean.shape[0] != channels:
                raise ValueError("mean of %d channels for an input of %d" % (mean.shape[0], channels))
            mean = mean[:, None, None]
        else:
            if mean.ndim == 2:
                mean = mean[None]
            if mean.shape != (channels,) + tuple(rest):
                raise ValueError("mean shape %s differs from the input's %s" % (mean.shape, (channels,) + tuple(rest)))
        self.mean[in_] = mean

    def set_input_scale(self, in_, scale):
        """A factor applied after the mean is subtracted."""
        self._check_input(in_)
        self.input_scale[in_] = scale
