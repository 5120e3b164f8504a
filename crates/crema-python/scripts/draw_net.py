#!/usr/bin/env python3
"""draw_net.py: draws a net prototxt to an image (or graphviz source with a
.dot/.raw name), as Caffe's python/draw_net.py."""
import argparse
import sys

from google.protobuf import text_format

import caffe
import caffe.draw
from caffe.proto import caffe_pb2


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("input_net_proto_file", help="the net prototxt")
    p.add_argument("output_image_file", help="the output file; its extension is the format")
    p.add_argument("--rankdir", default="LR", help="graph direction: LR, TB, BT or RL")
    p.add_argument("--phase", default="ALL", choices=["ALL", "TRAIN", "TEST"],
                   help="draw only the layers of this phase (ALL: every layer)")
    p.add_argument("--display_lrm", action="store_true", help="show the layers' learning rate multipliers")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    net = caffe_pb2.NetParameter()
    with open(args.input_net_proto_file) as f:
        text_format.Merge(f.read(), net)
    print("Drawing net to %s" % args.output_image_file)
    phase = {"ALL": None, "TRAIN": caffe.TRAIN, "TEST": caffe.TEST}[args.phase]
    caffe.draw.draw_net_to_file(net, args.output_image_file, args.rankdir, phase, args.display_lrm)


if __name__ == "__main__":
    main()
