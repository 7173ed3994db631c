"""Compile a Graph into a Program (ops resolved, attrs checked, shapes inferred),
and a Program into flat Plans that run forward and backward.

A Plan is made once per set of requested outputs: the nodes those outputs
need, in topological order, each a step ``(forward, backward, ctx, input
slots, output slot)`` over one list of arrays. Running it makes no NetworkX
call, no registry lookup and builds no per-node dicts: the steps are compiled
into one straight-line Python function per direction (``plan.source`` shows
them), which calls each op's bound forward or backward with its inputs read
from fixed slots.
"""

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np

from .errors import FeedError, GraphError, GraphnetError, ShapeError, UnknownNameError, did_you_mean
from .ops import Context, Param, check_attr
from .plugins import registry

FLOAT_DTYPES = ("float32", "float64")
INT_DTYPES = ("int64", "int32")


@dataclass
class Node:
    """A node after compilation: its op object, full attrs, shapes and params."""

    name: str
    op: object
    attrs: dict
    inputs: list
    shape: tuple          # per sample; () with no batch axis for a loss
    dtype: str            # "float" for computed nodes, the declared dtype for inputs
    params: dict          # param name -> Param

    @property
    def kind(self):
        return self.op.kind

    def param_keys(self):
        return [f"{self.name}.{p}" for p in self.params]

    def param_count(self):
        return sum(math.prod(p.shape) for p in self.params.values())


def resolve_attrs(where, op, attrs):
    """Fill defaults, refuse unknown or missing attrs, check each value."""
    attrs = dict(attrs or {})
    for key in attrs:
        if key not in op.attrs:
            known = ", ".join(op.attrs) or "none"
            raise GraphError(f"{where}: unknown attr {key!r}{did_you_mean(key, op.attrs)}; "
                             f"{op.name} takes: {known}")
    full = {}
    for key, spec in op.attrs.items():
        if key in attrs:
            full[key] = check_attr(where, key, spec, attrs[key], registry().get)
        elif spec.required:
            raise GraphError(f"{where}: attr {key!r} is required ({spec.doc or spec.kind})")
        else:
            full[key] = spec.default
    return full


class Program:
    """A checked graph: nodes in topological order with ops, shapes and params."""

    def __init__(self, graph):
        graph.check()
        self.graph = graph
        reg = registry()
        order = {n: i for i, n in enumerate(graph.nx.nodes)}
        names = list(nx.lexicographical_topological_sort(graph.nx, key=order.__getitem__))
        self.nodes = {}
        for name in names:
            try:
                self.nodes[name] = self._compile_node(reg, name, graph.nx.nodes[name])
            except GraphnetError as exc:
                exc.node = exc.node or name
                raise
        self.outputs = graph.outputs
        self.losses = [n for n, node in self.nodes.items() if node.kind == "loss"]
        self.inputs = [n for n, node in self.nodes.items() if node.kind == "input"]
        for name, node in self.nodes.items():
            for i in node.inputs:
                if self.nodes[i].kind == "loss":
                    raise GraphError(f"node {name!r} reads loss node {i!r}; a loss is a "
                                     f"final scalar (backward sums several losses itself)",
                                     node=name)

    def _compile_node(self, reg, name, data):
        opname = data["op"]
        try:
            op = reg.get("op", opname)
        except UnknownNameError as exc:
            raise UnknownNameError(f"node {name!r}: {exc}") from None
        where = f"node {name!r} ({opname})"
        inputs = list(data.get("inputs", []))
        if op.n_inputs is None:
            if not inputs:
                raise GraphError(f"{where} needs at least one input, got none")
        elif len(inputs) != op.n_inputs:
            raise GraphError(f"{where} takes {op.n_inputs} input(s), got {len(inputs)}: {inputs}")
        attrs = resolve_attrs(where, op, data.get("attrs", {}))
        if op.kind == "input":
            if attrs["dtype"] not in FLOAT_DTYPES + INT_DTYPES:
                raise GraphError(f"input {name!r}: dtype must be one of "
                                 f"{list(FLOAT_DTYPES + INT_DTYPES)}, got {attrs['dtype']!r}")
            if any(d < 1 for d in attrs["shape"]):
                raise ShapeError(f"input {name!r} needs positive sizes in its per-sample shape, "
                                 f"got {tuple(attrs['shape'])}")
            return Node(name, op, attrs, [], tuple(attrs["shape"]), attrs["dtype"], {})
        shapes = []
        for pos, i in enumerate(inputs):
            src = self.nodes[i]
            if src.dtype in INT_DTYPES and pos not in op.int_inputs:
                raise GraphError(f"{where}: input {pos} is {i!r} of integer dtype "
                                 f"{src.dtype}; {opname} needs float data there "
                                 f"(integer inputs are for class labels)")
            shapes.append(src.shape)
        try:
            shape = tuple(op.infer(attrs, *shapes))
            params = dict(op.params(attrs, *shapes))
        except ShapeError as exc:
            raise ShapeError(f"{where}: {exc}; its inputs {inputs} have per-sample shapes "
                             f"{shapes}") from None
        except GraphnetError:
            raise
        except Exception as exc:
            raise GraphnetError(f"{where}: op {opname!r} failed to infer shapes for inputs "
                                f"{shapes}: {type(exc).__name__}: {exc}") from exc
        for pname, spec in params.items():
            if not isinstance(spec, Param):
                raise GraphnetError(f"{where}: op {opname!r} declared param {pname!r} as "
                                    f"{spec!r}, not a graphnet.Param")
        return Node(name, op, attrs, inputs, shape, "float", params)

    def param_count(self):
        return sum(node.param_count() for node in self.nodes.values())


class Plan:
    """The flat steps that compute ``targets`` from the feeds and the params."""

    def __init__(self, program, targets):
        nodes = program.nodes
        needed = set(targets)
        for t in targets:
            needed |= nx.ancestors(program.graph.nx, t)
        order = [n for n in nodes if n in needed]
        self.slot = {}
        for n in order:
            self.slot[n] = len(self.slot)
        self.param_slots = []                  # (slot, param key)
        for n in order:
            for key in nodes[n].param_keys():
                self.param_slots.append((len(self.slot), key))
                self.slot[key] = len(self.slot)
        self.size = len(self.slot)
        # every param of the program in order: where model.backward's flat arrays keep it
        param_index = {k: i for i, k in enumerate(
            k for node in nodes.values() for k in node.param_keys())}
        self.unused_params = [k for k in param_index if k not in self.slot]
        self.targets = [(t, self.slot[t]) for t in targets]
        self.feeds = [(n, self.slot[n], nodes[n]) for n in order if nodes[n].kind == "input"]
        self.losses = [(n, self.slot[n]) for n in order if nodes[n].kind == "loss"]
        self.steps = []
        self.contexts = []
        self.param_contexts = []               # (ctx, its params' places) of nodes with params
        for n in order:
            node = nodes[n]
            if node.kind == "input":
                continue
            ins = tuple(self.slot[i] for i in node.inputs) + tuple(
                self.slot[k] for k in node.param_keys())
            ctx = Context(n, node.attrs, tuple(nodes[i].shape for i in node.inputs), node.shape)
            self.contexts.append(ctx)
            self.steps.append((node.op.forward, node.op.backward, ctx, ins, self.slot[n]))
            if node.params:
                self.param_contexts.append((ctx, [param_index[k] for k in node.param_keys()]))
        self._grad_mode = None
        self.training = self.rng = None
        self.checked = False
        self._acc = {}                         # slot -> buffer summing its gradients
        self.source = {}
        self.run_forward = self._compile("forward", self._forward_lines())

    def _compile(self, name, lines):
        """Turn generated lines into a function over the steps' ops and contexts."""
        env = {"accumulate": self._accumulate, "check": self._check_backward}
        for k, (forward, backward, ctx, _, _) in enumerate(self.steps):
            env[f"f{k}"], env[f"b{k}"], env[f"c{k}"] = forward, backward, ctx
        self.source[name] = "\n".join(lines)
        exec(compile(self.source[name], f"<graphnet plan: {name}>", "exec"), env)
        return env[name]

    def _forward_lines(self):
        lines = ["def forward(vals):"]
        for k, (_, _, _, ins, out) in enumerate(self.steps):
            args = "".join(f", vals[{i}]" for i in ins)
            lines.append(f"    vals[{out}] = f{k}(c{k}{args})")
        lines.append("    return vals")
        return lines

    def _backward_lines(self):
        """Reverse steps that need gradients; a slot with one consumer is assigned,
        one with several sums into a buffer (``accumulate``)."""
        live = [(k, step) for k, step in enumerate(self.steps) if any(step[2].needs_grad)]
        consumers = {}
        for _, (_, _, ctx, ins, _) in live:
            for i, need in zip(ins, ctx.needs_grad):
                consumers[i] = consumers.get(i, 0) + need
        places = {id(ctx): idx for ctx, idx in self.param_contexts}
        lines = ["def backward(vals, grads, checking, pg):"]
        for k, (_, _, ctx, ins, out) in reversed(live):
            lines += [f"    g = grads[{out}]",
                      "    if g is not None:"]
            if id(ctx) in places:    # the arrays it may write its param gradients into
                lines.append(f"        c{k}.param_grads = pg and ("
                             + "".join(f"pg[{i}], " for i in places[id(ctx)]) + ")")
            lines += [f"        r = b{k}(c{k}, g)",
                      "        if checking:",
                      f"            check(c{k}, {ins!r}, r, vals)"]
            if id(ctx) in places:
                lines.append(f"        c{k}.param_grads = None")
            for pos, (i, need) in enumerate(zip(ins, ctx.needs_grad)):
                if not need:
                    continue
                if consumers[i] == 1:
                    lines.append(f"        grads[{i}] = r[{pos}]")
                else:
                    lines += [f"        d = r[{pos}]",
                              "        if d is not None:",
                              f"            p = grads[{i}]",
                              f"            grads[{i}] = d if p is None else accumulate({i}, p, d)"]
        lines.append("    return grads")
        return lines

    def set_mode(self, training, rng):
        """Tell every context whether this run is training (dropout on) and the rng."""
        if training != self.training or rng is not self.rng:  # model.rng may be replaced
            for ctx in self.contexts:
                ctx.training = training
                ctx.rng = rng
            self.training, self.rng = training, rng

    def set_grad_mode(self, input_grads):
        """Mark which inputs and params need gradients, for ctx.needs_grad."""
        if self._grad_mode == input_grads:
            return
        flows = set(k for _, k in self.param_slots)
        if input_grads:
            flows |= {n for n, _, node in self.feeds if node.dtype in FLOAT_DTYPES}
        slot_names = {s: n for n, s in self.slot.items()}
        live = {self.slot[k] for k in flows}
        for _, _, ctx, ins, out in self.steps:
            ctx.needs_grad = tuple(i in live for i in ins)
            if any(ctx.needs_grad):
                live.add(out)
        self.slot_names = slot_names
        self._grad_mode = input_grads
        self._backward = self._compile("backward", self._backward_lines())

    def run_backward(self, vals, seeds, param_grads=None):
        """Walk the steps in reverse from ``seeds`` ({slot: gradient}); sum at fan-out.

        ``param_grads``, a sequence of arrays of every param of the program in
        order, is where ops may write the param gradients (``ctx.param_grads``).
        The first run checks what each op's backward returns (count and shapes)."""
        grads = [None] * self.size
        for s, g in seeds.items():
            grads[s] = g
        self._backward(vals, grads, not self.checked, param_grads)
        self.checked = True
        return grads

    def _accumulate(self, slot, prev, g):
        """prev + g for a node with several consumers, in a buffer this plan owns:
        in place once the buffer holds the sum (ops may hand back ``dy`` itself,
        so no other array is ever written to)."""
        buf = self._acc.get(slot)
        if prev is buf:
            buf += g
            return buf
        dtype = np.result_type(prev, g)
        shape = np.broadcast_shapes(np.shape(prev), np.shape(g))
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._acc[slot] = np.empty(shape, dtype)
        return np.add(prev, g, out=buf)

    def _check_backward(self, ctx, ins, results, vals):
        """Once per plan: one gradient per input and param, each of its input's shape."""
        names = [self.slot_names[i] for i in ins]
        if not isinstance(results, (tuple, list)) or len(results) != len(ins):
            raise GraphnetError(
                f"node {ctx.node!r}: backward must return one gradient per input and param "
                f"({len(ins)}: {names}), got {type(results).__name__} of "
                f"{len(results) if isinstance(results, (tuple, list)) else 1}")
        for name, i, gi, need in zip(names, ins, results, ctx.needs_grad):
            if gi is not None and need and np.shape(gi) != np.shape(vals[i]):
                raise GraphnetError(f"node {ctx.node!r}: backward returned a gradient of shape "
                                    f"{np.shape(gi)} for {name!r}, whose value has shape "
                                    f"{np.shape(vals[i])}")


def check_feeds(plan, feeds, dtype, all_inputs):
    """Convert and check the feeds a plan needs; return {slot: array} and the batch size."""
    if not isinstance(feeds, dict):
        raise FeedError(f"feeds must be a dict of input name -> array, got {type(feeds).__name__}")
    for key in feeds:
        if key not in all_inputs:
            raise FeedError(f"feed {key!r} is not an input of the model"
                            f"{did_you_mean(key, all_inputs)}; inputs are {list(all_inputs)}")
    out = {}
    batch = None
    for name, slot, node in plan.feeds:
        if name not in feeds:
            raise FeedError(f"input {name!r} is missing from the feeds; it is needed for "
                            f"{[t for t, _ in plan.targets]}. Feed it, or ask only for outputs "
                            f"that do not need it")
        arr = np.asarray(feeds[name])
        if node.dtype in INT_DTYPES:
            if arr.dtype.kind not in "iu":
                raise FeedError(f"input {name!r} holds class labels and needs an integer "
                                f"array, got {arr.dtype}; convert with .astype(int)")
        else:
            if arr.dtype.kind not in "fiub":
                raise FeedError(f"input {name!r} needs numbers, got an array of {arr.dtype}")
            if arr.dtype != dtype:  # float inputs run in the model's dtype
                arr = arr.astype(dtype)
        if arr.ndim != len(node.shape) + 1 or arr.shape[1:] != node.shape:
            hint = ""
            if arr.shape == node.shape:
                hint = "; it looks like one sample: add a batch axis with x[None]"
            elif arr.ndim == 1 and node.shape == (1,):
                hint = "; reshape it to (N, 1) with x.reshape(-1, 1)"
            raise FeedError(f"input {name!r} needs shape (N, {', '.join(map(str, node.shape))})"
                            .replace(", )", ")") + f", got {arr.shape}{hint}")
        if batch is None:
            batch = arr.shape[0]
        elif arr.shape[0] != batch:
            raise FeedError(f"input {name!r} has {arr.shape[0]} samples but other inputs have "
                            f"{batch}; every input needs the same batch size")
        out[slot] = arr
    if batch == 0 and plan.losses:
        raise FeedError(f"the feeds hold no samples, so loss {plan.losses[0][0]!r} has nothing "
                        f"to average; give at least one sample")
    return out, batch
