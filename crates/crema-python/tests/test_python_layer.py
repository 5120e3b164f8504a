"""Layers written in Python (type: "Python") inside crema nets."""
import textwrap

import numpy as np
import pytest

import caffe

MODULE = '''
import caffe


class Scale(caffe.Layer):
    def setup(self, bottom, top):
        self.factor = float(self.param_str)
        self.seen_phase = self.phase

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.factor * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = self.factor * top[0].diff


class Broken(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        raise ValueError("broken forward " + self.param_str)

    def backward(self, top, propagate_down, bottom):
        pass
'''

NET = """
force_backward: true
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "scale" type: "Python" bottom: "x" top: "y"
  python_param { module: "%s" layer: "%s" param_str: "3" } }
"""


@pytest.fixture
def pymodule(tmp_path, monkeypatch):
    (tmp_path / "crema_pylayers.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_python_layer_forward_and_backward(pymodule):
    path = pymodule / "net.prototxt"
    path.write_text(NET % ("crema_pylayers", "Scale"))
    net = caffe.Net(str(path), caffe.TEST)
    assert [l.type for l in net.layers] == ["Input", "Python"]
    layer = net.layers[1]  # the Python object itself, as pycaffe gives it
    assert isinstance(layer, caffe.Layer) and type(layer).__name__ == "Scale"
    assert (layer.factor, layer.seen_phase, layer.param_str) == (3.0, caffe.TEST, "3")
    assert net.layer_dict["scale"] is layer and "scale" not in net.params
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(net.forward(x=x)["y"], 3 * x)
    g = np.ones((2, 3), np.float32) * 0.5
    np.testing.assert_array_equal(net.backward(y=g)["x"], 3 * g)


def test_python_layer_exception_becomes_caffe_error(pymodule):
    path = pymodule / "broken.prototxt"
    path.write_text(NET % ("crema_pylayers", "Broken"))
    net = caffe.Net(str(path), caffe.TEST)
    with pytest.raises(caffe.CaffeError, match="broken forward 3") as err:
        net.forward(x=np.zeros((2, 3), np.float32))
    assert "scale" in str(err.value) and "ValueError" in str(err.value)


def test_missing_python_module_or_class_is_an_error(pymodule):
    path = pymodule / "missing.prototxt"
    path.write_text(NET % ("crema_no_such_module", "Scale"))
    with pytest.raises(caffe.CaffeError, match="crema_no_such_module"):
        caffe.Net(str(path), caffe.TEST)
    path.write_text(NET % ("crema_pylayers", "NoSuchClass"))
    with pytest.raises(caffe.CaffeError, match="NoSuchClass"):
        caffe.Net(str(path), caffe.TEST)
