"""pycaffe's Python-side API over the native ``caffe._caffe`` classes: Net with
OrderedDicts of blobs and params, keyword forward/backward, forward_all, and the
solver classes."""
import itertools
from collections import OrderedDict

import numpy as np

from . import _caffe

TEST_PHASE = _caffe.TEST


class Net:
    """A network: ``Net(model, phase, level=0, stages=None, weights=None)`` or the
    legacy ``Net(model, weights, phase)``."""

    def __init__(self, model, *args, level=0, stages=None, weights=None, phase=None):
        args = list(args)
        if args and (isinstance(args[0], (str, bytes)) or hasattr(args[0], "__fspath__")):
            if weights is not None:
                raise TypeError("Net: weights given twice")
            weights = args.pop(0)  # legacy Net(model, weights, phase)
        if args:
            if phase is not None:
                raise TypeError("Net: phase given twice")
            phase = args.pop(0)
        if args:
            raise TypeError("Net(model, phase, level=0, stages=None, weights=None): too many arguments")
        if phase is None:
            raise TypeError("Net: a phase (caffe.TRAIN or caffe.TEST) is required")
        stages = list(stages) if stages is not None else []
        weights = None if weights is None else str(weights)
        self._init(_caffe.Net(str(model), int(phase), int(level), stages, weights))

    def _init(self, native):
        self._net = native
        self._blobs_dict = None
        self._layers = None
        self._names = None

    @classmethod
    def _wrap(cls, native):
        """A Net over a native net built elsewhere (a solver's)."""
        net = cls.__new__(cls)
        net._init(native)
        return net

    # -- structure ---------------------------------------------------------
    @property
    def name(self):
        return self._net.name

    @property
    def phase(self):
        return self._net.phase

    # The names never change, so they are read once: a solver callback can
    # then use a solver net's names, blobs and params while the solver runs.
    @property
    def _blob_names(self):
        if self._names is None:
            self._names = (self._net._blob_names, self._net._layer_names)
        return self._names[0]

    @property
    def _layer_names(self):
        self._blob_names
        return self._names[1]

    @property
    def blobs(self):
        """OrderedDict of blob name -> Blob, in the net's blob order."""
        if self._blobs_dict is None:
            self._blobs_dict = OrderedDict(zip(self._net._blob_names, self._net._blobs))
        return self._blobs_dict

    @property
    def layers(self):
        if self._layers is None:
            self._layers = self._net.layers
        return self._layers

    @property
    def layer_dict(self):
        """OrderedDict of layer name -> Layer."""
        return OrderedDict(zip(self._layer_names, self.layers))

    @property
    def params(self):
        """OrderedDict of layer name -> list of parameter Blobs, for layers that have any."""
        return OrderedDict(
            (name, layer.blobs) for name, layer in zip(self._layer_names, self.layers) if layer.blobs
        )

    @property
    def blob_loss_weights(self):
        """OrderedDict of blob name -> loss weight."""
        return OrderedDict(zip(self._blob_names, self._net._blob_loss_weights))

    @property
    def inputs(self):
        names = self._blob_names
        return [names[i] for i in self._net._inputs]

    @property
    def outputs(self):
        names = self._blob_names
        return [names[i] for i in self._net._outputs]

    @property
    def top_names(self):
        """OrderedDict of layer name -> names of its top blobs."""
        names = self._blob_names
        return OrderedDict(
            (layer, [names[j] for j in self._net._top_ids(i)]) for i, layer in enumerate(self._layer_names)
        )

    @property
    def bottom_names(self):
        """OrderedDict of layer name -> names of its bottom blobs."""
        names = self._blob_names
        return OrderedDict(
            (layer, [names[j] for j in self._net._bottom_ids(i)]) for i, layer in enumerate(self._layer_names)
        )

    def _layer_index(self, name, what):
        try:
            return list(self._layer_names).index(name)
        except ValueError:
            raise KeyError("%s: the net has no layer named %r" % (what, name)) from None

    # -- running -----------------------------------------------------------
    def forward(self, blobs=None, start=None, end=None, **kwargs):
        """Runs the net forward from layer ``start`` to layer ``end`` (names,
        inclusive; default: all). Keyword arguments set input blobs' data.
        Returns {blob name: data array} for the outputs (or ``end``'s blob)
        plus ``blobs``."""
        blobs = list(blobs or [])
        start_ind = 0 if start is None else self._layer_index(start, "forward start")
        if end is None:
            end_ind = len(self._layer_names) - 1
            outputs = set(self.outputs + blobs)
        else:
            end_ind = self._layer_index(end, "forward end")
            outputs = set([end] + blobs)
        self._set_from(kwargs, "data", self.inputs, "inputs")
        self._net._forward(start_ind, end_ind)
        return {out: self._blob(out).data for out in outputs}

    def backward(self, diffs=None, start=None, end=None, **kwargs):
        """Runs the net backward from layer ``start`` down to ``end`` (default:
        all). Keyword arguments set output blobs' diffs. Returns {blob name:
        diff array} for the inputs (or ``end``'s blob) plus ``diffs``."""
        diffs = list(diffs or [])
        start_ind = len(self._layer_names) - 1 if start is None else self._layer_index(start, "backward start")
        if end is None:
            end_ind = 0
            outputs = set(self.inputs + diffs)
        else:
            end_ind = self._layer_index(end, "backward end")
            outputs = set([end] + diffs)
        self._set_from(kwargs, "diff", self.outputs, "outputs")
        self._net._backward(start_ind, end_ind)
        return {out: self._blob(out).diff for out in outputs}

    def _blob(self, name):
        try:
            return self.blobs[name]
        except KeyError:
            raise KeyError("the net has no blob named %r" % (name,)) from None

    def _set_from(self, arrays, field, allowed, what):
        if not arrays:
            return
        unknown = set(arrays) - set(allowed)
        if unknown:
            raise KeyError("%s are not the net's %s %s" % (sorted(unknown), what, allowed))
        for name, value in arrays.items():
            blob = self.blobs[name]
            value = np.asarray(value)
            if value.shape[:1] != blob.shape[:1]:
                raise ValueError(
                    "%s %r: batch of %s does not match the blob's %s" % (field, name, value.shape[:1], blob.shape[:1])
                )
            getattr(blob, field)[...] = value

    def forward_all(self, blobs=None, **kwargs):
        """Runs forward over inputs of any length, a batch at a time (the last
        batch zero-padded), and returns {blob name: array of all outputs}."""
        blobs = list(blobs or [])
        outs = {name: [] for name in set(self.outputs + blobs)}
        total = len(next(iter(kwargs.values()))) if kwargs else 0
        for batch in self._batches(kwargs):
            for name, data in self.forward(blobs=blobs, **batch).items():
                outs[name].extend(data.copy())
        return {name: np.asarray(values[:total] if kwargs else values) for name, values in outs.items()}

    def _batches(self, inputs):
        if not inputs:
            yield {}
            return
        lengths = {len(v) for v in inputs.values()}
        if len(lengths) != 1:
            raise ValueError("forward_all: inputs of different lengths %s" % sorted(lengths))
        total = lengths.pop()
        batch = self.blobs[next(iter(inputs))].shape[0]
        for i in range(0, total, batch):
            chunk = {}
            for name, values in inputs.items():
                part = np.asarray(values[i:i + batch])
                if len(part) < batch:
                    pad = np.zeros((batch - len(part),) + part.shape[1:], dtype=part.dtype)
                    part = np.concatenate([part, pad])
                chunk[name] = part
            yield chunk

    def forward_backward_all(self, blobs=None, diffs=None, **kwargs):
        """forward_all and backward together, a batch at a time: keyword arrays
        named after inputs feed the forward, those named after outputs give the
        backward's top diffs. Returns ({blob: data}, {blob: diff}) of all items."""
        blobs, diffs = list(blobs or []), list(diffs or [])
        fwd_in = {k: v for k, v in kwargs.items() if k in self.inputs}
        bwd_in = {k: v for k, v in kwargs.items() if k in self.outputs}
        unknown = set(kwargs) - set(fwd_in) - set(bwd_in)
        if unknown:
            raise KeyError("%s are neither inputs %s nor outputs %s" % (sorted(unknown), self.inputs, self.outputs))
        outs = {name: [] for name in set(self.outputs + blobs)}
        grads = {name: [] for name in set(self.inputs + diffs)}
        for fb, bb in itertools.zip_longest(self._batches(fwd_in), self._batches(bwd_in), fillvalue={}):
            for name, data in self.forward(blobs=blobs, **fb).items():
                outs[name].extend(data.copy())
            for name, diff in self.backward(diffs=diffs, **bb).items():
                grads[name].extend(diff.copy())
        total = len(next(iter(kwargs.values()))) if kwargs else None
        trim = (lambda v: np.asarray(v[:total])) if total is not None else np.asarray
        return {k: trim(v) for k, v in outs.items()}, {k: trim(v) for k, v in grads.items()}

    def set_input_arrays(self, data, labels):
        """Feeds arrays to a first MemoryData layer (copied): data N x C x H x W,
        labels N (or N x 1 x 1 x 1)."""
        data = np.ascontiguousarray(data, dtype=np.float32)
        labels = np.ascontiguousarray(labels, dtype=np.float32).reshape(-1)
        if data.ndim != 4:
            raise ValueError("set_input_arrays: data must be N x C x H x W, not %s" % (data.shape,))
        self._net._set_input_arrays(data, labels)

    def reshape(self):
        """Reshapes every layer after an input changed shape (take arrays again after)."""
        self._net.reshape()

    def copy_from(self, filename):
        """Copies the trained parameters of same-named layers from a .caffemodel."""
        self._net.copy_from(str(filename))

    def save(self, filename):
        """Writes the parameters as a binary .caffemodel."""
        self._net.save(str(filename))

    def clear_param_diffs(self):
        self._net.clear_param_diffs()

    def share_with(self, other):
        """Uses ``other``'s parameter blobs in every layer both nets have (by
        name), so that training ``other`` shows here (Caffe's
        ShareTrainedLayersWith). Unlike Caffe, the diffs are shared too."""
        self._net.share_with(other._net)
        self._layers = None  # the layers now hold other blobs

    def __repr__(self):
        return "<caffe Net %r>" % (self.name,)


class Solver:
    """A solver from a solver prototxt; the subclasses force the update rule."""

    _type = None

    def __init__(self, filename):
        self._solver = _caffe.Solver(str(filename), self._type)
        self._iter_cell = self._solver._iter_cell
        self._net = None
        self._test_nets = None

    @property
    def type(self):
        return self._solver.type

    @property
    def iter(self):
        """Updates done so far; inside a callback, the iteration running."""
        try:
            return self._solver.iter
        except RuntimeError:  # the solver is running: a callback asks
            return self._iter_cell.value

    @property
    def param(self):
        """The SolverParameter in force, as a caffe_pb2 message (a copy)."""
        from .proto import caffe_pb2
        return caffe_pb2.SolverParameter.FromString(self._solver._param_bytes())

    @property
    def net(self):
        if self._net is None:
            self._net = Net._wrap(self._solver.net)
        return self._net

    @property
    def test_nets(self):
        if self._test_nets is None:
            self._test_nets = [Net._wrap(n) for n in self._solver.test_nets]
        return self._test_nets

    def step(self, iters):
        self._solver.step(int(iters))

    def solve(self, resume=None):
        self._solver.solve(None if resume is None else str(resume))

    def restore(self, filename):
        self._solver.restore(str(filename))

    def snapshot(self):
        self._solver.snapshot()

    def add_callback(self, on_start, on_gradients):
        """Calls ``on_start()`` before each iteration and ``on_gradients()``
        when its gradients are ready, before the update. While the solver runs,
        its nets' names, blobs and params can be read (they are fetched now);
        running a net forward or backward from a callback is an error."""
        if not callable(on_start) or not callable(on_gradients):
            raise TypeError("add_callback(on_start, on_gradients) takes two callables")
        for net in [self.net] + self.test_nets:
            net.blobs, net.layers, net._layer_names
        self._solver.add_callback(on_start, on_gradients)

    def apply_update(self):
        """One update from the current diffs (rate, clipping, decay, the rule);
        ``iter`` does not advance."""
        self._solver.apply_update()

    def share_weights(self, net):
        """Makes ``net`` use this solver's train net weights (by layer name)."""
        self._solver.share_weights(net._net)
        net._layers = None


class SGDSolver(Solver):
    _type = "SGD"


class NesterovSolver(Solver):
    _type = "Nesterov"


class AdaGradSolver(Solver):
    _type = "AdaGrad"


class RMSPropSolver(Solver):
    _type = "RMSProp"


class AdaDeltaSolver(Solver):
    _type = "AdaDelta"


class AdamSolver(Solver):
    _type = "Adam"


def get_solver(filename):
    """The solver of the type the file names (pycaffe's get_solver)."""
    return Solver(filename)
