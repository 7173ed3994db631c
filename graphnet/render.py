"""Draw a Graph or a Model with graphviz, so that people can read it.

>>> import graphnet as gn
>>> g = gn.Graph("mlp")
>>> x = g.input("x", shape=(2,))
>>> h = g.add("tanh", g.add("dense", x, units=16, name="fc1"))
>>> dot = gn.render(g)                        # a graphviz.Digraph; nothing written
>>> "dense 16" in dot.source
True

Every node shows its name, its op with the attrs that matter (``dense 128``,
``elu alpha=1.0``, ``dropout 0.2``), its output shape with the batch as N and
its param count; edges carry the shape of the tensor they hold. The node's
shape and colour say its kind (input, layer, activation, merge, shape op,
loss); outputs get a double border. ``overlay="grad"`` or
``overlay="activation"`` recolour the nodes from the last forward (and
backward) pass. ``collapse=True`` folds a layer and the activations or
dropouts that follow it into one block; names with a ``/`` (``block1/fc``)
group nodes into clusters. See docs/rendering.md.
"""

import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import graphviz
import networkx as nx
import numpy as np

from .errors import GraphnetError
from .plugins import registry

FORMATS = ("svg", "png", "pdf", "dot")
RANKDIRS = ("TB", "LR", "BT", "RL")
OVERLAYS = ("grad", "activation")
LEGEND_ID = "legend.graphnet"   # '.' is not allowed in node names, so it never clashes

MISSING_DOT = ("graphviz's dot program is missing, and writing {what} needs it. Install it: "
               "`apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) or "
               "`conda install graphviz`, then check that `dot -V` runs. Writing a .dot file "
               "works without it.")

# Node style per kind: (graphviz shape, style, fill colour). Layers without params
# (dropout) are dashed; outputs get a second border; a node that fails to compile
# gets a red border.
STYLES = {
    "input": ("invhouse", "filled", "#cfe2f3"),
    "layer": ("box", "filled", "#fce5cd"),
    "layer0": ("box", "filled,dashed", "#fff2cc"),
    "activation": ("box", "rounded,filled", "#d9ead3"),
    "merge": ("hexagon", "filled", "#d9d2e9"),
    "shape": ("parallelogram", "filled", "#eeeeee"),
    "loss": ("doubleoctagon", "filled", "#f4cccc"),
    "unknown": ("box", "filled,dashed", "#ffffff"),
}
KIND_NAMES = {"input": "input", "layer": "layer with params", "layer0": "layer without params",
              "activation": "activation", "merge": "merge", "shape": "shape op", "loss": "loss",
              "unknown": "unknown op"}
OUTPUT_COLOR = "#1f4e79"
ERROR_COLOR = "#cc0000"

# viridis, dark (small) to bright (large): the overlays' log scale.
PALETTE = ("#440154", "#482878", "#3e4989", "#31688e", "#26828e",
           "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725")
NO_VALUE = "#dddddd"
# The scale: one colour per power of ten, the brightest holding the largest value; what is
# ten or more decades below it gets the darkest. Fixed decades (not stretched to each
# drawing's range) let two drawings be compared and keep a healthy net bright.

# An op's label_attr shows bare after the op name (``dense 128``); other attrs show as
# key=value when they differ from the default (activations show all of theirs).
FOLD_OPS = ("dropout",)   # besides activations, what collapse=True folds into a layer


@dataclass
class _Node:
    """What a drawing needs to know about one node."""

    name: str
    op: str
    kind: str                   # a STYLES key
    attrs: str                  # "dense 128"
    inputs: list
    shape: tuple = None         # per sample; None when unknown
    params: int = None          # None when unknown
    error: str = None
    buffers: int = 0            # non-trainable values (batch_norm's running statistics)
    members: list = field(default_factory=list)   # folded nodes (collapse), self first


# --- the public entry points ----------------------------------------------------------------


def render(obj, path=None, format=None, rankdir="TB", show_shapes=True, show_params=True,
           overlay=None, collapse=False, legend=None):
    """Draw a Graph or a Model; return a ``graphviz.Digraph``, also written to ``path`` if given.

    ``format`` defaults to the suffix of ``path`` (svg, png, pdf need graphviz's
    dot program; dot writes the source alone). ``rankdir`` is TB (top to bottom)
    or LR, BT, RL. ``overlay="grad"`` colours each node by the norm of the
    gradient at its output, ``overlay="activation"`` by the spread of its
    output, both from a Model's last ``forward(..., training=True)`` on data
    with targets. ``collapse=True`` folds each layer with the activations and
    dropouts that follow it (see docs/rendering.md for the exact rule).
    ``legend`` (default: with overlays only) adds a legend of the colours.

    A Graph that does not compile is still drawn: names and ops, the shapes
    that could be inferred, the failing node with a red border and the error
    as the drawing's title.

    >>> dot = render(model, "model.svg")                     # doctest: +SKIP
    >>> render(model, overlay="grad", collapse=True)         # doctest: +SKIP
    """
    if rankdir not in RANKDIRS:
        raise GraphnetError(f"rankdir must be one of {list(RANKDIRS)}, got {rankdir!r}")
    if overlay is not None and overlay not in OVERLAYS:
        raise GraphnetError(f"overlay must be one of {list(OVERLAYS)} or None, got {overlay!r}")
    fmt = _format(path, format)
    nodes, outputs, title = _describe(obj)
    values = _overlay_values(obj, overlay) if overlay else None
    if collapse:
        nodes = _fold(nodes, outputs)
    dot = _draw(obj, nodes, outputs, title, rankdir, show_shapes, show_params, overlay, values,
                legend)
    if fmt not in (None, "dot"):
        dot.format = fmt
    if path is not None:
        _write(dot, Path(path), fmt)
    return dot


def output_gradients(model, loss=None):
    """The gradient of the loss at every node's output: {node name: array}.

    Re-runs the backward pass of the model's last forward (which must have
    computed a loss: ``model.forward(feeds_with_targets, training=True)``)
    and keeps what ``Model.backward`` throws away. Nodes the loss does not
    reach (inputs, other branches) are left out. The model's params and its
    next ``backward`` are not affected.
    """
    plan, vals = _last_pass(model, "the gradient overlay")
    losses = plan.losses if loss is None else [(n, s) for n, s in plan.losses if n == loss]
    if not losses:
        raise GraphnetError(
            "the last forward computed no loss" + (f" named {loss!r}" if loss else "") +
            "; call model.forward(feeds, training=True) with the targets fed (so that the "
            "loss is computed) before asking for gradients")
    plan.set_grad_mode(False)
    one = np.ones((), dtype=model.dtype)
    grads = plan.run_backward(vals, {slot: one for _, slot in losses})
    nodes = model.program.nodes
    return {name: grads[slot] for name, slot in plan.slot.items()
            if name in nodes and grads[slot] is not None}


def output_stats(model):
    """Mean, std and fraction of exact zeros of every node's output in the last forward.

    Returns {node name: {"mean", "std", "zeros"}} for the float nodes the last
    forward computed.
    """
    plan, vals = _last_pass(model, "the activation overlay")
    stats = {}
    for name, slot in plan.slot.items():
        node = model.program.nodes.get(name)
        value = vals[slot]
        if node is None or value is None or node.dtype not in ("float", "float32", "float64"):
            continue
        arr = np.asarray(value, dtype=np.float64)
        stats[name] = {"mean": float(arr.mean()) if arr.size else 0.0,
                       "std": float(arr.std()) if arr.size else 0.0,
                       "zeros": float(np.mean(arr == 0)) if arr.size else 0.0}
    return stats


class Drawing(graphviz.Digraph):
    """A graphviz.Digraph whose failures to run dot are GraphnetErrors that say what to do."""

    def pipe(self, *args, **kwargs):
        with _dot_errors(f"{kwargs.get('format') or self.format} output"):
            return super().pipe(*args, **kwargs)

    def render(self, *args, **kwargs):
        with _dot_errors(f"{kwargs.get('format') or self.format} output"):
            return super().render(*args, **kwargs)

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        """SVG for Jupyter; without dot, the reason as text instead of a traceback."""
        try:
            return super()._repr_mimebundle_(include=include, exclude=exclude, **kwargs)
        except GraphnetError as exc:
            return {"text/plain": str(exc)}


# --- describing the graph -------------------------------------------------------------------


def _describe(obj):
    """Nodes (in topological order when there is one), outputs, and an error title or None."""
    from .graph import Graph
    from .model import Model
    from .scheduler import Program

    if isinstance(obj, Model):
        return _from_program(obj.program), list(obj.outputs), None
    if not isinstance(obj, Graph):
        raise GraphnetError(f"render needs a graphnet Graph or Model, got {type(obj).__name__}")
    try:
        program = Program(obj)   # shapes and param counts, without allocating params
    except GraphnetError as exc:
        return _partial(obj), obj.outputs, f"does not compile: {exc}"
    return _from_program(program), obj.outputs, None


def _from_program(program):
    nodes = []
    for n in program.nodes.values():
        kind = n.kind if n.kind in STYLES else "layer"
        count = n.param_count()
        if kind == "layer" and count == 0:
            kind = "layer0"
        nodes.append(_Node(n.name, n.op.name, kind, _op_text(n.op.name, n.op, n.attrs, n.dtype),
                           list(n.inputs), tuple(n.shape), count,
                           buffers=n.buffer_count()))
    return nodes


def _partial(graph):
    """Compile node by node as far as possible, so that a broken graph still draws."""
    from .scheduler import Program

    reg = registry()
    ops = reg.tables()["op"]
    program = Program.__new__(Program)   # the per-node compiler alone, on a growing dict
    program.nodes = {}
    cycle = {}
    try:
        order = list(nx.topological_sort(graph.nx))
    except nx.NetworkXUnfeasible:       # a cycle: draw the declaration order, mark the loop
        order = list(graph.nx.nodes)
        loop = [u for u, _ in nx.find_cycle(graph.nx)]
        text = "on a cycle: " + " -> ".join(loop + loop[:1])
        cycle = dict.fromkeys(loop, text)
    nodes = []
    for name in order:
        data = graph.nx.nodes[name]
        if "op" not in data:
            nodes.append(_Node(name, "?", "unknown", "? (not declared)", [],
                               error=f"{name!r} is read but never declared"))
            continue
        opname, inputs = data["op"], list(data.get("inputs", []))
        entry = ops.get(opname)
        op = entry.obj if entry is not None else None
        node = _Node(name, opname, "unknown", _op_text(opname, op, data.get("attrs", {}),
                                                       None, resolved=False), inputs)
        if op is not None:
            node.kind = op.kind if op.kind in STYLES else "layer"
        if all(i in program.nodes for i in inputs):
            try:
                compiled = program._compile_node(reg, name, data)
            except GraphnetError as exc:
                node.error = str(exc)
            else:
                program.nodes[name] = compiled
                node.shape, node.params = tuple(compiled.shape), compiled.param_count()
                node.buffers = compiled.buffer_count()
                node.attrs = _op_text(opname, op, compiled.attrs, compiled.dtype)
        elif op is None:
            node.error = f"unknown op {opname!r}"
        node.error = node.error or cycle.get(name)
        if node.kind == "layer" and node.params == 0:
            node.kind = "layer0"
        nodes.append(node)
    return nodes


def _op_text(opname, op, attrs, dtype, resolved=True):
    """``dense 128``, ``elu alpha=1.0``, ``dropout 0.2``, ``dense 10 use_bias=False``."""
    if opname == "input":
        return "input" if dtype in (None, "float32") else f"input {dtype}"
    specs = getattr(op, "attrs", {}) or {}
    primary = getattr(op, "label_attr", None)
    show_all = getattr(op, "kind", None) == "activation" or not resolved
    parts = [opname]
    if primary in attrs:
        parts.append(_fmt(attrs[primary]))
    for key, value in attrs.items():
        if key == primary:
            continue
        spec = specs.get(key)
        if show_all or spec is None or spec.required or value != spec.default:
            parts.append(f"{key}={_fmt(value)}")
    return " ".join(parts)


def _fmt(value):
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_fmt(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, dict) and "name" in value:
        rest = ", ".join(f"{k}={_fmt(v)}" for k, v in value.items() if k != "name")
        return f"{value['name']}({rest})"
    return str(value)


def _shape_text(node):
    if node.shape is None:
        return None
    if node.kind == "loss":
        return "scalar"
    return "(N" + "".join(f", {d}" for d in node.shape) + ")"


def _fold(nodes, outputs):
    """collapse=True: fold each layer with params into one block with the chain that follows
    it while the next node is an activation (or dropout), is the only reader of the node
    before it, and shares its '/' group; a node that is an output ends the chain.
    """
    readers = {}
    for n in nodes:
        for i in n.inputs:
            readers.setdefault(i, []).append(n.name)
    by_name = {n.name: n for n in nodes}
    outputs = set(outputs)
    absorbed = set()
    for n in nodes:
        if n.kind != "layer" or n.name in absorbed or n.error:
            continue
        chain, last = [n], n
        while last.name not in outputs and len(readers.get(last.name, ())) == 1:
            nxt = by_name[readers[last.name][0]]
            if (nxt.kind != "activation" and nxt.op not in FOLD_OPS) or nxt.error \
                    or _group(nxt.name) != _group(n.name):
                break
            chain.append(nxt)
            last = nxt
        if len(chain) > 1:
            n.members = chain
            absorbed.update(m.name for m in chain[1:])
    return [n for n in nodes if n.name not in absorbed]


def _group(name):
    return name.rsplit("/", 1)[0] if "/" in name else ""


# --- overlays -------------------------------------------------------------------------------


def _last_pass(model, what):
    from .model import Model

    if not isinstance(model, Model):
        raise GraphnetError(f"{what} needs a Model that has run a forward pass, not a "
                            f"{type(model).__name__}: build gn.Model(graph), call "
                            f"model.forward(feeds, training=True), then render")
    if model._last is None:
        raise GraphnetError(f"{what} needs a forward pass first: call "
                            f"model.forward(feeds, training=True) with the targets fed")
    return model._last


def _overlay_values(model, overlay):
    """{node name: (value on the colour scale or None, text)} for the overlay."""
    values = {}
    stats = output_stats(model)
    for name in model.program.losses:   # a loss shows its value, not a colour
        if name in stats:
            values[name] = (None, f"value {stats[name]['mean']:.4g}")
    if overlay == "grad":
        for name, g in output_gradients(model).items():
            if name not in values:
                norm = float(np.linalg.norm(np.asarray(g, dtype=np.float64).ravel()))
                values[name] = (norm, f"|grad| {norm:.2g}")
        return values
    for name, s in stats.items():
        if name not in values:
            text = f"mean {s['mean']:.2g} std {s['std']:.2g}"
            if s["zeros"] > 0 or model.program.nodes[name].op.name == "relu":
                text += f"\nzeros {s['zeros']:.0%}"
            values[name] = (s["std"], text)
    return values


def _scale(values):
    """(lo, hi): the log10 range of the colours, hi the decade above the largest value."""
    logs = [math.log10(v) for v, _ in values.values() if v is not None and v > 0]
    if not logs:
        return None
    hi = math.floor(max(logs)) + 1
    return hi - len(PALETTE), hi


def _color(value, scale):
    if value is None or scale is None:
        return NO_VALUE, "black"
    if value <= 0:
        return PALETTE[0], "white"
    lo, hi = scale
    k = min(len(PALETTE) - 1, max(0, math.floor(math.log10(value)) - lo))
    return PALETTE[k], ("white" if k < 5 else "black")


# --- drawing --------------------------------------------------------------------------------


def _draw(obj, nodes, outputs, title, rankdir, show_shapes, show_params, overlay, values, legend):
    name = getattr(obj, "name", "graph")
    dot = Drawing(name=name)
    dot.attr("graph", rankdir=rankdir, fontname="Helvetica", fontsize="12", nodesep="0.25",
             ranksep="0.35")
    dot.attr("node", fontname="Helvetica", fontsize="11", margin="0.12,0.04")
    dot.attr("edge", fontname="Helvetica", fontsize="9", color="#555555", fontcolor="#555555")
    label = _escape(name)
    if title:
        label += "\\n" + _escape(_clip(title, 160))
    if overlay == "grad":
        label += "\\ncolour: norm of the loss gradient at each node's output"
    elif overlay == "activation":
        label += "\\ncolour: std of each node's output"
    dot.attr("graph", label=label, labelloc="t")
    if title:
        dot.attr("graph", fontcolor=ERROR_COLOR)

    scale = _scale(values) if values is not None else None
    outputs = set(outputs)
    shown = {}   # node name -> id of the drawn node (a folded node maps to its block)
    for n in nodes:
        for m in n.members or [n]:
            shown[m.name] = n.name
    last = {n.name: (n.members[-1] if n.members else n) for n in nodes}

    groups = {}  # '/' group -> [(id, attrs)]
    for n in nodes:
        groups.setdefault(_group(n.name), []).append(
            (n.name, _node_attrs(n, last[n.name], outputs, show_shapes, show_params, overlay,
                                 values, scale)))
    _emit_groups(dot, groups)

    tensors = {}
    for n in nodes:
        tensors[n.name] = n
        for m in n.members:
            tensors[m.name] = m
    for n in nodes:
        for i in n.inputs:   # a repeated input is two edges
            if i not in shown:
                continue
            text = _shape_text(tensors[i]) if show_shapes else None
            dot.edge(shown[i], n.name, **({"label": " " + text} if text else {}))

    if legend or (legend is None and overlay):
        _legend(dot, nodes, overlay, scale, kinds=bool(legend))
    return dot


def _node_attrs(n, tail, outputs, show_shapes, show_params, overlay, values, scale):
    """Label and style of a drawn node; ``tail`` is the last node of a folded block."""
    members = n.members or [n]
    short = [m.name.rsplit("/", 1)[-1] for m in members]
    lines = [" + ".join(short), " \u2192 ".join(m.attrs for m in members)]
    if show_shapes and _shape_text(tail):
        lines.append(_shape_text(tail))
    params = [m.params for m in members]
    if show_params and any(p for p in params if p) and None not in params:
        total = sum(params)
        lines.append(f"{total:,} param" + ("" if total == 1 else "s"))
    fixed = sum(m.buffers for m in members)
    if show_params and fixed:
        lines.append(f"{fixed:,} non-trainable")
    if n.error:
        lines.extend(_wrap("error: " + _own_error(n), 40, 3))
    shape, style, fill = STYLES[n.kind]
    attrs = {"shape": shape, "style": style, "fillcolor": fill}
    if values is not None:
        missing = "no gradient" if overlay == "grad" else "not computed"
        value, text = values.get(tail.name, (None, missing))
        lines.extend(text.split("\n"))
        if n.kind != "loss":
            attrs["fillcolor"], attrs["fontcolor"] = _color(value, scale)
    if tail.name in outputs:
        attrs.update(peripheries="2", color=OUTPUT_COLOR, penwidth="1.5")
    if n.error:
        attrs.update(color=ERROR_COLOR, penwidth="2.5", tooltip=n.error)
    attrs["label"] = "\\n".join(_escape(line) for line in lines)
    return attrs


def _escape(text):
    """Keep a backslash in a label literal (dot reads \\n, \\l and \\N specially)."""
    return text.replace("\\", "\\\\")


def _own_error(n):
    """The error without its "node 'x' (op): " prefix, which the node itself shows."""
    prefix = f"node {n.name!r} ({n.op}): "
    return n.error[len(prefix):] if n.error.startswith(prefix) else n.error


def _wrap(text, width, lines):
    out = textwrap.wrap(" ".join(str(text).split()), width) or [""]
    if len(out) > lines:
        out = out[:lines]
        out[-1] = _clip(out[-1] + " ...", width)
    return out


def _clip(text, width):
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def _emit_groups(dot, groups):
    """Put each '/' group's nodes in a cluster, nested as the names nest (a/b inside a)."""
    children = {}
    for g in groups:
        parts = g.split("/") if g else []
        for k in range(len(parts)):
            parent, child = "/".join(parts[:k]), "/".join(parts[:k + 1])
            children.setdefault(parent, {})[child] = None   # in the order they appear

    def emit(graph, group):
        for node_id, attrs in groups.get(group, []):
            graph.node(node_id, **attrs)
        for child in children.get(group, ()):
            with graph.subgraph(name=f"cluster_{child}") as sub:
                sub.attr(label=child.rsplit("/", 1)[-1], style="rounded,dashed",
                         color="#888888", fontcolor="#444444")
                emit(sub, child)

    emit(dot, "")


def _legend(dot, nodes, overlay, scale, kinds):
    """One HTML-table node: the overlay's colour scale and/or the node kinds drawn."""
    rows = []
    if overlay and scale is not None:
        what = "|dL/d output|" if overlay == "grad" else "std of output"
        rows.append(f'<TR><TD COLSPAN="2"><B>{what}</B></TD></TR>')
        lo, hi = scale
        for k in reversed(range(len(PALETTE))):
            text = f"1e{lo + k} to 1e{lo + k + 1}" if k else f"below 1e{lo + 1}"
            rows.append(f'<TR><TD BGCOLOR="{PALETTE[k]}" WIDTH="18"> </TD>'
                        f'<TD ALIGN="LEFT">{text}</TD></TR>')
        rows.append(f'<TR><TD BGCOLOR="{NO_VALUE}"> </TD><TD ALIGN="LEFT">none</TD></TR>')
    if kinds:
        rows.append('<TR><TD COLSPAN="2"><B>node kinds</B></TD></TR>')
        for kind in dict.fromkeys(n.kind for n in nodes):
            shape, style, fill = STYLES[kind]
            shape = "rounded box" if "rounded" in style else shape
            rows.append(f'<TR><TD BGCOLOR="{fill}" WIDTH="18"> </TD>'
                        f'<TD ALIGN="LEFT">{KIND_NAMES[kind]} ({shape})</TD></TR>')
        rows.append('<TR><TD BORDER="3" WIDTH="18"> </TD>'
                    '<TD ALIGN="LEFT">double border: output</TD></TR>')
    if rows:
        table = ('<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3">'
                 + "".join(rows) + "</TABLE>>")
        dot.node(LEGEND_ID, label=table, shape="plaintext", fontsize="9")


# --- writing --------------------------------------------------------------------------------


def _format(path, format):
    """The output format: ``format`` if given, else the suffix of ``path``; None for no file."""
    fmt = format
    if fmt is None and path is not None:
        fmt = Path(path).suffix.lstrip(".")
        if not fmt:
            raise GraphnetError(f"cannot tell the format of {str(path)!r}: give it a suffix "
                                f"({', '.join('.' + f for f in FORMATS)}) or pass format=")
    if fmt is None:
        return None
    fmt = str(fmt).lower().lstrip(".")
    if fmt == "gv":
        fmt = "dot"
    if fmt not in FORMATS:
        where = f" (from {str(path)!r})" if format is None else ""
        raise GraphnetError(f"cannot render to format {fmt!r}{where}; use one of "
                            f"{', '.join(FORMATS)}")
    return fmt


def _write(dot, path, fmt):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "dot":
            path.write_text(dot.source, encoding="utf-8")
            return
        with _dot_errors(f"{path} ({fmt})"):
            data = graphviz.Digraph.pipe(dot, format=fmt)
        path.write_bytes(data)
    except OSError as exc:
        raise GraphnetError(f"cannot write the drawing to {str(path)!r}: {exc.strerror or exc}; "
                            f"check that its folder is writable") from None


class _dot_errors:
    """Turn graphviz's failures to run dot into GraphnetErrors (a context manager)."""

    def __init__(self, what):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None:
            return False
        if isinstance(exc, graphviz.ExecutableNotFound):
            raise GraphnetError(MISSING_DOT.format(what=self.what)) from None
        if isinstance(exc, graphviz.CalledProcessError):
            detail = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) \
                else str(exc.stderr or exc)
            raise GraphnetError(f"graphviz's dot failed on {self.what}: "
                                f"{_clip(detail, 300)}") from None
        return False
