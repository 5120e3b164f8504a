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
