"""scripts/classify.py as a command: its saved scores equal the net run on
the same pixels prepared with numpy."""
import pathlib
import subprocess
import sys

import numpy as np

import caffe

from conftest import need

SCRIPTS = pathlib.Path(__file__).resolve().parents[1] / "scripts"


def test_classify_script_scores_a_directory_of_pngs(tmp_path):
    models = ("models", "cifar10_quick_v1_everpeace")
    model = str(need(*models, "cifar10_quick.prototxt"))
    weights = str(need(*models, "cifar10_quick_iter_4000.caffemodel"))
    pngs = need("cifar10", "png_sources", "foolbox_test_first20")
    records = np.frombuffer(need("cifar10", "test_batch_first20.bin").read_bytes(), dtype=np.uint8)
    records = records.reshape(20, 3073)
    mean = np.array([125.0, 123.0, 114.0], dtype=np.float32)  # per channel, R G B
    np.save(tmp_path / "mean.npy", mean)
    out = tmp_path / "scores.npy"
    run = subprocess.run(
        [sys.executable, str(SCRIPTS / "classify.py"), str(pngs), str(out), "--model_def", model,
         "--pretrained_model", weights, "--images_dim", "32,32", "--center_only", "--ext", "png",
         "--channel_swap", "", "--mean_file", str(tmp_path / "mean.npy")],
        capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "Classifying 20 inputs." in run.stdout
    scores = np.load(out)
    assert scores.shape == (20, 10)
    # The PNGs, sorted by name, are the test records in order (pixel-exact).
    data = records[:, 1:].reshape(20, 3, 32, 32).astype(np.float32) - mean[:, None, None]
    net = caffe.Net(model, caffe.TEST, weights=weights)
    expected = net.forward_all(data=data)["prob"]
    np.testing.assert_allclose(scores, expected, rtol=1e-3, atol=1e-5)
    assert (scores.argmax(1) == records[:, 0]).sum() >= 16
