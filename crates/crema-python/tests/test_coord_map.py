"""caffe.coord_map on an FCN-style NetSpec net: offsets worked out by hand
from the receptive-field geometry, then the Crop it writes run in crema."""
import numpy as np
import pytest

import caffe
from caffe import coord_map
from caffe import layers as L, params as P


def fcn():
    """data 32x32 -> conv 3x3 pad 10 -> max pool 2/2 -> 1x1 score -> 4x4 /2 deconvolution."""
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 32, 32]))
    n.conv1 = L.Convolution(n.data, kernel_size=3, pad=10, num_output=2,
                            weight_filler=dict(type="gaussian", std=0.1))
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.score = L.Convolution(n.pool1, kernel_size=1, num_output=2, weight_filler=dict(type="gaussian", std=0.1))
    n.upscore = L.Deconvolution(n.score, convolution_param=dict(kernel_size=4, stride=2, num_output=2,
                                                                weight_filler=dict(type="gaussian", std=0.1)))
    return n


def flat(m):
    """(axis, scale, shift) with the one-element arrays as floats."""
    return m[0], np.asarray(m[1], dtype=float).item(), np.asarray(m[2], dtype=float).item()


def test_single_layer_maps_follow_the_receptive_field_centres():
    n = fcn()
    # Output i of a k x k, stride s, pad p convolution is centred on input s*i - p + (k-1)/2.
    assert flat(coord_map.coord_map(n.conv1.fn)) == (1, 1, 9)  # input x -> x + 9
    assert flat(coord_map.coord_map(n.pool1.fn)) == (1, 0.5, -0.25)  # (x - 0.5) / 2
    assert flat(coord_map.coord_map(n.upscore.fn)) == (1, 2, 1.5)  # 2x + (4-1)/2
    assert flat(coord_map.coord_map(n.relu1.fn)) == (None, 1, 0)
    with pytest.raises(coord_map.UndefinedMapException):
        coord_map.coord_map(L.InnerProduct(n.data, num_output=1).fn)


def test_map_from_the_upsampled_score_to_the_input_and_its_crop():
    n = fcn()
    # data x -> conv x+9 -> pool (x+9)/2 - 0.25 -> score -> upscore 2*(...) + 1.5 = x + 10.
    assert flat(coord_map.coord_map_from_to(n.upscore, n.data)) == (1, 1, -10)
    assert flat(coord_map.coord_map_from_to(n.data, n.upscore)) == (1, 1, 10)
    n.crop = coord_map.crop(n.upscore, n.data)
    crop = n.to_proto().layer[-1]
    assert crop.type == "Crop" and list(crop.bottom) == ["upscore", "data"]
    assert crop.crop_param.axis == 2 and list(crop.crop_param.offset) == [10]


def test_the_crop_runs_in_crema_and_cuts_the_aligned_window(tmp_path):
    if "Crop" not in caffe.layer_type_list():
        print("!!! skipped: this crema build has no Crop layer yet")
        pytest.skip("skipped: this crema build has no Crop layer yet")
    n = fcn()
    n.crop = coord_map.crop(n.upscore, n.data)
    path = tmp_path / "fcn.prototxt"
    path.write_text(str(n.to_proto()))
    net = caffe.Net(str(path), caffe.TEST)
    # 32 + 2*10 - 2 = 50 -> pool 25 -> deconv (25-1)*2 + 4 = 52 >= 10 + 32.
    assert net.blobs["upscore"].shape == (1, 2, 52, 52)
    net.forward(data=np.random.RandomState(3).rand(1, 1, 32, 32).astype(np.float32))
    assert net.blobs["crop"].shape == (1, 2, 32, 32)
    np.testing.assert_array_equal(net.blobs["crop"].data, net.blobs["upscore"].data[:, :, 10:42, 10:42])


def test_compose_and_inverse():
    assert coord_map.compose((None, 1, 0), (2, 3, 1)) == (2, 3, 1)
    assert coord_map.compose((2, 2, 1), (2, 3, 4)) == (2, 6, 9)
    assert coord_map.inverse((1, 2.0, 3.0)) == (1, 0.5, -1.5)
    with pytest.raises(coord_map.AxisMismatchException):
        coord_map.compose((1, 1, 0), (2, 1, 0))


def test_crop_refuses_what_cannot_be_cropped():
    n = fcn()
    with pytest.raises(ValueError, match="scale"):
        coord_map.crop(n.pool1, n.data)  # half the resolution
    with pytest.raises(ValueError, match="negative"):
        coord_map.crop(n.data, n.upscore)  # data lies inside upscore
    other = L.Input(shape=dict(dim=[1, 1, 4, 4]))
    with pytest.raises(RuntimeError, match="no ancestor"):
        coord_map.coord_map_from_to(n.upscore, other)
