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


LEARNING = '''
import numpy as np

import caffe


class TanhAffine(caffe.Layer):
    """y = w * tanh(x) + b per feature, with learnable w and b (shape C)."""

    def setup(self, bottom, top):
        c = bottom[0].data.shape[1]
        self.blobs.add_blob(c)
        self.blobs.add_blob(c)
        self.blobs[0].data[...] = np.linspace(0.5, 1.5, c)
        self.blobs[1].data[...] = 0.25

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data * np.tanh(bottom[0].data) + self.blobs[1].data

    def backward(self, top, propagate_down, bottom):
        t = np.tanh(bottom[0].data)
        g = top[0].diff
        self.blobs[0].diff[...] += (g * t).sum(axis=0)
        self.blobs[1].diff[...] += g.sum(axis=0)
        if propagate_down[0]:
            bottom[0].diff[...] = g * self.blobs[0].data * (1 - t * t)


class EuclideanLoss(caffe.Layer):
    """½ Σ (a - b)² / N, in numpy (Caffe's pyloss example)."""

    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise Exception("EuclideanLoss needs two bottoms")

    def reshape(self, bottom, top):
        if bottom[0].count != bottom[1].count:
            raise Exception("EuclideanLoss bottoms differ in size")
        self.diff = np.zeros_like(bottom[0].data, dtype=np.float32)
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.diff[...] = bottom[0].data - bottom[1].data
        top[0].data[...] = np.sum(self.diff ** 2) / bottom[0].num / 2.0

    def backward(self, top, propagate_down, bottom):
        for i, sign in ((0, 1), (1, -1)):
            if propagate_down[i]:
                bottom[i].diff[...] = sign * self.diff / bottom[i].num


class Points(caffe.Layer):
    """A fixed regression set, as a data layer: x (16 x 4) and t = A x + c."""

    def setup(self, bottom, top):
        rng = np.random.RandomState(7)
        self.x = rng.randn(16, 4).astype(np.float32)
        a = np.array([[1.0, -2.0, 0.5, 3.0], [0.0, 1.0, -1.0, 2.0]], dtype=np.float32)
        self.t = self.x @ a.T + np.array([0.5, -1.0], dtype=np.float32)

    def reshape(self, bottom, top):
        top[0].reshape(16, 4)
        top[1].reshape(16, 2)

    def forward(self, bottom, top):
        top[0].data[...] = self.x
        top[1].data[...] = self.t

    def backward(self, top, propagate_down, bottom):
        pass
'''

GRAD_NET = """
force_backward: true
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 3 dim: 4 } } }
layer { name: "f" type: "Python" bottom: "x" top: "y" python_param { module: "crema_learning" layer: "TanhAffine" } }
"""

TRAIN_NET = """
name: "pyregress"
layer { name: "points" type: "Python" top: "x" top: "t" python_param { module: "crema_learning" layer: "Points" } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "constant" } } }
layer { name: "loss" type: "Python" bottom: "ip" bottom: "t" top: "loss" loss_weight: 1
  python_param { module: "crema_learning" layer: "EuclideanLoss" } }
"""

SOLVER = """
net: "%s"
base_lr: 0.05
lr_policy: "fixed"
momentum: 0.9
max_iter: %d
display: 10
snapshot: 0
snapshot_after_train: true
snapshot_prefix: "%s"
random_seed: 3
"""


@pytest.fixture
def learning(tmp_path, monkeypatch):
    (tmp_path / "crema_learning.py").write_text(LEARNING)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_python_layer_blobs_are_net_params(learning):
    path = learning / "grad.prototxt"
    path.write_text(GRAD_NET)
    net = caffe.Net(str(path), caffe.TEST)
    params = net.params["f"]
    assert isinstance(params, caffe.BlobVec) and len(params) == 2
    np.testing.assert_allclose(params[0].data, np.linspace(0.5, 1.5, 4))
    assert params[-1].shape == (4,) and net.layers[1].blobs[1].data[0] == 0.25
    with pytest.raises(IndexError):
        params[2]


def test_python_layer_gradients_match_finite_differences(learning):
    path = learning / "grad.prototxt"
    path.write_text(GRAD_NET)
    net = caffe.Net(str(path), caffe.TEST)
    rng = np.random.RandomState(0)
    x = rng.randn(3, 4).astype(np.float32)
    r = rng.randn(3, 4).astype(np.float32)  # loss = Σ y * r, so dloss/dy = r

    def loss():
        return float((net.forward(x=x)["y"].astype(np.float64) * r).sum())

    loss()
    for p in net.params["f"]:
        p.diff[...] = 0
    dx = net.backward(y=r)["x"].copy()
    analytic = [p.diff.copy() for p in net.params["f"]]
    eps = 1e-2
    numeric = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        x0 = x[i]
        x[i] = x0 + eps
        up = loss()
        x[i] = x0 - eps
        down = loss()
        x[i] = x0
        numeric[i] = (up - down) / (2 * eps)
    np.testing.assert_allclose(dx, numeric, rtol=1e-2, atol=1e-3)
    for blob, grad in zip(net.params["f"], analytic):
        num = np.zeros_like(grad)
        for i in np.ndindex(grad.shape):
            v0 = blob.data[i]
            blob.data[i] = v0 + eps
            up = loss()
            blob.data[i] = v0 - eps
            down = loss()
            blob.data[i] = v0
            num[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grad, num, rtol=1e-2, atol=1e-3)


def test_numpy_euclidean_loss_trains_a_net(learning):
    (learning / "train.prototxt").write_text(TRAIN_NET)
    solver_path = learning / "solver.prototxt"
    solver_path.write_text(SOLVER % (learning / "train.prototxt", 200, learning / "py"))
    solver = caffe.SGDSolver(str(solver_path))
    first = solver.net.forward()["loss"].item()
    solver.step(200)
    last = solver.net.forward()["loss"].item()
    assert last < first / 100, (first, last)
    w, b = (p.data for p in solver.net.params["ip"])
    np.testing.assert_allclose(w, [[1.0, -2.0, 0.5, 3.0], [0.0, 1.0, -1.0, 2.0]], atol=0.05)
    np.testing.assert_allclose(b, [0.5, -1.0], atol=0.05)


def test_a_learnable_python_layer_is_updated_by_the_solver(learning):
    net_text = TRAIN_NET.replace(
        'layer { name: "loss"',
        'layer { name: "f" type: "Python" bottom: "ip" top: "fy" '
        'python_param { module: "crema_learning" layer: "TanhAffine" } }\nlayer { name: "loss"',
    ).replace('bottom: "ip" bottom: "t" top: "loss"', 'bottom: "fy" bottom: "t" top: "loss"')
    (learning / "train2.prototxt").write_text(net_text)
    solver_path = learning / "solver2.prototxt"
    solver_path.write_text(SOLVER % (learning / "train2.prototxt", 5, learning / "py2"))
    solver = caffe.SGDSolver(str(solver_path))
    w0 = solver.net.params["f"][0].data.copy()
    solver.step(1)
    # The update leaves its step in diff (lr * gradient; the momentum history
    # starts at zero) and subtracts it from data, as Caffe's update does.
    f = solver.net.params["f"]
    np.testing.assert_allclose(f[0].data, w0 - f[0].diff, rtol=1e-5, atol=1e-7)
    assert not np.allclose(f[0].data, w0)


def test_caffe_train_runs_python_layers(learning):
    """`caffe train` of a binary built with the python-layer feature (scripts/test
    builds it and names it in CREMA_PYLAYER_CAFFE), as Caffe WITH_PYTHON_LAYER."""
    import os
    import pathlib
    import subprocess
    import sysconfig

    exe = os.environ.get("CREMA_PYLAYER_CAFFE")
    if not exe:
        print("!!! skipped: CREMA_PYLAYER_CAFFE (a caffe built with --features python-layer) is not set")
        pytest.skip("skipped: CREMA_PYLAYER_CAFFE is not set")
    (learning / "train.prototxt").write_text(TRAIN_NET)
    solver_path = learning / "solver.prototxt"
    solver_path.write_text(SOLVER % (learning / "train.prototxt", 60, learning / "cli"))
    env = dict(os.environ)
    # The layer module, the caffe package this test imported, then numpy and protobuf.
    package_dir = str(pathlib.Path(caffe.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([str(learning), package_dir, sysconfig.get_paths()["purelib"],
                                         sysconfig.get_paths()["platlib"]])
    env.pop("GLOG_minloglevel", None)
    run = subprocess.run([exe, "train", "--solver", str(solver_path)], capture_output=True, text=True, env=env,
                         cwd=learning, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    losses = [float(line.rsplit("=", 1)[1]) for line in run.stderr.splitlines()
              if "Iteration" in line and "loss = " in line]
    assert len(losses) >= 6 and losses[-1] < losses[0] / 10, losses
    model = learning / "cli_iter_60.caffemodel"
    assert model.exists() and (learning / "cli_iter_60.solverstate").exists()
    # The trained weights, read with google.protobuf, approach the true map.
    from caffe.proto import caffe_pb2
    trained = caffe_pb2.NetParameter.FromString(model.read_bytes())
    ip = [l for l in trained.layer if l.name == "ip"][0]
    w = np.array(ip.blobs[0].data).reshape(2, 4)
    assert np.abs(w - [[1.0, -2.0, 0.5, 3.0], [0.0, 1.0, -1.0, 2.0]]).max() < 0.5
    # GLOG_minloglevel=2 keeps INFO and WARNING lines out, as glog does.
    env["GLOG_minloglevel"] = "2"
    quiet = subprocess.run([exe, "train", "--solver", str(solver_path)], capture_output=True, text=True, env=env,
                           cwd=learning, timeout=300)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert "Iteration" not in quiet.stderr and "Solver scaffolding" not in quiet.stderr
    # A Python layer's exception fails the run with the layer named.
    (learning / "bad.prototxt").write_text(TRAIN_NET.replace('layer: "Points"', 'layer: "NoSuchLayer"'))
    solver_path.write_text(SOLVER % (learning / "bad.prototxt", 5, learning / "bad"))
    bad = subprocess.run([exe, "train", "--solver", str(solver_path)], capture_output=True, text=True, env=env,
                         cwd=learning, timeout=300)
    assert bad.returncode != 0 and "NoSuchLayer" in bad.stderr
