"""parse_log.py over a real `caffe train` log: crema's lines read the way
Caffe's parse_log reads Caffe's (rows per display and test iteration, the
learning rate, the output columns), values checked against the log text."""
import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import parse_log  # noqa: E402

NET = '''name: "tiny"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 8 dim: 5 } shape { dim: 8 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy"
  include { phase: TEST } }
'''

SOLVER = '''net: "net.prototxt"
test_iter: 2
test_interval: 20
base_lr: 0.01
lr_policy: "step"
gamma: 0.5
stepsize: 20
display: 10
max_iter: 60
snapshot_after_train: false
random_seed: 5
'''


def caffe_binary():
    for profile in ('debug', 'release'):
        path = os.path.join(ROOT, 'target', profile, 'caffe')
        if os.path.exists(path):
            return path
    pytest.skip('skipped: no built caffe binary under target/ (cargo build first)')


def test_parse_log_reads_a_crema_training_log(tmp_path):
    (tmp_path / 'net.prototxt').write_text(NET)
    (tmp_path / 'solver.prototxt').write_text(SOLVER)
    run = subprocess.run([caffe_binary(), 'train', '--solver=solver.prototxt'],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    log = tmp_path / 'train.log'
    log.write_text(run.stderr)

    train, test = parse_log.parse_log(str(log))

    # Independently from the text: every "Train net output" value by iteration.
    losses = {}
    iteration = None
    for line in run.stderr.splitlines():
        m = re.search(r'\] Iteration (\d+) \(', line)
        if m:
            iteration = int(m.group(1))
        m = re.search(r'Train net output #0: loss = (\S+)', line)
        if m:
            losses[iteration] = float(m.group(1))
    assert sorted(losses) == [0, 10, 20, 30, 40, 50]
    # The last display row is only pushed when complete, as Caffe's parser does.
    assert [r['NumIters'] for r in train] == [0, 10, 20, 30, 40, 50]
    for r in train:
        assert r['loss'] == losses[int(r['NumIters'])]
        assert list(r.keys()) == ['NumIters', 'Seconds', 'LearningRate', 'loss']

    # "lr = X" follows the outputs of its iteration, so a row carries the rate
    # of the previous display; the first row borrows the second's.
    def rate(it):
        return 0.01 * 0.5 ** (it // 20)
    assert train[0]['LearningRate'] == pytest.approx(rate(0))
    for r in train[1:]:
        assert r['LearningRate'] == pytest.approx(rate(int(r['NumIters']) - 10))

    assert [r['NumIters'] for r in test] == [0, 20, 40, 60]
    for r in test:
        assert set(r) == {'NumIters', 'Seconds', 'LearningRate', 'accuracy', 'loss'}
        assert 0.0 <= r['accuracy'] <= 1.0 and r['loss'] > 0
    seconds = [r['Seconds'] for r in train + test]
    assert all(s >= 0 for s in seconds)

    # The command line writes the same rows as CSV.
    out = tmp_path / 'csv'
    out.mkdir()
    subprocess.run([sys.executable, os.path.join(HERE, 'parse_log.py'), str(log), str(out)],
                   check=True)
    header, *rows = (out / 'train.log.train').read_text().splitlines()
    assert header == 'NumIters,Seconds,LearningRate,loss'
    assert len(rows) == len(train)
    assert float(rows[2].split(',')[3]) == train[2]['loss']
