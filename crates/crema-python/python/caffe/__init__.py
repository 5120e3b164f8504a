"""pycaffe's ``caffe`` module on crema (Caffe rebuilt in Rust).

The same names as BVLC Caffe's Python module: ``caffe.Net``, the solvers,
``set_mode_cpu``/``set_mode_gpu``, ``TRAIN``/``TEST``, ``caffe.proto.caffe_pb2``.
"""
from ._caffe import (
    __version__,
    CaffeError,
    TRAIN,
    TEST,
    init_log,
    log,
    layer_type_list,
    set_device,
    set_mode_cpu,
    set_mode_gpu,
    set_random_seed,
    Blob,
    BlobVec,
    Layer,
)
from .pycaffe import (
    Net,
    Solver,
    SGDSolver,
    NesterovSolver,
    AdaGradSolver,
    RMSPropSolver,
    AdaDeltaSolver,
    AdamSolver,
    get_solver,
)
from . import io, proto
from .classifier import Classifier
from .detector import Detector
from .net_spec import layers, params, NetSpec, to_proto

__all__ = [
    "__version__", "CaffeError", "TRAIN", "TEST", "init_log", "log", "layer_type_list",
    "set_device", "set_mode_cpu", "set_mode_gpu", "set_random_seed", "Blob", "BlobVec", "Layer",
    "Net", "Solver", "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver",
    "AdaDeltaSolver", "AdamSolver", "get_solver", "io", "proto", "layers", "params", "NetSpec", "to_proto", "Classifier", "Detector",
]
