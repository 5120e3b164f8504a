"""Nets written in Python: ``NetSpec``, ``layers`` (``L``) and ``params`` (``P``),
pycaffe's net_spec API, producing ``caffe_pb2.NetParameter`` messages.

    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[64, 1, 28, 28]))
    n.conv1 = L.Convolution(n.data, num_output=20, kernel_size=5)
    n.pool1 = L.Pooling(n.conv1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    print(n.to_proto())

Keyword arguments go to the LayerParameter field of that name (``name``,
``param``, ``loss_weight``, ``include`` ...) and otherwise into the layer's own
``<type>_param`` message; lists fill repeated fields, dicts fill messages.
"""
from collections import Counter, OrderedDict

from .proto import caffe_pb2


def param_name_dict():
    """Layer type -> the prefix of its LayerParameter field ``<prefix>_param``,
    found by matching each ``*_param`` field's message type ``<Type>Parameter``."""
    mapping = {}
    for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        if field.name.endswith("_param") and field.message_type is not None:
            type_name = field.message_type.name
            if type_name.endswith("Parameter"):
                mapping[type_name[: -len("Parameter")]] = field.name[: -len("_param")]
    return mapping


def assign_proto(proto, name, value):
    """Sets ``proto.name`` from a Python value: a list fills a repeated field
    (of messages when its items are dicts), a dict fills a message field, and a
    scalar given for a repeated field becomes a one-item list."""
    target = getattr(proto, name)
    repeated = hasattr(target, "extend")
    if repeated and not isinstance(value, (list, tuple)):
        value = [value]
    if isinstance(value, (list, tuple)):
        if not repeated:
            raise TypeError("%s.%s is not a repeated field" % (type(proto).__name__, name))
        for item in value:
            if isinstance(item, dict):
                msg = target.add()
                for k, v in item.items():
                    assign_proto(msg, k, v)
            else:
                target.append(item)
    elif isinstance(value, dict):
        for k, v in value.items():
            assign_proto(target, k, v)
    else:
        setattr(proto, name, value)


class Top:
    """One output of a layer function; name it by assigning it to a NetSpec."""

    def __init__(self, fn, n):
        self.fn = fn
        self.n = n

    def to_proto(self):
        """A NetParameter holding the layers this top depends on."""
        return to_proto(self)

    def _to_proto(self, layers, names, autonames):
        return self.fn._to_proto(layers, names, autonames)


class Function:
    """A layer still to be written: its type, inputs and parameters."""

    def __init__(self, type_name, inputs, params):
        self.type_name = type_name
        for i in inputs:
            if not isinstance(i, Top):
                raise TypeError("%s: bottoms must be tops of other layers, not %r" % (type_name, i))
        self.inputs = inputs
        self.params = dict(params)
        self.ntop = self.params.pop("ntop", 1)
        self.in_place = self.params.pop("in_place", False)
        if self.in_place and self.ntop != len(inputs):
            raise ValueError("%s: in_place needs as many tops as bottoms" % type_name)
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _auto_name(self, names, autonames):
        autonames[self.type_name] += 1
        return self.type_name + str(autonames[self.type_name])

    def _top_name(self, top, names, autonames):
        if top not in names:
            names[top] = self._auto_name(names, autonames)
        return names[top]

    def _name(self, names, autonames):
        # A layer is named after its first top, as Caffe's examples name them.
        if self not in names:
            names[self] = (
                self._top_name(self.tops[0], names, autonames) if self.ntop > 0
                else self._auto_name(names, autonames)
            )
        return names[self]

    def _to_proto(self, layers, names, autonames):
        if self in layers:
            return
        bottoms = []
        for inp in self.inputs:
            inp._to_proto(layers, names, autonames)
            bottoms.append(layers[inp.fn].top[inp.n])
        layer = caffe_pb2.LayerParameter()
        layer.type = self.type_name
        layer.bottom.extend(bottoms)
        if self.in_place:
            layer.top.extend(bottoms)
        else:
            for top in self.tops:
                layer.top.append(self._top_name(top, names, autonames))
        layer.name = self._name(names, autonames)
        for key, value in self.params.items():
            if key in caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name:
                assign_proto(layer, key, value)
            else:
                prefix = param_name_dict().get(self.type_name)
                if prefix is None:
                    raise AttributeError("%s has no %r field and no %s_param" % (self.type_name, key, self.type_name))
                try:
                    assign_proto(layer, prefix + "_param", {key: value})
                except AttributeError:
                    raise AttributeError("%s_param has no field %r" % (prefix, key)) from None
        layers[self] = layer


def to_proto(*tops):
    """A NetParameter with the layers needed to compute ``tops``, auto-named."""
    layers, names, autonames = OrderedDict(), {}, Counter()
    for top in tops:
        top._to_proto(layers, names, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


class NetSpec:
    """Named tops: assign layer outputs as attributes (or items); to_proto
    writes every layer they need, named by the attribute names."""

    def __init__(self):
        super().__setattr__("tops", OrderedDict())

    def __setattr__(self, name, value):
        self.tops[name] = value

    def __getattr__(self, name):
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setitem__(self, key, value):
        self.__setattr__(key, value)

    def __getitem__(self, item):
        return self.tops[item]

    def __delitem__(self, item):
        del self.tops[item]

    def keys(self):
        return list(self.tops.keys())

    def vals(self):
        return list(self.tops.values())

    def to_proto(self):
        names = {top: name for name, top in self.tops.items()}
        autonames = Counter()
        layers = OrderedDict()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


class Layers:
    """``L.<Type>(*bottoms, **params)``: a layer of that type; returns its top,
    a tuple of tops when ``ntop > 1``, or the layer function when ``ntop=0``."""

    def __getattr__(self, name):
        def layer_fn(*args, **kwargs):
            fn = Function(name, args, kwargs)
            if fn.ntop == 0:
                return fn
            if fn.ntop == 1:
                return fn.tops[0]
            return fn.tops
        return layer_fn


class Parameters:
    """``P.<Type>.<VALUE>``: an enum value of ``<Type>Parameter``, e.g. ``P.Pooling.MAX``."""

    def __getattr__(self, name):
        message = getattr(caffe_pb2, name + "Parameter")

        class _Values:
            def __getattr__(self, value):
                return getattr(message, value)
        return _Values()


layers = Layers()
params = Parameters()
