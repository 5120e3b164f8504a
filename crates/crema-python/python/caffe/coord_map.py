"""Spatial correspondence between the tops of a NetSpec net, for aligning
feature maps (FCN's crops of upsampled scores to the input).

A coordinate map is (axis, scale, shift): a point at coordinate x of the
earlier blob lands at ``scale * x + shift`` of the later one. axis None means
the map holds for any axis (pointwise layers). Maps compose along the graph
and invert for the way back.
"""
import numpy as np

from .net_spec import layers as L

# Layers whose top has the coordinates of their bottom.
PASS_THROUGH_LAYERS = ["AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Log", "LRN",
                       "Exp", "MVN", "Power", "ReLU", "PReLU", "Scale", "Sigmoid", "Split", "TanH",
                       "Threshold"]


class UndefinedMapException(Exception):
    """The layer has no coordinate map (InnerProduct, for instance)."""


class AxisMismatchException(Exception):
    """Two maps act on different axes and cannot compose."""


def conv_params(fn):
    """(axis, stride, effective kernel extent, pad) of a Convolution,
    Deconvolution, Im2col (convolution_param) or Pooling (its own fields)."""
    params = fn.params.get("convolution_param", fn.params)
    legacy = {"pad_h", "pad_w", "kernel_h", "kernel_w", "stride_h", "stride_w"} & set(params)
    if legacy:
        raise ValueError("coord_map: %s uses %s; only kernel_size/stride/pad are supported"
                         % (fn.type_name, sorted(legacy)))
    if "kernel_size" not in params:
        raise ValueError("coord_map: %s has no kernel_size" % fn.type_name)
    axis = params.get("axis", 1)
    ks = np.array(params["kernel_size"], ndmin=1)
    dilation = np.array(params.get("dilation", 1), ndmin=1)
    return (axis, np.array(params.get("stride", 1), ndmin=1), (ks - 1) * dilation + 1,
            np.array(params.get("pad", 0), ndmin=1))


def crop_params(fn):
    """(axis, offset) of a Crop layer, with Caffe's defaults (axis 2, offset 0)."""
    params = fn.params.get("crop_param", fn.params)
    return params.get("axis", 2), np.array(params.get("offset", 0), ndmin=1)


def coord_map(fn):
    """The map from a layer's (first) bottom to its top. The axis is that of
    the last non-spatial dimension (1 for N x C x H x W)."""
    if fn.type_name in ("Convolution", "Pooling", "Im2col"):
        axis, stride, ks, pad = conv_params(fn)
        # Output i covers inputs stride*i - pad .. + ks - 1; its centre is the image of i.
        return axis, 1 / stride, (pad - (ks - 1) / 2) / stride
    if fn.type_name == "Deconvolution":
        axis, stride, ks, pad = conv_params(fn)
        return axis, stride, (ks - 1) / 2 - pad
    if fn.type_name in PASS_THROUGH_LAYERS:
        return None, 1, 0
    if fn.type_name == "Crop":
        axis, offset = crop_params(fn)
        return axis - 1, 1, -offset
    raise UndefinedMapException(fn.type_name)


def compose(base_map, next_map):
    """``next_map`` after ``base_map``: scales multiply, the later shift is
    scaled by the earlier scale."""
    ax1, a1, b1 = base_map
    ax2, a2, b2 = next_map
    if ax1 is None:
        ax = ax2
    elif ax2 is None or ax1 == ax2:
        ax = ax1
    else:
        raise AxisMismatchException("axes %s and %s" % (ax1, ax2))
    return ax, a1 * a2, a1 * b2 + b1


def inverse(coord_map):
    """The map back: x = (y - shift) / scale."""
    ax, a, b = coord_map
    return ax, 1 / a, -b / a


def _mapped_bottoms(top):
    # A Crop's second bottom only gives the size: coordinates follow the first.
    bottoms = top.fn.inputs
    return bottoms[:1] if top.fn.type_name == "Crop" else bottoms


def _maps_to_ancestors(top):
    """{ancestor top: map from that ancestor's coordinates to ``top``'s}."""
    maps = {top: (None, 1, 0)}
    frontier = [top]
    while frontier:
        t = frontier.pop()
        try:
            step = coord_map(t.fn)
        except UndefinedMapException:
            continue
        for bottom in _mapped_bottoms(t):
            if bottom not in maps:
                maps[bottom] = compose(maps[t], step)
                frontier.append(bottom)
    return maps


def coord_map_from_to(top_from, top_to):
    """The map from ``top_from``'s coordinates to ``top_to``'s, through the
    nearest blob both derive from by spatial layers."""
    from_maps = _maps_to_ancestors(top_from)
    frontier, to_maps = [top_to], {top_to: (None, 1, 0)}
    while frontier:
        t = frontier.pop(0)  # breadth first: the nearest common ancestor
        if t in from_maps:
            return compose(to_maps[t], inverse(from_maps[t]))
        try:
            step = coord_map(t.fn)
        except UndefinedMapException:
            continue
        for bottom in _mapped_bottoms(t):
            if bottom not in to_maps:
                to_maps[bottom] = compose(to_maps[t], step)
                frontier.append(bottom)
    raise RuntimeError("coord_map: the two tops share no ancestor through spatial layers")


def crop(top_from, top_to):
    """A Crop layer that cuts ``top_from`` to ``top_to``'s extent, aligned:
    its axis and offsets come from the coordinate map between them."""
    ax, a, b = coord_map_from_to(top_from, top_to)
    if ax is None:
        raise ValueError("coord_map.crop: only pointwise layers lie between the tops; nothing to crop")
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not (a == 1).all():
        raise ValueError("coord_map.crop: the tops differ in scale (a = %s)" % a)
    if not (b <= 0).all():
        raise ValueError("coord_map.crop: a negative offset is needed (b = %s)" % b)
    if not (np.round(b) == b).all():
        raise ValueError("coord_map.crop: the offset is not whole (b = %s)" % b)
    return L.Crop(top_from, top_to,
                  crop_param=dict(axis=ax + 1, offset=[int(v) for v in -np.round(b)]))
