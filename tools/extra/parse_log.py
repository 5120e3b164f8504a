#!/usr/bin/env python3
"""Parse a `caffe train` log (crema's or Caffe's) into two CSV tables, as
Caffe's tools/extra/parse_log.py does: LOG.train and LOG.test in OUTPUT_DIR,
one row per iteration that printed net outputs, with the columns NumIters,
Seconds (since the "Solving" line), LearningRate and one per output name.

    python3 tools/extra/parse_log.py LOGFILE OUTPUT_DIR [--delimiter ,]

Importable: parse_log(path) -> (train_rows, test_rows), lists of dicts.
"""
import argparse
import csv
import datetime
import os
import re

ITERATION = re.compile(r'Iteration (\d+)')
TRAIN_OUTPUT = re.compile(r'Train net output #(\d+): (\S+) = ([.\deE+-]+)')
TEST_OUTPUT = re.compile(r'Test net output #(\d+): (\S+) = ([.\deE+-]+)')
LEARNING_RATE = re.compile(r'lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)')
# glog's prefix: severity, MMDD, HH:MM:SS.micro
GLOG_TIME = re.compile(r'^[IWEF](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d+)')


def line_time(line, year):
    """The wall time a glog line was written (glog leaves the year out)."""
    m = GLOG_TIME.match(line)
    if not m:
        return None
    month, day, hour, minute, second, micro = (int(g) for g in m.groups())
    return datetime.datetime(year, month, day, hour, minute, second, micro)


def parse_log(path):
    year = datetime.datetime.fromtimestamp(os.path.getmtime(path)).year
    iteration = -1
    learning_rate = float('nan')
    start = None
    train_rows, test_rows = [], []
    train_row = test_row = None
    with open(path) as f:
        for line in f:
            if start is None and 'Solving' in line:
                start = line_time(line, year)
            m = ITERATION.search(line)
            if m:
                iteration = float(m.group(1))
            if iteration == -1:
                continue  # nothing to read before the first iteration
            now = line_time(line, year)
            seconds = (now - start).total_seconds() if now and start else float('nan')
            m = LEARNING_RATE.search(line)
            if m:
                learning_rate = float(m.group(1))
            train_row = add_output(TRAIN_OUTPUT, train_row, train_rows, line,
                                   iteration, seconds, learning_rate)
            test_row = add_output(TEST_OUTPUT, test_row, test_rows, line,
                                  iteration, seconds, learning_rate)
    # The rate is logged after the first outputs: borrow the second row's.
    for rows in (train_rows, test_rows):
        if len(rows) > 1:
            rows[0]['LearningRate'] = rows[1]['LearningRate']
    return train_rows, test_rows


def add_output(regex, row, rows, line, iteration, seconds, learning_rate):
    """Adds a matched output to the current row; a row is complete when it has
    as many columns as the first one."""
    m = regex.search(line)
    if m:
        if row is None or row['NumIters'] != iteration:
            if row is not None:
                rows.append(row)
            row = {'NumIters': iteration, 'Seconds': seconds,
                   'LearningRate': learning_rate}
        row[m.group(2)] = float(m.group(3))
    if row is not None and rows and len(row) == len(rows[0]):
        rows.append(row)
        row = None
    return row


def save_csv(log_path, out_dir, train_rows, test_rows, delimiter=','):
    base = os.path.basename(log_path)
    for suffix, rows in (('.train', train_rows), ('.test', test_rows)):
        if not rows:
            continue
        with open(os.path.join(out_dir, base + suffix), 'w', newline='') as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()),
                               delimiter=delimiter, lineterminator='\n')
            w.writeheader()
            w.writerows(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('logfile_path')
    ap.add_argument('output_dir')
    ap.add_argument('--delimiter', default=',')
    a = ap.parse_args()
    train_rows, test_rows = parse_log(a.logfile_path)
    save_csv(a.logfile_path, a.output_dir, train_rows, test_rows, a.delimiter)


if __name__ == '__main__':
    main()
