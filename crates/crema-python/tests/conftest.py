"""Shared fixtures: where Caffe's real files are (../shared/data beside the
repo, or $CREMA_SHARED_DATA); tests that need them skip loudly when absent."""
import os
import pathlib
import struct

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]


def shared_data():
    root = pathlib.Path(os.environ.get("CREMA_SHARED_DATA", REPO.parent / "shared" / "data"))
    return root if root.is_dir() else None


def need(*parts):
    """The path of a shared data file, or a loud skip when it is absent."""
    root = shared_data()
    path = None if root is None else root.joinpath(*parts)
    if path is None or not path.exists():
        msg = "skipped: shared data file %s is absent" % "/".join(parts)
        print("!!! " + msg)
        pytest.skip(msg)
    return path


@pytest.fixture
def lenet():
    d = ("models", "lenet_summerlife")
    return need(*d, "lenet.prototxt"), need(*d, "lenet_iter_10000.caffemodel")


def read_idx(path):
    """An MNIST IDX file as a numpy array (big-endian header of dims)."""
    raw = pathlib.Path(path).read_bytes()
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def blob_array(proto):
    """A BlobProto's data with its shape (current or legacy 4-D fields)."""
    if proto.HasField("shape"):
        shape = tuple(proto.shape.dim)
    else:
        shape = (proto.num, proto.channels, proto.height, proto.width)
    return np.asarray(proto.data, dtype=np.float32).reshape(shape)
