"""Pictures of a NetParameter with graphviz, through pydot (``pip install
pydot``; the ``dot`` program renders PNG/SVG/PDF, while 'dot'/'raw' output is
graphviz source and needs no ``dot``). Caffe's layout: layers are filled
record boxes coloured by type (in-place neuron layers light green), blobs
are octagons, edges run bottom -> layer -> top, labelled with the output
size of the layer."""
from .proto import caffe_pb2

try:
    import pydot
except ImportError:  # the module stays importable; drawing says what is missing
    pydot = None

LAYER_STYLE_DEFAULT = {"shape": "record", "fillcolor": "#6495ED", "style": "filled"}
NEURON_LAYER_STYLE = {"shape": "record", "fillcolor": "#90EE90", "style": "filled"}
BLOB_STYLE = {"shape": "octagon", "fillcolor": "#E0E0E0", "style": "filled"}

# Formats that are graphviz source, written without running `dot`.
SOURCE_FORMATS = ("dot", "raw", "gv")


def _pydot():
    if pydot is None:
        raise ImportError("caffe.draw needs pydot: pip install pydot (and graphviz's `dot` for images)")
    return pydot


def get_pooling_types_dict():
    """{PoolMethod number: name}."""
    return {v.number: k for k, v in caffe_pb2.PoolingParameter.PoolMethod.DESCRIPTOR.values_by_name.items()}


def get_edge_label(layer):
    """What flows out of a layer: the batch of a Data layer, the outputs of a
    Convolution/Deconvolution/InnerProduct, nothing for the others."""
    if layer.type == "Data":
        return "Batch " + str(layer.data_param.batch_size)
    if layer.type in ("Convolution", "Deconvolution"):
        return str(layer.convolution_param.num_output)
    if layer.type == "InnerProduct":
        return str(layer.inner_product_param.num_output)
    return '""'


def get_layer_lr_mult(layer):
    """(weights lr_mult, bias lr_mult) of a Convolution/Deconvolution/InnerProduct (1.0 unset)."""
    if layer.type not in ("Convolution", "Deconvolution", "InnerProduct"):
        raise ValueError("%s layers have no learning rate multipliers" % layer.type)
    mults = [p.lr_mult for p in layer.param[:2]]
    mults += [1.0] * (2 - len(mults))
    if len(layer.param) > 2:
        raise ValueError("%s: more than two param specs" % layer.name)
    return tuple(mults)


def get_layer_label(layer, rankdir, display_lrm=False):
    """The text of a layer's box: name, (type), for spatial layers kernel
    size / stride / pad, and with display_lrm the lr multipliers. Parts are
    separated by spaces in vertical layouts (TB/BT), by line breaks otherwise."""
    sep = " " if rankdir in ("TB", "BT") else r"\n"
    parts = [layer.name]
    if layer.type == "Pooling":
        parts.append("(%s %s)" % (layer.type, get_pooling_types_dict()[layer.pooling_param.pool]))
    else:
        parts.append("(%s)" % layer.type)
    if layer.type in ("Convolution", "Deconvolution", "Pooling"):
        if layer.type == "Pooling":
            p = layer.pooling_param
            kernel, stride, pad = p.kernel_size, p.stride, p.pad
        else:
            p = layer.convolution_param
            kernel = p.kernel_size[0] if len(p.kernel_size) else 1
            stride = p.stride[0] if len(p.stride) else 1
            pad = p.pad[0] if len(p.pad) else 0
        parts.append(sep.join(["kernel size: %d" % kernel, "stride: %d" % stride, "pad: %d" % pad]))
    if display_lrm and layer.type in ("Convolution", "Deconvolution", "InnerProduct"):
        lrm0, lrm1 = get_layer_lr_mult(layer)
        if lrm0 or lrm1:
            parts.append("lr mult: %.1f, %.1f" % (lrm0, lrm1))
    # Quoted, or graphviz would read the colons as ports.
    return '"%s"' % sep.join(parts)


def choose_color_by_layertype(layertype):
    """Box colour: convolutions red, pooling orange, inner products purple, others blue."""
    return {"Convolution": "#FF5050", "Deconvolution": "#FF5050", "Pooling": "#FF9900",
            "InnerProduct": "#CC33FF"}.get(layertype, "#6495ED")


def _in_phase(layer, phase):
    if phase is None:
        return True
    if len(layer.include) and len(layer.exclude):
        raise ValueError("layer %s has both include and exclude specified." % layer.name)
    if len(layer.include):
        return any(rule.phase == phase for rule in layer.include)
    return not any(rule.phase == phase for rule in layer.exclude)


def get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None, display_lrm=False):
    """A pydot Dot graph of a NetParameter laid out in ``rankdir`` ('LR',
    'TB', 'BT', 'RL'); ``phase`` (caffe.TRAIN/TEST) keeps only that phase's
    layers (judged by the layers' phase include/exclude rules)."""
    pd = _pydot()
    graph = pd.Dot(caffe_net.name or "Net", graph_type="digraph", rankdir=rankdir)
    nodes, edges = {}, []
    for layer in caffe_net.layer:
        if not _in_phase(layer, phase):
            continue
        node = "%s_%s" % (layer.name, layer.type)
        label = get_layer_label(layer, rankdir, display_lrm=display_lrm)
        if len(layer.bottom) == 1 and len(layer.top) == 1 and layer.bottom[0] == layer.top[0]:
            style = NEURON_LAYER_STYLE  # in place: a neuron layer
        else:
            style = dict(LAYER_STYLE_DEFAULT, fillcolor=choose_color_by_layertype(layer.type))
        nodes[node] = pd.Node(_quote(node), label=label, **style)
        for bottom in layer.bottom:
            nodes[bottom + "_blob"] = pd.Node(_quote(bottom + "_blob"), label=_quote(bottom), **BLOB_STYLE)
            edges.append((bottom + "_blob", node, '""'))
        for top in layer.top:
            # A top read later is drawn when it becomes that layer's bottom.
            nodes.setdefault(top + "_blob", pd.Node(_quote(top + "_blob"), label=_quote(top), **BLOB_STYLE))
            edges.append((node, top + "_blob", get_edge_label(layer) if label_edges else '""'))
    for n in nodes.values():
        graph.add_node(n)
    for src, dst, label in edges:
        graph.add_edge(pd.Edge(nodes[src], nodes[dst], label=label))
    return graph


def _quote(name):
    return '"%s"' % name.replace('"', r'\"')


def draw_net(caffe_net, rankdir, ext="png", phase=None, display_lrm=False):
    """The drawing as bytes in format ``ext`` ('png', 'svg', 'pdf', ... through
    graphviz's `dot`; 'dot', 'raw' or 'gv' for graphviz source)."""
    graph = get_pydot_graph(caffe_net, rankdir, phase=phase, display_lrm=display_lrm)
    if ext in SOURCE_FORMATS:
        return graph.to_string().encode("utf-8")
    try:
        return graph.create(format=ext)
    except FileNotFoundError as e:
        raise RuntimeError("drawing %s needs graphviz's `dot` program (Debian: apt-get install graphviz); "
                           "'.dot' output needs none" % ext) from e


def draw_net_to_file(caffe_net, filename, rankdir="LR", phase=None, display_lrm=False):
    """Writes the drawing to ``filename`` in the format its extension names
    ('.raw'/'.dot': graphviz source to render yourself)."""
    filename = str(filename)
    ext = filename[filename.rfind(".") + 1:]
    data = draw_net(caffe_net, rankdir, ext, phase, display_lrm)
    with open(filename, "wb") as f:
        f.write(data)
