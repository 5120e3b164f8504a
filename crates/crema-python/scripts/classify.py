#!/usr/bin/env python3
"""classify.py: class scores of images with a trained net, as Caffe's
python/classify.py: an image file, a directory of images (--ext) or a .npy
array of H x W x K images in, a .npy of N x classes scores out."""
import argparse
import glob
import os
import sys
import time

import numpy as np

import caffe


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("input_file", help="an image, a directory of images, or a .npy of images")
    p.add_argument("output_file", help="the .npy file the scores are written to")
    p.add_argument("--model_def", required=True, help="the deploy prototxt")
    p.add_argument("--pretrained_model", required=True, help="the trained .caffemodel")
    p.add_argument("--gpu", action="store_true", help="GPU mode (crema warns and stays on the CPU)")
    p.add_argument("--center_only", action="store_true",
                   help="classify the centre crop only, instead of averaging the ten oversampled crops")
    p.add_argument("--images_dim", default="256,256",
                   help="'height,width' the images are resized to before cropping")
    p.add_argument("--mean_file", default="", help="a .npy mean (C x H x W, or C) subtracted from the inputs")
    p.add_argument("--input_scale", type=float, help="factor applied after the mean is subtracted")
    p.add_argument("--raw_scale", type=float, default=255.0,
                   help="factor applied to the [0, 1] images before the mean is subtracted")
    p.add_argument("--channel_swap", default="2,1,0",
                   help="input channel order (RGB images to BGR nets: 2,1,0); '' keeps it")
    p.add_argument("--ext", default="jpg", help="the image extension when input_file is a directory")
    return p.parse_args(argv)


def load_inputs(path, ext):
    if path.endswith("npy"):
        return list(np.load(path))
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "*." + ext)))
        if not files:
            raise SystemExit("classify.py: no *.%s images in %s" % (ext, path))
        return [caffe.io.load_image(f) for f in files]
    return [caffe.io.load_image(path)]


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    image_dims = [int(s) for s in args.images_dim.split(",")]
    mean = np.load(args.mean_file) if args.mean_file else None
    channel_swap = [int(s) for s in args.channel_swap.split(",")] if args.channel_swap else None
    if args.gpu:
        caffe.set_mode_gpu()
    else:
        caffe.set_mode_cpu()
    classifier = caffe.Classifier(args.model_def, args.pretrained_model, image_dims=image_dims, mean=mean,
                                  input_scale=args.input_scale, raw_scale=args.raw_scale,
                                  channel_swap=channel_swap)
    inputs = load_inputs(os.path.expanduser(args.input_file), args.ext)
    print("Classifying %d inputs." % len(inputs))
    start = time.time()
    predictions = classifier.predict(inputs, not args.center_only)
    print("Done in %.2f s." % (time.time() - start))
    print("Saving results into %s" % args.output_file)
    np.save(args.output_file, predictions)


if __name__ == "__main__":
    main()
