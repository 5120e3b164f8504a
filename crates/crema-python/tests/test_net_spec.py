"""caffe.NetSpec writes the same NetParameter as a hand-written prototxt."""
import numpy as np
import pytest
from google.protobuf import text_format

import caffe
from caffe import layers as L, params as P
from caffe.proto import caffe_pb2


def lenet_spec():
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[64, 1, 28, 28]))
    lr = [dict(lr_mult=1), dict(lr_mult=2)]
    fill = dict(weight_filler=dict(type="xavier"), bias_filler=dict(type="constant"))
    n.conv1 = L.Convolution(n.data, param=lr, num_output=20, kernel_size=5, stride=1, **fill)
    n.pool1 = L.Pooling(n.conv1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.conv2 = L.Convolution(n.pool1, param=lr, num_output=50, kernel_size=5, stride=1, **fill)
    n.pool2 = L.Pooling(n.conv2, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.ip1 = L.InnerProduct(n.pool2, param=lr, num_output=500, **fill)
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.relu1, param=lr, num_output=10, **fill)
    n.prob = L.Softmax(n.ip2)
    return n


def test_netspec_lenet_equals_the_prototxt(lenet):
    proto = lenet_spec().to_proto()
    proto.name = "LeNet"
    expected = text_format.Merge(lenet[0].read_text(), caffe_pb2.NetParameter())
    assert proto == expected, text_format.MessageToString(proto)


def test_netspec_prototxt_builds_a_net_that_computes_like_the_original(lenet, tmp_path):
    path = tmp_path / "spec.prototxt"
    path.write_text(str(lenet_spec().to_proto()))
    ours = caffe.Net(str(path), caffe.TEST, weights=str(lenet[1]))
    ref = caffe.Net(str(lenet[0]), caffe.TEST, weights=str(lenet[1]))
    x = np.random.RandomState(3).rand(64, 1, 28, 28).astype(np.float32)
    np.testing.assert_array_equal(ours.forward(data=x)["prob"], ref.forward(data=x)["prob"])


def test_autonames_multiple_tops_and_layer_fields():
    data, label = L.DummyData(shape=[dict(dim=[2, 3]), dict(dim=[2])], ntop=2)
    ip = L.InnerProduct(data, num_output=4)
    loss = L.SoftmaxWithLoss(ip, label, loss_weight=0.5, include=dict(phase=caffe.TRAIN))
    net = caffe.to_proto(loss)
    assert [l.name for l in net.layer] == ["DummyData1", "InnerProduct1", "SoftmaxWithLoss1"]
    assert list(net.layer[0].top) == ["DummyData1", "DummyData2"]
    assert list(net.layer[2].bottom) == ["InnerProduct1", "DummyData2"]
    assert list(net.layer[2].loss_weight) == [0.5]
    assert net.layer[2].include[0].phase == caffe_pb2.TRAIN
    assert [list(s.dim) for s in net.layer[0].dummy_data_param.shape] == [[2, 3], [2]]
    assert net.layer[1].inner_product_param.num_output == 4


def test_unknown_parameter_is_an_error():
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1]))
    n.bad = L.InnerProduct(n.data, no_such_field=3)
    with pytest.raises(AttributeError, match="no_such_field"):
        n.to_proto()
