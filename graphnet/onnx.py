"""ONNX files: a model's inference graph out to other runtimes, and graphs in from them.

``to_onnx`` writes the nodes the model's outputs need (losses and targets
left out), each through its op's ``to_onnx`` (see ``graphnet.ops.Op``), with
the batch axis dynamic and inputs, outputs, nodes and initializers named as
in graphnet. ``from_onnx`` reads what PyTorch's exporters and ``onnx.helper``
write for MLPs back into a Model with the file's weights.

The ``onnx`` package comes with the ``onnx`` extra and is imported only when
one of these functions runs.

>>> import numpy as np, graphnet as gn
>>> g = gn.Graph("tiny")
>>> y = g.output(g.add("dense", g.add("relu", g.input("x", shape=(3,))), units=2, name="out"))
>>> model = gn.Model(g, seed=0)
>>> proto = gn.to_onnx(model, None)
>>> [n.op_type for n in proto.graph.node]
['Relu', 'Gemm']
>>> back = gn.from_onnx(proto)
>>> X = np.ones((5, 3), np.float32)
>>> np.allclose(back.predict({"x": X})["out"], model.predict({"x": X})["out"])
True
"""

import math
import os
import re
from collections import defaultdict

import numpy as np

from .errors import GraphnetError, UnknownOpError
from .graph import NAME, Graph
from .model import Model
from .plugins import registry
from .util import atomic_write
from .version import __version__

DEFAULT_OPSET = 18
"""The opset written unless asked otherwise: onnxruntime, Netron and most runtimes read it."""
MIN_OPSET = 13

_ELEM = {"float32": 1, "float64": 11, "int64": 7, "int32": 6}   # onnx.TensorProto codes
_DTYPE = {v: k for k, v in _ELEM.items()}


class OnnxError(GraphnetError):
    """An ONNX file that cannot be read or a graph that cannot be written as ONNX."""


def _onnx():
    try:
        import onnx
    except ImportError:
        raise OnnxError("ONNX needs the onnx package: pip install 'graphnet[onnx]'") from None
    return onnx


# --- export -------------------------------------------------------------------

class Builder:
    """What an op's ``to_onnx`` writes through, one per graphnet node.

    ``attrs`` (defaults filled in), ``input_shapes`` and ``output_shape`` (per
    sample, no batch axis), ``dtype`` (the model's float numpy dtype) and
    ``opset`` describe the node; ``op`` and ``const`` add to the ONNX graph.
    """

    def __init__(self, exporter, node, input_shapes):
        self.node = node.name
        self.attrs = dict(node.attrs)
        self.input_shapes = tuple(input_shapes)
        self.output_shape = tuple(node.shape)
        self.dtype = exporter.dtype
        self.opset = exporter.opset
        self.nodes = []
        self._ex = exporter

    def op(self, op_type, *inputs, **attrs):
        """Add an ONNX node of ``op_type`` (attrs as keywords; None leaves one out);
        return the name of its (first) output. An input of None is an empty optional one."""
        from onnx import helper
        out = self._ex.fresh(f"{self.node}/{op_type}")
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op_type, ["" if i is None else i for i in inputs],
                                           [out], name=out, **attrs))
        return out

    def buffer(self, name):
        """Add this node's buffer ``name`` (``model.buffers["<node>.<name>"]``) as an
        initializer and return its name."""
        key = f"{self.node}.{name}"
        return self._ex.initializer(key, self._ex.model.buffers[key])

    def const(self, value):
        """Add a constant (an initializer) and return its name: floats in the model's
        dtype, integers as int64 (what ONNX wants for axes and shapes)."""
        arr = np.asarray(value)
        arr = arr.astype(np.int64 if arr.dtype.kind in "iub" else self.dtype)
        return self._ex.initializer(f"{self.node}/const", arr)


class _Exporter:
    def __init__(self, model, opset):
        self.model, self.opset = model, opset
        self.dtype = model.dtype
        self.names = set()
        self.initializers = []
        self.nodes = []

    def fresh(self, base):
        name, k = base, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def initializer(self, base, array):
        from onnx import numpy_helper
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def run(self):
        from onnx import helper
        model = self.model
        if not model.outputs:
            raise OnnxError(f"model {model.name!r} has no outputs to export; mark them with "
                            f"g.output(...)")
        needed = set(model.outputs)
        for out in model.outputs:
            needed |= _ancestors(model.graph, out)
        nodes = model.nodes
        for name in nodes:           # the graphnet names come first, as they are
            if name in needed:
                self.names.add(name)
        inputs = []
        for name, node in nodes.items():
            if name not in needed:
                continue
            if node.kind == "input":
                inputs.append(self._value_info(name, node.dtype, node.shape))
                continue
            if node.kind == "loss":
                raise OnnxError(f"output {name!r} is a loss node; ONNX export writes the "
                                f"inference graph, so mark a prediction as the output")
            self._node(node)
        outputs = [self._value_info(o, "float", nodes[o].shape) for o in model.outputs]
        graph = helper.make_graph(self.nodes, model.name, inputs, outputs, self.initializers)
        opsets = [helper.make_opsetid("", self.opset)]
        return helper.make_model(graph, opset_imports=opsets, producer_name="graphnet",
                                 producer_version=__version__,
                                 ir_version=helper.find_min_ir_version_for(opsets))

    def _value_info(self, name, dtype, shape):
        from onnx import helper
        elem = _ELEM[str(self.dtype) if dtype in ("float", "float32", "float64") else dtype]
        return helper.make_tensor_value_info(name, elem, ["N", *shape])

    def _node(self, node):
        op = node.op
        if getattr(op, "to_onnx", None) is None:
            raise OnnxError(f"node {node.name!r}: op {op.name!r} from {_provenance(op.name)} has "
                            f"no ONNX form; give the op a to_onnx method (an activation: "
                            f"Activation(..., onnx=...)), see docs/plugins.md")
        b = Builder(self, node, [self.model.nodes[i].shape for i in node.inputs])
        names = [i for i in node.inputs]
        names += [self.initializer(key, self.model.params[key]) for key in node.param_keys()]
        try:
            out = op.to_onnx(b, *names)
        except GraphnetError:
            raise
        except Exception as exc:
            raise OnnxError(f"node {node.name!r}: the ONNX form of op {op.name!r} from "
                            f"{_provenance(op.name)} failed: {type(exc).__name__}: {exc}") from exc
        made = {o for n in b.nodes for o in n.output}
        if out in made:      # the node's last step writes the graphnet node's name
            for n in b.nodes:
                n.input[:] = [node.name if i == out else i for i in n.input]
                if out in n.output:
                    n.output[:] = [node.name if o == out else o for o in n.output]
                    n.name = node.name
            self.names.discard(out)
        elif isinstance(out, str) and out in self.names:
            b.nodes.append(_identity(out, node.name))
        else:
            raise OnnxError(f"node {node.name!r}: to_onnx of op {op.name!r} from "
                            f"{_provenance(op.name)} returned {out!r}, not the name of a tensor "
                            f"it made with b.op(...)")
        self.nodes.extend(b.nodes)


def _identity(src, dst):
    from onnx import helper
    return helper.make_node("Identity", [src], [dst], name=dst)


def _ancestors(graph, name):
    import networkx as nx
    return nx.ancestors(graph.nx, name)


def _provenance(op_name):
    entry = registry().tables()["op"].get(op_name)
    if entry is None:
        return "an unknown plugin"
    if entry.distribution:
        return f"plugin {entry.plugin!r} (distribution {entry.distribution})"
    return f"plugin {entry.plugin!r}"


def to_onnx(model, path, opset=None):
    """Write ``model``'s inference graph to ``path`` (None: write nothing) as ONNX.

    The batch axis is dynamic ("N"); inputs, outputs and nodes keep their
    graphnet names and params their ``<node>.<param>`` keys. ``opset`` is the
    ONNX opset (default ``DEFAULT_OPSET``). Returns the ``onnx.ModelProto``,
    checked by ``onnx.checker``.
    """
    onnx = _onnx()
    if not isinstance(model, Model):
        raise OnnxError(f"to_onnx needs a graphnet Model, got {type(model).__name__}")
    latest = onnx.defs.onnx_opset_version()
    if opset is None:
        opset = DEFAULT_OPSET
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= latest:
        raise OnnxError(f"opset must be an integer from {MIN_OPSET} to {latest}, got {opset!r}")
    proto = _Exporter(model, opset).run()
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # an op's ONNX form that ONNX itself refuses
        raise OnnxError(f"the ONNX graph of model {model.name!r} does not check: "
                        f"{str(exc).strip().splitlines()[0]}") from None
    if path is not None:
        data = proto.SerializeToString()
        atomic_write(path, lambda f: f.write(data), OnnxError)
    return proto


# --- import -------------------------------------------------------------------

def with_loss(model, loss, output=None, target="target", name="loss"):
    """A new Model: ``model``'s graph plus the loss node ``loss`` on ``output`` (default the
    one output) against a new input ``target``, with ``model``'s params, ready to train.

    An ONNX file holds the inference graph only; this is how training goes on:

    >>> import graphnet as gn                                              # doctest: +SKIP
    >>> model = gn.onnx.with_loss(gn.from_onnx("mlp.onnx"), "softmax_cross_entropy")
    >>> model.fit({"x": X, "target": labels}, optimizer=gn.optimizer("adam"))
    """
    if output is None:
        if len(model.outputs) != 1:
            raise GraphnetError(f"model {model.name!r} has outputs {model.outputs}; name the "
                                f"one the loss reads with output=...")
        output = model.outputs[0]
    if output not in model.nodes:
        raise GraphnetError(f"{output!r} is not a node of model {model.name!r}")
    op = registry().get("op", loss)
    if op.kind != "loss":
        raise GraphnetError(f"{loss!r} is a {op.kind} op, not a loss")
    shape = model.nodes[output].shape
    labels = 1 in op.int_inputs      # class labels: one integer per sample
    g = model.graph.copy()
    t = g.input(target, shape=shape[:-1] if labels else shape,
                dtype="int64" if labels else "float32")
    g.add(loss, output, t, name=name)
    out = Model(g, seed=model.seed, dtype=model.dtype)
    for key, value in model.params.items():
        out.params[key][...] = value
    return out


def from_onnx(source, seed=0):
    """A Model from an ONNX file (a path, bytes or an ``onnx.ModelProto``) with its weights.

    Initializers become params. Names are kept where graphnet allows them,
    with other characters replaced by "_". An ONNX op with no graphnet
    counterpart is an UnknownOpError naming the op type and the node.
    """
    return _Importer(_read(source)).run(seed)


def _read(source):
    onnx = _onnx()
    if isinstance(source, onnx.ModelProto):
        proto, where = source, "the ONNX model"
    else:
        if isinstance(source, (bytes, bytearray)):
            data, where = bytes(source), "the ONNX bytes"
        else:
            where = f"ONNX file {os.fspath(source)!r}"
            try:
                with open(source, "rb") as f:
                    data = f.read()
            except OSError as exc:
                raise OnnxError(f"cannot read {where}: {exc.strerror or exc}") from None
        try:
            proto = onnx.load_model_from_string(data)
        except Exception as exc:
            raise OnnxError(f"{where} is not an ONNX model ({type(exc).__name__}); export one "
                            f"with torch.onnx.export or gn.to_onnx") from None
    if not proto.graph.output:
        raise OnnxError(f"{where} has no graph outputs: is it an ONNX model file?")
    for t in proto.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise OnnxError(f"{where}: initializer {t.name!r} keeps its data in an external "
                            f"file, which graphnet does not read; save the model as one file")
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise OnnxError(f"{where} is not a valid ONNX model: "
                        f"{str(exc).strip().splitlines()[0]}") from None
    return proto


class _Importer:
    def __init__(self, proto):
        from onnx import numpy_helper, shape_inference
        self.proto = proto
        self.opset = max([o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
                         or [MIN_OPSET])
        graph = proto.graph
        try:
            inferred = shape_inference.infer_shapes(proto).graph
        except Exception:  # shapes are then only known where the file declares them
            inferred = graph
        self.shapes = {}
        for vi in [*inferred.input, *inferred.value_info, *inferred.output]:
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
                self.shapes[vi.name] = tuple(
                    d.dim_value if d.HasField("dim_value") else None
                    for d in vi.type.tensor_type.shape.dim)
        self.consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.skip = set()     # outputs of the ONNX nodes folded into others (or constants)
        for node in graph.node:   # constants, and shape arithmetic folded into constants
            if node.domain not in ("", "ai.onnx"):
                continue
            if node.op_type == "Constant":
                _constant(self, node, node.input, _attrs(node))
            elif not _fold_shape(self, node):
                continue
            self.skip.add(tuple(node.output))
        self.consumers = defaultdict(list)
        for node in graph.node:
            for i in node.input:
                self.consumers[i].append(node)
        self.graph_outputs = [o.name for o in graph.output]
        for o in self.graph_outputs:
            self.consumers[o].append(None)
        self.g = Graph(_clean(graph.name or "onnx_model"))
        self.tensors = {}     # ONNX tensor name -> graphnet node name
        self.params = {}      # "<node>.<param>" -> array
        self.buffers = {}     # "<node>.<buffer>" -> array
        self.taken = {_clean(o) for o in self.graph_outputs}
        floats = [a.dtype for a in self.consts.values() if a.dtype.kind == "f"]
        self.dtype = "float64" if floats and all(d == np.float64 for d in floats) else "float32"

    def run(self, seed):
        graph = self.proto.graph
        for vi in graph.input:
            if vi.name not in self.consts:
                self._input(vi)
        for node in graph.node:
            if tuple(node.output) in self.skip:
                continue
            if node.domain not in ("", "ai.onnx"):
                raise UnknownOpError(f"ONNX node {_label(node)}: op {node.op_type!r} of domain "
                                     f"{node.domain!r} has no graphnet counterpart")
            handler = IMPORTS.get(node.op_type)
            if handler is None:
                raise UnknownOpError(f"ONNX node {_label(node)}: op type {node.op_type!r} has "
                                     f"no graphnet counterpart; graphnet imports "
                                     f"{', '.join(sorted(IMPORTS))}")
            handler(self, node, list(node.input), _attrs(node))
        for o in self.graph_outputs:
            if o not in self.tensors:
                raise OnnxError(f"graph output {o!r} is a constant or a graph input, not "
                                f"computed by any node; graphnet models output computed nodes")
            self.g.output(self.tensors[o])
        model = Model(self.g, seed=seed, dtype=self.dtype)
        for key, value in self.params.items():
            target = model.params[key]
            if target.shape != value.shape:
                raise OnnxError(f"initializer for {key!r} has shape {value.shape}, but the "
                                f"graphnet node needs {target.shape}")
            target[...] = value
        for key, value in self.buffers.items():
            model.buffers[key][...] = value
        return model

    # --- helpers the handlers use ----------------------------------------------
    def _input(self, vi):
        ttype = vi.type.tensor_type
        dtype = _DTYPE.get(ttype.elem_type)
        if dtype is None:
            raise OnnxError(f"graph input {vi.name!r} has ONNX element type {ttype.elem_type}; "
                            f"graphnet takes float, double, int64 and int32 inputs")
        if dtype.startswith("float"):
            dtype = self.dtype
        dims = self.shapes.get(vi.name)
        if not dims:
            raise OnnxError(f"graph input {vi.name!r} declares no shape; graphnet needs "
                            f"(batch, ...) with fixed sizes after the batch axis")
        if any(d is None or d <= 0 for d in dims[1:]):
            raise OnnxError(f"graph input {vi.name!r} has shape {dims}: graphnet needs fixed "
                            f"sizes after the batch axis")
        name = self._name(vi.name, is_output=False)
        self.g.input(name, shape=dims[1:], dtype=dtype)
        self.tensors[vi.name] = name

    def _name(self, onnx_name, is_output):
        base = _clean(onnx_name)
        name, k = base, 1
        while name in self.g.nx or (name in self.taken and not is_output):
            k += 1
            name = f"{base}_{k}"
        return name

    def node_name(self, node, last=None):
        """The graphnet name for what ``node`` (or the node ``last`` it folds into) makes."""
        last = last or node
        out = last.output[0]
        if out in self.graph_outputs:
            return self._name(out, is_output=True)
        return self._name(last.name or out, is_output=False)

    def add(self, op, inputs, node, last=None, **attrs):
        """Add graphnet ``op`` reading ``inputs`` (graphnet names) for ONNX ``node``."""
        try:
            registry().get("op", op)
        except UnknownOpError:
            raise UnknownOpError(f"ONNX node {_label(node)} ({node.op_type}) maps to graphnet op "
                                 f"{op!r}, which no installed plugin provides (graphnet-contrib "
                                 f"has gelu, silu, mish, hard_sigmoid and layer_norm)") from None
        name = self.g.add(op, *inputs, name=self.node_name(node, last), **attrs)
        self.tensors[(last or node).output[0]] = name
        return name

    def tensor(self, onnx_name, node):
        """The graphnet node computing ONNX tensor ``onnx_name``."""
        if onnx_name in self.tensors:
            return self.tensors[onnx_name]
        if onnx_name in self.consts:
            raise OnnxError(f"ONNX node {_label(node)} ({node.op_type}) reads constant "
                            f"{onnx_name!r} where graphnet needs a computed tensor")
        raise OnnxError(f"ONNX node {_label(node)} reads {onnx_name!r}, which no earlier node "
                        f"computes (nodes must be in topological order)")

    def const(self, onnx_name, node, what):
        if onnx_name in self.consts:
            return self.consts[onnx_name]
        raise OnnxError(f"ONNX node {_label(node)} ({node.op_type}): {what} must be a constant "
                        f"(an initializer), got the computed tensor {onnx_name!r}")

    def per_sample(self, onnx_name, node):
        dims = self.shapes.get(onnx_name)
        if dims is None or any(d is None for d in dims[1:]):
            raise OnnxError(f"ONNX node {_label(node)} ({node.op_type}): the shape of "
                            f"{onnx_name!r} is not known; graphnet needs fixed sizes after "
                            f"the batch axis")
        return tuple(dims[1:])

    def only_consumer(self, onnx_name):
        users = self.consumers.get(onnx_name, [])
        return users[0] if len(users) == 1 else None

    def sample_axis(self, axis, rank, node):
        """An ONNX axis (counting the batch) as a graphnet per-sample axis (negative: the same)."""
        if not (-rank <= axis < 0 or 1 <= axis <= rank):
            raise OnnxError(f"ONNX node {_label(node)} ({node.op_type}) works along axis "
                            f"{axis}, the batch axis or out of range; graphnet ops work per "
                            f"sample")
        return axis if axis < 0 else axis - 1

    def dense(self, node, x, weight, bias, last=None):
        if weight.ndim != 2:
            raise OnnxError(f"ONNX node {_label(node)} ({node.op_type}): the weight must be a "
                            f"matrix, got shape {weight.shape}")
        name = self.add("dense", [x], node, last, units=int(weight.shape[1]),
                        **({} if bias is not None else {"use_bias": False}))
        self.params[f"{name}.weight"] = weight
        if bias is not None:
            self.params[f"{name}.bias"] = bias
        return name

    def fold(self, node):
        self.skip.add(tuple(node.output))


def _clean(name):
    """An ONNX name as a valid graphnet name: '/fc1/Gemm' -> 'fc1/Gemm', 'input.1' -> 'input_1'."""
    name = re.sub(r"[^A-Za-z0-9_/\-]", "_", str(name)).strip("/")
    if not name:
        return "node"
    return name if NAME.match(name) else "_" + name


def _label(node):
    return repr(node.name or node.output[0])


def _attrs(node):
    from onnx import helper
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, float):   # ONNX keeps float32: 0.2 comes back as 0.2, not 0.2000000029
            v = float(str(np.float32(v)))
        out[a.name] = v
    return out


def _unsupported_attr(node, attr, value):
    raise OnnxError(f"ONNX node {_label(node)} ({node.op_type}): {attr}={value!r} has no "
                    f"graphnet counterpart")


# --- one function per ONNX op type ------------------------------------------------

BATCH = np.iinfo(np.int64).min
"""The batch size inside folded shape arithmetic: unknown until run time."""


def _fold_shape(imp, node):
    """Fold what PyTorch writes for ``x.view(x.size(0), -1)`` (Shape, Gather, Unsqueeze,
    Concat of shapes) into a constant whose batch entry is BATCH; True if folded."""
    ins, a = list(node.input), _attrs(node)
    if node.op_type == "Shape" and ins[0] not in imp.consts:
        dims = imp.shapes.get(ins[0])
        if not dims or any(d is None for d in dims[1:]):
            return False
        value = np.array([BATCH, *dims[1:]], np.int64)[a.get("start", 0):a.get("end")]
    elif node.op_type in ("Gather", "Unsqueeze", "Squeeze", "Concat") and ins and all(
            i in imp.consts and imp.consts[i].dtype == np.int64 for i in ins if i):
        vals = [imp.consts[i] for i in ins if i]
        if node.op_type == "Gather":
            value = np.take(vals[0], vals[1], axis=a.get("axis", 0))
        elif node.op_type == "Concat":
            value = np.concatenate([np.atleast_1d(v) for v in vals], axis=a.get("axis", 0))
        else:
            axes = a.get("axes") if len(vals) < 2 else vals[1]
            axes = tuple(int(v) for v in np.ravel(axes)) if axes is not None else None
            value = (np.expand_dims(vals[0], axes) if node.op_type == "Unsqueeze"
                     else np.squeeze(vals[0], axes))
    else:
        return False
    imp.consts[node.output[0]] = value
    return True


def _gemm(imp, node, ins, a):
    if a.get("transA", 0):
        _unsupported_attr(node, "transA", a["transA"])
    x = imp.tensor(ins[0], node)
    b = imp.const(ins[1], node, "B")
    w = (b.T if a.get("transB", 0) else b) * np.asarray(a.get("alpha", 1.0), b.dtype)
    bias = None
    if len(ins) > 2 and ins[2]:
        c = imp.const(ins[2], node, "C") * np.asarray(a.get("beta", 1.0), b.dtype)
        bias = _as_bias(c, w.shape[-1], node)
    imp.dense(node, x, np.ascontiguousarray(w), bias)


def _as_bias(c, units, node):
    if c.size == 1 or c.shape[-1:] == (units,) and c.size == units:
        return np.broadcast_to(c.reshape(-1), (units,)).copy()
    raise OnnxError(f"ONNX node {_label(node)} ({node.op_type}): a bias of shape {c.shape} "
                    f"does not fit {units} units; graphnet's dense adds one bias per unit")


def _matmul(imp, node, ins, a):
    x = imp.tensor(ins[0], node)
    w = imp.const(ins[1], node, "the second operand (graphnet has dense layers, not a "
                               "product of two computed tensors)")
    user = imp.only_consumer(node.output[0])   # MatMul + Add of a bias: one dense
    if user is not None and user.op_type == "Add":
        other = [i for i in user.input if i != node.output[0]]
        if len(other) == 1 and other[0] in imp.consts and w.ndim == 2:
            c = imp.consts[other[0]]
            if c.size == w.shape[1] and c.shape[-1:] == (w.shape[1],):
                imp.fold(user)
                imp.dense(node, x, w, c.reshape(-1).copy(), last=user)
                return
    imp.dense(node, x, w, None)


def _merge(op):
    def merge(imp, node, ins, a):
        imp.add(op, [imp.tensor(i, node) for i in ins], node)
    return merge


def _unsqueeze(imp, node, ins, a):
    axes = a.get("axes") if imp.opset < 13 else imp.const(ins[1], node, "axes")
    axes = sorted(int(v) for v in np.ravel(axes))
    users = imp.consumers.get(node.output[0], [])
    leading = axes == list(range(1, 1 + len(axes)))
    if leading and users and all(u is not None and u.op_type in ("Add", "Sub", "Mul")
                                 for u in users):
        # graphnet's merges pad the lower-rank input after the batch axis themselves
        imp.tensors[node.output[0]] = imp.tensor(ins[0], node)
        return
    imp.add("reshape", [imp.tensor(ins[0], node)], node,
            shape=list(imp.per_sample(node.output[0], node)))


def _concat(imp, node, ins, a):
    rank = len(imp.per_sample(ins[0], node))
    imp.add("concat", [imp.tensor(i, node) for i in ins], node,
            axis=imp.sample_axis(a["axis"], rank, node))


def _flatten(imp, node, ins, a):
    if a.get("axis", 1) != 1:
        _unsupported_attr(node, "axis", a["axis"])
    imp.add("flatten", [imp.tensor(ins[0], node)], node)


def _reshape(imp, node, ins, a):
    shape = [int(d) for d in imp.const(ins[1], node, "the shape")]
    src = imp.per_sample(ins[0], node)
    if not shape:
        _unsupported_attr(node, "shape", shape)
    rest = [src[i] if d == 0 and not a.get("allowzero", 0) and i < len(src) else d
            for i, d in enumerate(shape[1:])]
    if BATCH in rest:
        _unsupported_attr(node, "shape", shape)   # the batch size moved off axis 0
    keeps_batch = shape[0] in (0, -1, BATCH) and (shape[0] != -1 or -1 not in rest)
    if not keeps_batch and shape[0] > 0 and -1 not in rest and math.prod(rest) == math.prod(src):
        keeps_batch = True     # the batch size of the export, with the samples kept whole
    if not keeps_batch:
        raise OnnxError(f"ONNX node {_label(node)} (Reshape) to {shape} mixes the batch axis "
                        f"with the others; graphnet reshapes each sample")
    imp.add("reshape", [imp.tensor(ins[0], node)], node, shape=rest)


def _identity_op(imp, node, ins, a):
    if ins[0] in imp.consts:
        imp.consts[node.output[0]] = imp.consts[ins[0]]
        return
    imp.add("identity", [imp.tensor(ins[0], node)], node)


def _dropout(imp, node, ins, a):
    if len(node.output) > 1 and imp.consumers.get(node.output[1]):
        raise OnnxError(f"ONNX node {_label(node)} (Dropout): its mask output is used, which "
                        f"graphnet's dropout does not give")
    rate = a.get("ratio", 0.5)
    if imp.opset >= 12 and len(ins) > 1 and ins[1]:
        rate = float(imp.const(ins[1], node, "ratio"))
    imp.add("dropout", [imp.tensor(ins[0], node)], node, rate=float(rate))


def _softmax(imp, node, ins, a):
    rank = len(imp.per_sample(ins[0], node))
    axis = a.get("axis", -1 if imp.opset >= 13 else 1)
    if imp.opset < 13 and rank != 1:
        raise OnnxError(f"ONNX node {_label(node)} (Softmax, opset {imp.opset}) flattens "
                        f"before its axis; graphnet imports it for (batch, features) only")
    imp.add("softmax", [imp.tensor(ins[0], node)], node,
            axis=imp.sample_axis(axis, rank, node))


def _activation(op, **defaults):
    def activation(imp, node, ins, a):
        attrs = {k: float(a.get(k, v)) for k, v in defaults.items()}
        imp.add(op, [imp.tensor(ins[0], node)], node, **attrs)
    return activation


def _sigmoid(imp, node, ins, a):
    user = imp.only_consumer(node.output[0])       # x * sigmoid(x): silu, as PyTorch writes it
    if (user is not None and user.op_type == "Mul" and sorted(user.input) ==
            sorted([ins[0], node.output[0]]) and "silu" in registry().tables()["op"]):
        imp.fold(user)
        imp.add("silu", [imp.tensor(ins[0], node)], node, last=user)
        return
    imp.add("sigmoid", [imp.tensor(ins[0], node)], node)


def _greater(imp, node, ins, a):
    """Where(x > threshold, x, softplus(x)): how the dynamo exporter writes softplus,
    which graphnet's own softplus already computes without overflow."""
    user = imp.only_consumer(node.output[0])
    soft = imp.tensors.get(user.input[2]) if user is not None and len(user.input) == 3 else None
    if (user is not None and user.op_type == "Where" and ins[1] in imp.consts
            and list(user.input[:2]) == [node.output[0], ins[0]] and soft is not None
            and imp.g.node(soft)["op"] == "softplus"
            and imp.g.node(soft)["inputs"] == [imp.tensor(ins[0], node)]):
        imp.fold(user)
        imp.tensors[user.output[0]] = soft
        return
    raise UnknownOpError(f"ONNX node {_label(node)}: op type 'Greater' has no graphnet "
                         f"counterpart (outside softplus's Where(x > t, x, Softplus(x)))")


def _hard_sigmoid(imp, node, ins, a):
    alpha, beta = a.get("alpha", 0.2), a.get("beta", 0.5)
    if not (math.isclose(alpha, 1 / 6, rel_tol=1e-6) and math.isclose(beta, 0.5)):
        _unsupported_attr(node, "alpha, beta", (alpha, beta))    # graphnet's is x/6 + 1/2
    imp.add("hard_sigmoid", [imp.tensor(ins[0], node)], node)


def _gelu(imp, node, ins, a):
    if a.get("approximate", "none") != "tanh":
        _unsupported_attr(node, "approximate", a.get("approximate", "none"))  # gelu uses tanh
    imp.add("gelu", [imp.tensor(ins[0], node)], node)


def _layer_norm(imp, node, ins, a):
    rank = len(imp.per_sample(ins[0], node))
    if a.get("axis", -1) not in (-1, rank):
        _unsupported_attr(node, "axis", a["axis"])    # layer_norm normalises the last axis
    gamma = imp.const(ins[1], node, "the scale")
    beta = (imp.const(ins[2], node, "the bias") if len(ins) > 2 and ins[2]
            else np.zeros_like(gamma))
    name = imp.add("layer_norm", [imp.tensor(ins[0], node)], node,
                   eps=float(a.get("epsilon", 1e-5)))
    imp.params[f"{name}.gamma"], imp.params[f"{name}.beta"] = gamma, beta


def _square(node, a, key, default=None):
    """One side of a square kernel or window, or stride, from an ONNX list attr."""
    values = list(a.get(key, default or []))
    if len(values) != 2 or values[0] != values[1]:
        _unsupported_attr(node, key, values)   # graphnet's kernels and windows are square
    return int(values[0])


def _no_pads(node, a, allowed=0):
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if len(set(pads)) != 1 or (pads[0] and not allowed):
        _unsupported_attr(node, "pads", pads)  # graphnet pads all four sides alike
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        _unsupported_attr(node, "auto_pad", a["auto_pad"])
    if a.get("ceil_mode", 0):
        _unsupported_attr(node, "ceil_mode", a["ceil_mode"])
    return int(pads[0])


def _conv(imp, node, ins, a):
    if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])):
        _unsupported_attr(node, "group, dilations", (a.get("group"), a.get("dilations")))
    w = imp.const(ins[1], node, "the weight")
    pad = _no_pads(node, a, allowed=1)
    bias = imp.const(ins[2], node, "the bias") if len(ins) > 2 and ins[2] else None
    name = imp.add("conv2d", [imp.tensor(ins[0], node)], node, filters=int(w.shape[0]),
                   kernel_size=_square(node, a, "kernel_shape", w.shape[2:]),
                   stride=_square(node, a, "strides", [1, 1]), padding=pad,
                   **({} if bias is not None else {"use_bias": False}))
    imp.params[f"{name}.weight"] = w
    if bias is not None:
        imp.params[f"{name}.bias"] = bias


def _pool(op):
    def pool(imp, node, ins, a):
        _no_pads(node, a)
        if op == "avg_pool2d" and a.get("count_include_pad", 0):
            _unsupported_attr(node, "count_include_pad", 1)
        k = _square(node, a, "kernel_shape")
        s = _square(node, a, "strides", [k, k])
        imp.add(op, [imp.tensor(ins[0], node)], node, pool_size=k,
                **({} if s == k else {"stride": s}))
    return pool


def _reduce_mean(imp, node, ins, a):
    axes = a.get("axes") if len(ins) < 2 else imp.const(ins[1], node, "axes")
    rank = len(imp.per_sample(ins[0], node)) + 1
    if rank != 4 or sorted(int(v) % 4 for v in np.ravel(axes)) != [2, 3] or a.get("keepdims", 1):
        _unsupported_attr(node, "axes, keepdims", (axes, a.get("keepdims", 1)))
    imp.add("global_avg_pool2d", [imp.tensor(ins[0], node)], node)


def _global_average_pool(imp, node, ins, a):
    """GlobalAveragePool keeps (C, 1, 1): graphnet's global_avg_pool2d (C,), then a reshape."""
    shape = imp.per_sample(ins[0], node)
    if len(shape) != 3:
        _unsupported_attr(node, "input rank", len(shape) + 1)
    pooled = imp.g.add("global_avg_pool2d", imp.tensor(ins[0], node),
                       name=imp._name(f"{node.name or node.output[0]}_mean", is_output=False))
    imp.add("reshape", [pooled], node, shape=[shape[0], 1, 1])


def _batch_norm(imp, node, ins, a):
    if a.get("training_mode", 0) or len(node.output) > 1:
        _unsupported_attr(node, "training_mode", 1)
    gamma, beta, mean, var = (imp.const(i, node, what) for i, what in
                              zip(ins[1:], ("the scale", "the bias", "the mean", "the variance")))
    name = imp.add("batch_norm", [imp.tensor(ins[0], node)], node,
                   eps=float(a.get("epsilon", 1e-5)), momentum=float(a.get("momentum", 0.9)))
    imp.params[f"{name}.gamma"], imp.params[f"{name}.beta"] = gamma, beta
    imp.buffers[f"{name}.running_mean"], imp.buffers[f"{name}.running_var"] = mean, var


def _gather(imp, node, ins, a):
    table = imp.const(ins[0], node, "the table (graphnet's embedding holds it)")
    if a.get("axis", 0) != 0 or table.ndim != 2:
        _unsupported_attr(node, "axis", a.get("axis", 0))
    name = imp.add("embedding", [imp.tensor(ins[1], node)], node, vocab=int(table.shape[0]),
                   units=int(table.shape[1]))
    imp.params[f"{name}.weight"] = table


def _constant(imp, node, ins, a):
    from onnx import numpy_helper
    if "value" not in a:
        _unsupported_attr(node, "attribute", sorted(a))
    imp.consts[node.output[0]] = numpy_helper.to_array(a["value"])


IMPORTS = {
    "Gemm": _gemm, "MatMul": _matmul,
    "Add": _merge("add"), "Sub": _merge("sub"), "Mul": _merge("mul"), "Unsqueeze": _unsqueeze,
    "Concat": _concat, "Flatten": _flatten, "Reshape": _reshape, "Identity": _identity_op,
    "Dropout": _dropout, "Softmax": _softmax, "Constant": _constant,
    "Relu": _activation("relu"), "Tanh": _activation("tanh"), "Sigmoid": _sigmoid,
    "Softplus": _activation("softplus"), "Greater": _greater, "Elu": _activation("elu", alpha=1.0),
    "LeakyRelu": _activation("leaky_relu", alpha=0.01),
    "HardSigmoid": _hard_sigmoid, "Gelu": _gelu, "Mish": _activation("mish"),
    "LayerNormalization": _layer_norm,
    "Conv": _conv, "MaxPool": _pool("max_pool2d"), "AveragePool": _pool("avg_pool2d"),
    "ReduceMean": _reduce_mean, "GlobalAveragePool": _global_average_pool,
    "BatchNormalization": _batch_norm, "Gather": _gather,
}
"""ONNX op type -> the function that adds its graphnet node(s)."""
