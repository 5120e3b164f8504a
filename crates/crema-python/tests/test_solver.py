"""caffe.SGDSolver and friends on a small regression net."""
import numpy as np
import pytest

import caffe

SOLVER = """
net_param {
  name: "regress"
  layer { name: "x" type: "DummyData" top: "x" top: "y"
    dummy_data_param { shape { dim: 8 dim: 3 } shape { dim: 8 dim: 1 }
      data_filler { type: "constant" value: 1.0 } data_filler { type: "constant" value: 0.5 } } }
  layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
    inner_product_param { num_output: 1 weight_filler { type: "gaussian" std: 1.0 } } }
  layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" top: "loss" }
}
base_lr: 0.05
lr_policy: "fixed"
momentum: 0.9
max_iter: 30
display: 0
snapshot_after_train: false
random_seed: 5
solver_mode: CPU
"""


@pytest.fixture
def solver_file(tmp_path):
    path = tmp_path / "solver.prototxt"
    path.write_text(SOLVER)
    return path


@pytest.mark.parametrize("cls", [caffe.SGDSolver, caffe.NesterovSolver, caffe.AdamSolver, caffe.get_solver])
def test_solver_steps_lower_the_loss(solver_file, cls):
    solver = cls(str(solver_file))
    w = solver.net.params["ip"][0].data.copy()
    b = solver.net.params["ip"][1].data.copy()
    before = float(solver.net.forward()["loss"])
    assert before == pytest.approx(((w.sum() + b[0] - 0.5) ** 2) / 2, rel=1e-5)
    solver.step(20)
    assert solver.iter == 20
    after = float(solver.net.forward()["loss"])
    assert after < before / 4
    # The solver's net is the one the step updated: the arrays see new weights.
    assert not np.allclose(solver.net.params["ip"][0].data, w)
    assert solver.type == {"SGDSolver": "SGD", "NesterovSolver": "Nesterov", "AdamSolver": "Adam"}.get(
        getattr(cls, "__name__", ""), "SGD")


def test_solve_runs_to_max_iter(solver_file):
    solver = caffe.get_solver(str(solver_file))
    solver.solve()
    assert solver.iter == 30
    assert solver.param.base_lr == pytest.approx(0.05) and solver.param.max_iter == 30
    assert solver.param.net_param.layer[1].inner_product_param.num_output == 1
    assert solver.test_nets == []


PLAIN = SOLVER.replace("momentum: 0.9", "momentum: 0.0").replace("base_lr: 0.05", "base_lr: 0.1")


@pytest.fixture
def plain_solver(tmp_path):
    """SGD without momentum or decay: an update is exactly w -= 0.1 * diff."""
    path = tmp_path / "plain.prototxt"
    path.write_text(PLAIN)
    return caffe.SGDSolver(str(path))


def test_callbacks_run_each_iteration_with_the_gradients_before_the_update(plain_solver):
    s = plain_solver
    events, seen = [], []
    w_blob = s.net.params["ip"][0]

    def on_start():
        events.append(("start", s.iter))

    def on_gradients():
        events.append(("gradients", s.iter))
        seen.append((w_blob.data.copy(), w_blob.diff.copy(), s.net.params["ip"][1].data.copy()))

    s.add_callback(on_start, on_gradients)
    s.step(3)
    assert events == [("start", 0), ("gradients", 0), ("start", 1), ("gradients", 1),
                      ("start", 2), ("gradients", 2)]
    # The gradient of ½ mean_n (w·x_n + b - y_n)² with every x = 1 and y = 0.5
    # is the residual w·1 + b - 0.5 for each weight.
    for w, g, b in seen:
        np.testing.assert_allclose(g, np.full((1, 3), w.sum() + b[0] - 0.5), rtol=1e-5)
    # Each update is w -= lr * (the diff the callback saw); the next callback sees the result.
    for (w0, g0, _), (w1, _, _) in zip(seen, seen[1:]):
        np.testing.assert_allclose(w1, w0 - 0.1 * g0, rtol=1e-5, atol=1e-7)


def test_callback_errors_stop_the_step(plain_solver):
    def boom():
        raise ValueError("callback says no")

    plain_solver.add_callback(lambda: None, boom)
    with pytest.raises(caffe.CaffeError, match="callback says no"):
        plain_solver.step(1)
    with pytest.raises(TypeError):
        plain_solver.add_callback(1, 2)


def test_running_the_net_inside_a_callback_is_an_error_not_a_crash(plain_solver):
    s = plain_solver
    s.add_callback(lambda: s.net.forward(), lambda: None)
    with pytest.raises(caffe.CaffeError, match="solver is running"):
        s.step(1)


def test_apply_update_steps_from_the_given_diffs(plain_solver):
    s = plain_solver
    w = s.net.params["ip"][0]
    before = w.data.copy()
    for blob in s.net.params["ip"]:
        blob.diff[...] = 0
    w.diff[...] = np.array([[1.0, -2.0, 0.5]], dtype=np.float32)
    s.apply_update()
    np.testing.assert_allclose(w.data, before - 0.1 * np.array([[1.0, -2.0, 0.5]]), rtol=1e-6)
    assert s.iter == 0


def test_share_weights_and_share_with_follow_training(plain_solver, tmp_path):
    s = plain_solver
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text("""
      layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
      layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip" inner_product_param { num_output: 1 } }
    """)
    net = caffe.Net(str(deploy), caffe.TEST)
    np.testing.assert_array_equal(net.params["ip"][0].data, 0)  # constant filler: 0
    s.share_weights(net)
    s.step(2)
    w, b = (p.data.copy() for p in s.net.params["ip"])
    x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]], dtype=np.float32)
    np.testing.assert_allclose(net.forward(x=x)["ip"][:, 0], x @ w[0] + b[0], rtol=1e-5)
    # Net.share_with between two plain nets: a change in one is seen by the other.
    other = caffe.Net(str(deploy), caffe.TEST)
    other.share_with(net)
    net.params["ip"][0].data[...] = [[1.0, 1.0, 1.0]]
    np.testing.assert_allclose(other.forward(x=x)["ip"][:, 0], x.sum(1) + b[0], rtol=1e-5)
    with pytest.raises(ValueError, match="itself"):
        net.share_with(net)
