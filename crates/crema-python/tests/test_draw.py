"""caffe.draw and scripts/draw_net.py on LeNet's train/test prototxt, read
with google.protobuf's own text parser."""
import pathlib
import shutil
import subprocess
import sys

import pytest
from google.protobuf import text_format

import caffe
from caffe.proto import caffe_pb2

from conftest import need

pydot = pytest.importorskip("pydot", reason="skipped: pydot is not installed (pip install pydot)")
import caffe.draw  # noqa: E402

# pydot's dot parser uses pyparsing names that pyparsing 3.3 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pydot")

SCRIPTS = pathlib.Path(__file__).resolve().parents[1] / "scripts"
HAVE_DOT = shutil.which("dot") is not None


@pytest.fixture
def lenet_proto():
    path = need("models", "lenet_summerlife", "lenet_train_test.prototxt")
    net = caffe_pb2.NetParameter()
    text_format.Merge(path.read_text(), net)
    return path, net


def strip(s):
    return s.strip('"') if isinstance(s, str) else s


def nodes_by_name(graph):
    return {strip(n.get_name()): n for n in graph.get_nodes()}


def test_layers_are_boxes_blobs_octagons_with_caffe_colours_and_labels(lenet_proto):
    _, net = lenet_proto
    g = caffe.draw.get_pydot_graph(net, "LR")
    assert g.get_rankdir() == "LR" and g.get_name() == "LeNet"
    nodes = nodes_by_name(g)
    layers = {"%s_%s" % (l.name, l.type) for l in net.layer}  # the two "mnist" Data layers are one node
    blobs = {b + "_blob" for l in net.layer for b in list(l.bottom) + list(l.top)}
    assert set(nodes) == layers | blobs and len(layers) == 10 and len(blobs) == 10
    colours = {"Convolution": "#FF5050", "Pooling": "#FF9900", "InnerProduct": "#CC33FF", "ReLU": "#90EE90",
               "Data": "#6495ED", "Accuracy": "#6495ED", "SoftmaxWithLoss": "#6495ED"}
    for l in net.layer:
        n = nodes["%s_%s" % (l.name, l.type)]
        assert strip(n.get("shape")) == "record" and strip(n.get("fillcolor")) == colours[l.type]
    for b in blobs:
        assert strip(nodes[b].get("shape")) == "octagon"
    assert nodes["conv1_Convolution"].get("label") == r'"conv1\n(Convolution)\nkernel size: 5\nstride: 1\npad: 0"'
    assert nodes["pool1_Pooling"].get("label") == r'"pool1\n(Pooling MAX)\nkernel size: 2\nstride: 2\npad: 0"'
    assert nodes["ip1_InnerProduct"].get("label") == r'"ip1\n(InnerProduct)"'
    # One edge per bottom and per top; the edges out of a layer carry its output size.
    assert len(g.get_edges()) == sum(len(l.bottom) + len(l.top) for l in net.layer) == 24
    labels = {(strip(e.get_source()), strip(e.get_destination())): e.get("label") for e in g.get_edges()}
    assert labels[("conv1_Convolution", "conv1_blob")] == "20"
    assert labels[("ip2_InnerProduct", "ip2_blob")] == "10"
    assert labels[("data_blob", "conv1_Convolution")] == '""'
    assert labels[("mnist_Data", "data_blob")] in ("Batch 64", "Batch 100")


def test_vertical_layout_spaces_and_lr_multipliers(lenet_proto):
    _, net = lenet_proto
    g = caffe.draw.get_pydot_graph(net, "TB", display_lrm=True, label_edges=False)
    nodes = nodes_by_name(g)
    # lenet_train_test gives conv1 lr_mult 1 (weights) and 2 (bias).
    assert [p.lr_mult for p in net.layer[2].param] == [1, 2]
    assert nodes["conv1_Convolution"].get("label") == \
        '"conv1 (Convolution) kernel size: 5 stride: 1 pad: 0 lr mult: 1.0, 2.0"'
    assert all(e.get("label") == '""' for e in g.get_edges())


def test_phase_keeps_that_phase_layers(lenet_proto):
    _, net = lenet_proto
    n_test = len(caffe.draw.get_pydot_graph(net, "LR", phase=caffe.TEST).get_edges())
    n_train = len(caffe.draw.get_pydot_graph(net, "LR", phase=caffe.TRAIN).get_edges())
    assert (n_test, n_train) == (24 - 2, 24 - 2 - 3)  # TEST drops a Data layer; TRAIN also Accuracy
    train_nodes = nodes_by_name(caffe.draw.get_pydot_graph(net, "LR", phase=caffe.TRAIN))
    assert "accuracy_Accuracy" not in train_nodes and "accuracy_blob" not in train_nodes


def test_dot_source_round_trips_through_pydot(lenet_proto, tmp_path):
    _, net = lenet_proto
    src = caffe.draw.draw_net(net, "BT", ext="dot")
    again = pydot.graph_from_dot_data(src.decode())[0]
    assert set(nodes_by_name(again)) >= set(nodes_by_name(caffe.draw.get_pydot_graph(net, "BT")))
    out = tmp_path / "lenet.raw"
    caffe.draw.draw_net_to_file(net, str(out), "BT")
    assert out.read_bytes() == src


@pytest.mark.skipif(not HAVE_DOT, reason="skipped: graphviz `dot` is not installed")
def test_png_through_graphviz(lenet_proto, tmp_path):
    _, net = lenet_proto
    out = tmp_path / "lenet.png"
    caffe.draw.draw_net_to_file(net, str(out), "LR", caffe.TEST)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_draw_net_script(lenet_proto, tmp_path):
    path, net = lenet_proto
    ext = "png" if HAVE_DOT else "dot"
    out = tmp_path / ("lenet." + ext)
    run = subprocess.run([sys.executable, str(SCRIPTS / "draw_net.py"), str(path), str(out), "--rankdir", "TB",
                          "--phase", "TEST"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "Drawing net to %s" % out in run.stdout
    data = out.read_bytes()
    if HAVE_DOT:
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        print("!!! graphviz `dot` absent: draw_net.py checked with .dot output only")
        assert data == caffe.draw.draw_net(net, "TB", "dot", caffe.TEST)


def test_missing_pydot_or_dot_is_a_clear_error(lenet_proto, monkeypatch):
    _, net = lenet_proto
    monkeypatch.setattr(caffe.draw, "pydot", None)
    with pytest.raises(ImportError, match="pip install pydot"):
        caffe.draw.get_pydot_graph(net, "LR")
    monkeypatch.undo()
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match="graphviz"):
        caffe.draw.draw_net(net, "LR", ext="png")
