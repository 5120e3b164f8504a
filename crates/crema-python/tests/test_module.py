"""Module-level functions of caffe and the caffe_pb2 messages."""
import warnings

import pytest
from google.protobuf import text_format

import caffe
from caffe.proto import caffe_pb2

from conftest import REPO


def test_phase_constants_match_the_schema():
    assert (caffe.TRAIN, caffe.TEST) == (caffe_pb2.TRAIN, caffe_pb2.TEST) == (0, 1)
    assert caffe_pb2.Phase.Name(caffe.TEST) == "TEST"


def test_layer_type_list_is_sorted_and_has_lenet_layers():
    types = caffe.layer_type_list()
    assert types == sorted(types)
    assert {"Convolution", "Pooling", "InnerProduct", "ReLU", "Softmax", "Input"} <= set(types)


def test_mode_functions():
    caffe.set_mode_cpu()
    with pytest.warns(RuntimeWarning, match="no GPU backend"):
        caffe.set_mode_gpu()
    with pytest.warns(RuntimeWarning):
        caffe.set_device(0)
    with pytest.raises(caffe.CaffeError):
        caffe.set_device(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        caffe.set_mode_cpu()
        caffe.set_random_seed(3)
        caffe.init_log(2)
        caffe.log("quiet at level 2")
    assert isinstance(caffe.__version__, str) and caffe.__version__


def test_caffe_pb2_reads_prototxt_with_text_format():
    text = (REPO / "examples" / "mnist" / "lenet_solver.prototxt").read_text()
    solver = text_format.Merge(text, caffe_pb2.SolverParameter())
    assert solver.base_lr == pytest.approx(0.01) and solver.lr_policy == "inv"
    net = text_format.Merge((REPO / "examples" / "mnist" / "lenet_train_test.prototxt").read_text(),
                            caffe_pb2.NetParameter())
    assert [l.type for l in net.layer][:3] == ["Data", "Data", "Convolution"]
    assert caffe_pb2.PoolingParameter.MAX == 0
    assert net.layer[2].convolution_param.num_output == 20
    # Schema defaults come through (Caffe's caffe.proto says bias_term defaults to true).
    assert caffe_pb2.ConvolutionParameter().bias_term is True
