"""caffe.Net on LeNet and small nets, checked against numpy and google.protobuf."""
import gc

import numpy as np
import pytest
from google.protobuf import text_format

import caffe
from caffe.proto import caffe_pb2

from conftest import blob_array, need, read_idx


def caffemodel_params(path):
    """layer name -> list of arrays, parsed by google.protobuf (not crema)."""
    net = caffe_pb2.NetParameter()
    net.ParseFromString(path.read_bytes())
    layers = list(net.layer) or list(net.layers)
    return {l.name: [blob_array(b) for b in l.blobs] for l in layers if len(l.blobs)}


def test_lenet_classifies_mnist_t10k_like_caffe(lenet):
    images = read_idx(need("mnist", "t10k-images-idx3-ubyte")).astype(np.float32)
    labels = read_idx(need("mnist", "t10k-labels-idx1-ubyte"))
    net = caffe.Net(str(lenet[0]), caffe.TEST, weights=str(lenet[1]))
    net.blobs["data"].reshape(100, 1, 28, 28)
    net.reshape()
    correct = 0
    for i in range(0, len(images), 100):
        net.blobs["data"].data[...] = images[i:i + 100, None] * 0.00390625
        prob = net.forward()["prob"]
        correct += int((prob.argmax(axis=1) == labels[i:i + 100]).sum())
    assert abs(correct - 9912) <= 3, correct


def test_legacy_argument_order_loads_the_same_weights(lenet):
    a = caffe.Net(str(lenet[0]), str(lenet[1]), caffe.TEST)
    b = caffe.Net(str(lenet[0]), caffe.TEST, weights=str(lenet[1]))
    np.testing.assert_array_equal(a.params["ip2"][0].data, b.params["ip2"][0].data)


def test_params_match_the_caffemodel_parsed_by_protobuf(lenet):
    net = caffe.Net(str(lenet[0]), caffe.TEST, weights=str(lenet[1]))
    expected = caffemodel_params(lenet[1])
    assert list(net.params) == ["conv1", "conv2", "ip1", "ip2"]
    for name, blobs in net.params.items():
        assert [b.data.shape for b in blobs] == [tuple(a.shape[-len(b.shape):]) for a, b in zip(expected[name], blobs)]
        for blob, arr in zip(blobs, expected[name]):
            np.testing.assert_array_equal(blob.data, arr.reshape(blob.shape))
            assert blob.count == arr.size


def test_copy_from_and_save_round_trip(lenet, tmp_path):
    net = caffe.Net(str(lenet[0]), caffe.TEST)
    net.copy_from(str(lenet[1]))
    out = tmp_path / "saved.caffemodel"
    net.save(str(out))
    saved = caffemodel_params(out)
    for name, arrays in caffemodel_params(lenet[1]).items():
        for a, b in zip(arrays, saved[name]):
            np.testing.assert_array_equal(a.ravel(), b.ravel())


def test_structure_names_follow_the_prototxt(lenet):
    net = caffe.Net(str(lenet[0]), caffe.TEST)
    param = text_format.Merge(lenet[0].read_text(), caffe_pb2.NetParameter())
    assert list(net._layer_names) == [l.name for l in param.layer]
    assert [l.type for l in net.layers] == [l.type for l in param.layer]
    assert list(net.layer_dict) == list(net._layer_names)
    assert net.inputs == ["data"] and net.outputs == ["prob"]
    for l in param.layer:
        assert net.top_names[l.name] == list(l.top)
        assert net.bottom_names[l.name] == list(l.bottom)
    blob = net.blobs["conv1"]
    assert blob.shape == (64, 20, 24, 24)
    assert (blob.num, blob.channels, blob.height, blob.width) == (64, 20, 24, 24)
    assert blob.count == 64 * 20 * 24 * 24
    assert set(net.blob_loss_weights.values()) == {0.0}


def conv1_numpy(x, w, b):
    """Caffe's convolution (cross-correlation, stride 1, no pad) in numpy."""
    win = np.lib.stride_tricks.sliding_window_view(x, w.shape[-2:], axis=(2, 3))
    return np.einsum("ncijkl,ockl->noij", win, w) + b[None, :, None, None]


def test_blob_data_aliases_the_net_memory(lenet):
    net = caffe.Net(str(lenet[0]), caffe.TEST, weights=str(lenet[1]))
    data = net.blobs["data"].data
    assert data.flags.writeable and data.dtype == np.float32
    assert net.blobs["data"].data.ctypes.data == data.ctypes.data  # same memory, no copy
    x = np.random.RandomState(0).rand(*data.shape).astype(np.float32)
    data[...] = x
    out = net.forward(end="conv1")
    assert list(out) == ["conv1"]
    w, b = (p.data for p in net.params["conv1"])
    np.testing.assert_allclose(out["conv1"], conv1_numpy(x, w, b), rtol=1e-4, atol=1e-4)
    # A write into a parameter array is what the next forward uses.
    net.params["conv1"][1].data[...] += 1.0
    np.testing.assert_allclose(net.forward(end="conv1")["conv1"], conv1_numpy(x, w, b), rtol=1e-4, atol=1e-4)
    assert np.allclose(b, net.params["conv1"][1].data)


def test_array_outlives_its_net(lenet):
    net = caffe.Net(str(lenet[0]), caffe.TEST, weights=str(lenet[1]))
    weights = net.params["ip1"][0].data
    expected = caffemodel_params(lenet[1])["ip1"][0].reshape(weights.shape)
    del net
    gc.collect()
    junk = [np.ones(500 * 800, dtype=np.float32) for _ in range(8)]  # reuse freed memory if any
    np.testing.assert_array_equal(weights, expected)
    weights[0, 0] = 42.0
    assert weights[0, 0] == 42.0 and len(junk) == 8


def test_forward_start_end_run_only_those_layers(lenet):
    net = caffe.Net(str(lenet[0]), caffe.TEST, weights=str(lenet[1]))
    zeros_prob = net.forward(data=np.zeros(net.blobs["data"].shape, np.float32))["prob"].copy()
    x = np.random.RandomState(1).rand(*net.blobs["data"].shape).astype(np.float32)
    full = net.forward(data=x)["prob"].copy()
    assert not np.allclose(full, zeros_prob)
    net.blobs["data"].data[...] = 0
    out = net.forward(end="conv1", blobs=["data"])
    assert set(out) == {"conv1", "data"}
    np.testing.assert_array_equal(net.blobs["prob"].data, full)  # later layers did not run
    np.testing.assert_allclose(net.forward(start="pool1")["prob"], zeros_prob, rtol=1e-6)
    with pytest.raises(KeyError):
        net.forward(start="no_such_layer")


def test_forward_all_batches_and_drops_padding(lenet):
    images = read_idx(need("mnist", "t10k-images-idx3-ubyte"))[:150, None].astype(np.float32) / 256
    net = caffe.Net(str(lenet[0]), caffe.TEST, weights=str(lenet[1]))
    prob = net.forward_all(data=images)["prob"]
    assert prob.shape == (150, 10)
    net.blobs["data"].reshape(150, 1, 28, 28)
    net.reshape()
    np.testing.assert_allclose(prob, net.forward(data=images)["prob"], rtol=1e-5, atol=1e-6)


IP_EUCLIDEAN = """
name: "ip_euclid"
force_backward: true
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 4 dim: 3 } } }
layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 4 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 }
                        bias_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" top: "loss" }
"""


def test_backward_matches_numpy_gradient(tmp_path):
    path = tmp_path / "ip.prototxt"
    path.write_text(IP_EUCLIDEAN)
    caffe.set_random_seed(7)
    net = caffe.Net(str(path), caffe.TRAIN)
    rs = np.random.RandomState(2)
    x = rs.randn(4, 3).astype(np.float32)
    y = rs.randn(4, 2).astype(np.float32)
    loss = net.forward(x=x, y=y)["loss"]
    w, b = (p.data.copy() for p in net.params["ip"])
    np.testing.assert_allclose(b, 0.1)
    ip = x @ w.T + b
    np.testing.assert_allclose(loss, ((ip - y) ** 2).sum() / (2 * 4), rtol=1e-5)
    assert net.blob_loss_weights["loss"] == 1.0 and net.blob_loss_weights["ip"] == 0.0
    net.clear_param_diffs()
    diffs = net.backward()
    d_ip = (ip - y) / 4
    assert set(diffs) == {"x", "y"}
    np.testing.assert_allclose(diffs["x"], d_ip @ w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(diffs["y"], -d_ip, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.params["ip"][0].diff, d_ip.T @ x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.params["ip"][1].diff, d_ip.sum(0), rtol=1e-5, atol=1e-6)
    # backward from an explicit top diff, stopping at the ip layer
    g = rs.randn(4, 2).astype(np.float32)
    net.blobs["ip"].diff[...] = g
    out = net.backward(start="ip", end="ip", diffs=["x"])
    np.testing.assert_allclose(out["x"], g @ w, rtol=1e-5, atol=1e-6)


def test_blob_reshape_and_checks(tmp_path):
    path = tmp_path / "ip.prototxt"
    path.write_text(IP_EUCLIDEAN)
    net = caffe.Net(str(path), caffe.TEST)
    net.blobs["x"].reshape(2, 3)
    net.blobs["y"].reshape(2, 2)
    net.reshape()
    assert net.blobs["ip"].shape == (2, 2)
    assert net.blobs["ip"].data.shape == (2, 2)
    with pytest.raises(ValueError):
        net.blobs["x"].reshape(-1, 3)
    with pytest.raises(ValueError, match="batch"):
        net.forward(x=np.zeros((5, 3), np.float32))
    net.blobs["x"].reshape(1, 1, 1, 1, 3)
    assert net.blobs["x"].data.shape == (1, 1, 1, 1, 3)
    with pytest.raises(ValueError, match="at most 4 axes"):
        net.blobs["x"].num
    with pytest.raises(ValueError, match="axes exceed"):
        net.blobs["x"].reshape(*([1] * 33))


def test_bad_prototxt_raises_with_file_and_line(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "bad"\nlayer {\n  name: "x"\n  typo_field: 3\n}\n')
    with pytest.raises(caffe.CaffeError) as err:
        caffe.Net(str(path), caffe.TEST)
    assert "%s:4:" % path in str(err.value)


def test_unknown_layer_type_and_phase_raise(tmp_path):
    path = tmp_path / "unknown.prototxt"
    path.write_text('layer { name: "z" type: "NoSuchLayer" top: "z" }\n')
    with pytest.raises(caffe.CaffeError, match="NoSuchLayer"):
        caffe.Net(str(path), caffe.TEST)
    with pytest.raises(ValueError):
        caffe.Net(str(path), 5)


def test_missing_weights_file_raises(lenet, tmp_path):
    missing = tmp_path / "missing.caffemodel"
    with pytest.raises(FileNotFoundError, match="missing.caffemodel"):
        caffe.Net(str(lenet[0]), caffe.TEST, weights=str(missing))
    net = caffe.Net(str(lenet[0]), caffe.TEST)
    with pytest.raises(FileNotFoundError):
        net.copy_from(str(missing))


MEMORY_NET = """
layer { name: "mem" type: "MemoryData" top: "data" top: "label"
  memory_data_param { batch_size: 2 channels: 1 height: 1 width: 3 } }
"""


def test_set_input_arrays_feeds_memory_data_batches(tmp_path):
    path = tmp_path / "mem.prototxt"
    path.write_text(MEMORY_NET)
    net = caffe.Net(str(path), caffe.TEST)
    data = np.arange(12, dtype=np.float32).reshape(4, 1, 1, 3)
    labels = np.array([5, 6, 7, 8], dtype=np.float32)
    net.set_input_arrays(data, labels)
    data[...] = -1  # copied: later changes are not seen
    for first in (0, 2, 0):
        out = net.forward()
        np.testing.assert_array_equal(out["data"], np.arange(12, dtype=np.float32).reshape(4, 1, 1, 3)[first:first + 2])
        np.testing.assert_array_equal(out["label"].ravel(), [5 + first, 6 + first])  # (N, 1, 1, 1) as in Caffe
    with pytest.raises(caffe.CaffeError, match="multiple of batch size"):
        net.set_input_arrays(np.zeros((3, 1, 1, 3)), np.zeros(3))
    with pytest.raises(ValueError):
        net.set_input_arrays(np.zeros((2, 1, 1, 3)), np.zeros(3))


def test_set_input_arrays_needs_memory_data_first(lenet):
    net = caffe.Net(str(lenet[0]), caffe.TEST)
    with pytest.raises(ValueError, match="MemoryData"):
        net.set_input_arrays(np.zeros((64, 1, 28, 28)), np.zeros(64))


IP_ONLY = """
force_backward: true
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 4 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 }
                        bias_filler { type: "constant" value: -0.5 } } }
"""


def test_forward_backward_all_batches_inputs_and_top_diffs(tmp_path):
    path = tmp_path / "ip_only.prototxt"
    path.write_text(IP_ONLY)
    net = caffe.Net(str(path), caffe.TRAIN)
    w, b = (p.data.copy() for p in net.params["ip"])
    rs = np.random.RandomState(4)
    x = rs.randn(6, 3).astype(np.float32)
    g = rs.randn(6, 2).astype(np.float32)
    outs, diffs = net.forward_backward_all(x=x, ip=g)
    np.testing.assert_allclose(outs["ip"], x @ w.T + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(diffs["x"], g @ w, rtol=1e-5, atol=1e-5)
    assert outs["ip"].shape == (6, 2) and diffs["x"].shape == (6, 3)


def test_an_array_stays_readable_after_its_blob_grows(lenet):
    net = caffe.Net(str(lenet[0]), caffe.TEST, weights=str(lenet[1]))
    data = net.blobs["data"]
    n = data.shape[0]
    held = data.data  # 64 x 1 x 28 x 28 floats: a buffer large enough to be unmapped when freed
    held[...] = np.arange(held.size, dtype=np.float32).reshape(held.shape) % 251
    expected = held.copy()
    data.reshape(4 * n, 1, 28, 28)  # grows: the engine moves the blob to a new buffer
    net.reshape()
    net.forward(data=np.zeros((4 * n, 1, 28, 28), np.float32))
    # The old array reads its own (old) buffer, kept alive by the blob: no use after free.
    np.testing.assert_array_equal(held, expected)
    held += 1  # and may be written
    assert data.data.shape == (4 * n, 1, 28, 28) and not data.data.any()
    assert net.blobs["prob"].data.shape == (4 * n, 10)
