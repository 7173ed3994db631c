"""Compile a Graph into a Program (ops resolved, attrs checked, shapes inferred),
and a Program into flat Plans that run forward and backward.

A Plan is made once per set of requested outputs: the nodes those outputs
need, in topological order, each a step ``(forward, backward, ctx, input
slots, output slot)`` over one list of arrays. Running it makes no NetworkX
call, no registry lookup and builds no per-node dicts: the steps are compiled
into one straight-line Python function per direction (``plan.source`` shows
them), which calls each op's bound forward or backward with its inputs read
from fixed slots. The source is registered with ``linecache``, so a traceback
through a plan shows the generated line; ``interpret_forward`` and
``interpret_backward`` run the same steps as a plain loop, the reference the
generated code is tested against (``Plan(..., generated=False)`` uses them).

An op that raises inside a plan (anything but a GraphnetError, which already
names what is wrong) becomes a PluginError naming the node, the op and the
distribution providing it, the original exception chained: one ``try`` around
the whole plan, so the steps pay nothing for it. The first forward of a plan
also checks each output's shape and dtype, as the first backward checks the
gradients.
"""

import itertools
import linecache
import math
import numbers
import weakref
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from .errors import (FeedError, GraphError, GraphnetError, PluginError, ShapeError,
                     UnknownNameError, did_you_mean, origin)
from .ops import Buffer, Context, Param, check_attr
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
    buffers: dict = field(default_factory=dict)   # buffer name -> Buffer

    @property
    def kind(self):
        return self.op.kind

    def param_keys(self):
        return [f"{self.name}.{p}" for p in self.params]

    def param_count(self):
        return sum(math.prod(p.shape) for p in self.params.values())

    def buffer_count(self):
        return sum(math.prod(b.shape) for b in self.buffers.values())


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
            buffers = dict(op.buffers(attrs, *shapes))
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
        for bname, spec in buffers.items():
            if not isinstance(spec, Buffer) or bname in params:
                raise GraphnetError(f"{where}: op {opname!r} declared buffer {bname!r} as "
                                    f"{spec!r}; a buffer is a graphnet.Buffer whose name no "
                                    f"param has")
        return Node(name, op, attrs, inputs, shape, "float", params, buffers)

    def param_count(self):
        return sum(node.param_count() for node in self.nodes.values())

    def buffer_count(self):
        return sum(node.buffer_count() for node in self.nodes.values())


_plan_ids = itertools.count(1)


class Plan:
    """The flat steps that compute ``targets`` from the feeds and the params.

    ``generated=False`` runs them through the reference interpreter instead of
    the generated functions (same results; slower; for tests and debugging).
    ``fuse=False`` keeps every node a step of its own: by default a node whose op
    can ``fuse`` with the one node reading it (a dense and its activation) runs
    with it as one step, its own value and gradient still kept in its slots.
    """

    def __init__(self, program, targets, generated=True, fuse=True):
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
        self.nodes = []                        # the compiled Node of each step
        self.contexts = []
        self.param_contexts = []               # (ctx, its params' places) of nodes with params
        self.buffer_contexts = []              # (ctx, ((buffer name, model key), ...))
        self.fused = {}                        # step index -> (inner node's slot, outer node)
        pairs = _fusions(nodes, order, targets) if fuse else {}
        inner = {d for d, _ in pairs.values()}
        for n in order:
            node = nodes[n]
            if node.kind == "input" or n in inner:
                continue
            forward, backward = node.op.forward, node.op.backward
            if n in pairs:                     # n's one input runs with it
                d, op = pairs[n]
                self.fused[len(self.steps)] = (self.slot[d], node)
                node, forward, backward = nodes[d], op.forward, op.backward
            ins = tuple(self.slot[i] for i in node.inputs) + tuple(
                self.slot[k] for k in node.param_keys())
            ctx = Context(node.name, node.attrs, tuple(nodes[i].shape for i in node.inputs),
                          node.shape)
            if n != node.name:
                ctx.act_attrs = nodes[n].attrs
            self.contexts.append(ctx)
            self.nodes.append(node)
            self.steps.append((forward, backward, ctx, ins, self.slot[n]))
            if node.params:
                self.param_contexts.append((ctx, [param_index[k] for k in node.param_keys()]))
            if node.buffers:
                self.buffer_contexts.append((ctx, tuple((b, f"{node.name}.{b}")
                                                        for b in node.buffers)))
        self.slot_names = {s: n for n, s in self.slot.items()}
        self.generated = generated
        self._grad_mode = None
        self.training = self.rng = None
        self.checked = False                   # the first backward checks the gradients
        self.forward_checked = False           # the first forward checks the outputs
        self._acc = {}                         # slot -> buffer summing its gradients
        self.known_feeds = None                # what check_feeds last passed unconverted
        self.source = {}
        self._step_of_line = {}                # generated function -> {line: step index}
        if generated:
            self._forward = self._compile("forward", self._forward_lines(False))
            self._first_forward = self._compile("first_forward", self._forward_lines(True))
        else:
            self._forward = self._first_forward = self._interpreted(interpret_forward)

    # --- the generated functions ---------------------------------------------
    def _compile(self, name, blocks):
        """Turn generated lines into a function over the steps' ops and contexts.

        ``blocks`` is (lines, step index or None) pairs; the source goes into
        ``linecache`` under a name of its own, so tracebacks show it."""
        env = {"accumulate": self._accumulate, "check": self._check_backward,
               "check_output": self.check_output, "fail": self.failure,
               "GraphnetError": GraphnetError}
        for k, (forward, backward, ctx, _, _) in enumerate(self.steps):
            env[f"f{k}"], env[f"b{k}"], env[f"c{k}"] = forward, backward, ctx
        lines, step_of_line = [], {}
        for block, k in blocks:
            for line in block:
                lines.append(line)
                step_of_line[len(lines)] = k
        filename = f"<graphnet plan {next(_plan_ids)}: {name}>"
        source = self.source[name] = "\n".join(lines) + "\n"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        weakref.finalize(self, linecache.cache.pop, filename, None)
        exec(compile(source, filename, "exec"), env)
        self._step_of_line[env[name].__code__] = step_of_line
        return env[name]

    def _interpreted(self, fn):
        def run(*args):
            return fn(self, *args)
        return run

    @staticmethod
    def _guarded(head, body, name):
        """``head``, then ``body`` (blocks) inside the one try of the plan."""
        body = body or [(["    pass"], None)]
        return ([([head, "    try:"], None)] + [(["    " + ln for ln in lines], k)
                                                 for lines, k in body]
                + [(["    except GraphnetError:",
                     "        raise",
                     "    except Exception as exc:",
                     f"        raise fail(exc, {name!r}) from exc"], None)])

    def _forward_lines(self, checking):
        """One line per step (the first forward adds a check of each output)."""
        body = []
        for k, (_, _, _, ins, out) in enumerate(self.steps):
            args = "".join(f", vals[{i}]" for i in ins)
            lines = [f"    vals[{out}] = f{k}(c{k}{args})"]
            if k in self.fused:                # the inner node's value
                lines.append(f"    vals[{self.fused[k][0]}] = c{k}.z")
            if checking:
                lines.append(f"    check_output({k}, vals[{out}], batch, dtype)")
            body.append((lines, k))
        head = "def first_forward(vals, batch, dtype):" if checking else "def forward(vals):"
        return self._guarded(head, body, "forward") + [(["    return vals"], None)]

    def _backward_lines(self):
        """Reverse steps that need gradients; a slot with one consumer is assigned,
        one with several sums into a buffer (``accumulate``)."""
        live = [(k, step) for k, step in enumerate(self.steps) if any(step[2].needs_grad)]
        consumers = {}
        for _, (_, _, ctx, ins, _) in live:
            for i, need in zip(ins, ctx.needs_grad):
                consumers[i] = consumers.get(i, 0) + need
        places = {id(ctx): idx for ctx, idx in self.param_contexts}
        body = []
        for k, (_, _, ctx, ins, out) in reversed(live):
            lines = [f"    g = grads[{out}]",
                     "    if g is not None:"]
            if id(ctx) in places:    # the arrays it may write its param gradients into
                lines.append(f"        c{k}.param_grads = pg and ("
                             + "".join(f"pg[{i}], " for i in places[id(ctx)]) + ")")
            lines += [f"        r = b{k}(c{k}, g)",
                      "        if checking:",
                      f"            check(c{k}, {ins!r}, r, vals)"]
            if id(ctx) in places:
                lines.append(f"        c{k}.param_grads = None")
            if k in self.fused:
                lines.append(f"        grads[{self.fused[k][0]}] = c{k}.dz")
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
            body.append((lines, k))
        return (self._guarded("def backward(vals, grads, checking, pg):", body, "backward")
                + [(["    return grads"], None)])

    # --- running ---------------------------------------------------------------
    def set_mode(self, training, rng):
        """Tell every context whether this run is training (dropout on) and the rng."""
        if training != self.training or rng is not self.rng:  # model.rng may be replaced
            for ctx in self.contexts:
                ctx.training = training
                ctx.rng = rng
            self.training, self.rng = training, rng

    def bind_buffers(self, buffers):
        """Point each context's ``buffers`` at the model's arrays (``{key: array}``)."""
        for ctx, keys in self.buffer_contexts:
            ctx.buffers = {name: buffers[key] for name, key in keys}

    def set_grad_mode(self, input_grads):
        """Mark which inputs and params need gradients, for ctx.needs_grad."""
        if self._grad_mode == input_grads:
            return
        flows = set(k for _, k in self.param_slots)
        if input_grads:
            flows |= {n for n, _, node in self.feeds if node.dtype in FLOAT_DTYPES}
        live = {self.slot[k] for k in flows}
        for _, _, ctx, ins, out in self.steps:
            ctx.needs_grad = tuple(i in live for i in ins)
            if any(ctx.needs_grad):
                live.add(out)
        self._grad_mode = input_grads
        if self.generated:
            self._backward = self._compile("backward", self._backward_lines())
        else:
            self._backward = self._interpreted(interpret_backward)

    def run_forward(self, vals, batch, dtype):
        """Run the steps on ``vals`` (feeds and params in their slots); the first run
        checks every output against ``batch`` samples of its shape, of ``dtype``."""
        if self.forward_checked:
            return self._forward(vals)
        self._first_forward(vals, batch, dtype)
        self.forward_checked = True
        return vals

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

    # --- checks and errors -----------------------------------------------------
    def _where(self, k):
        node = self.nodes[k]
        op = node.op
        if k in self.fused:
            outer = self.fused[k][1]
            code = outer.op.activation.fn
            return (f"node {node.name!r} with {outer.name!r} (one step): op {op.name!r} with "
                    f"{outer.op.name!r} from {origin(code)}")
        code = getattr(op, "activation", None)
        code = getattr(code, "fn", op) if code is not None else op  # an activation's own code
        return f"node {node.name!r}: op {op.name!r} from {origin(code)}"

    def check_output(self, k, value, batch, dtype):
        """Once per plan: step ``k``'s output is an array of the shape inference's
        shape (with ``batch`` samples first, none for a loss) and of ``dtype``."""
        node = self.nodes[k]
        want = () if node.kind == "loss" else (batch,) + node.shape
        if not isinstance(value, (np.ndarray, np.generic)):
            problem = f"a {type(value).__name__}, not a numpy array"
        elif value.shape != want:
            problem = f"shape {value.shape}, where its inferred shape is {want}"
        elif value.dtype != dtype:
            problem = f"dtype {value.dtype}, where the model computes in {np.dtype(dtype)}"
        else:
            return
        err = PluginError(f"{self._where(k)}: forward returned {problem}; the op's forward "
                          f"and its infer() disagree")
        err.node = node.name
        raise err

    def failure(self, exc, direction, k=None):
        """The PluginError for ``exc``, raised by step ``k`` (found from the line of the
        generated function that was running when not given)."""
        if k is None:
            tb = exc.__traceback__
            k = self._step_of_line.get(tb.tb_frame.f_code, {}).get(tb.tb_lineno)
        if k is None:
            return PluginError(f"the plan's {direction} failed: {type(exc).__name__}: {exc}")
        err = PluginError(f"{self._where(k)} raised {type(exc).__name__} in {direction}: {exc}")
        err.node = self.nodes[k].name
        return err

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


def _fusions(nodes, order, targets):
    """{outer node: (inner node, fused op)} for each node (not a target) read by one
    node alone, whose op ``fuse``s with that node's op (see Dense.fuse)."""
    readers = {}
    for n in order:
        for i in nodes[n].inputs:
            readers.setdefault(i, []).append(n)
    pairs = {}
    for n in order:
        fuse = getattr(nodes[n].op, "fuse", None)
        reader = readers.get(n, [])
        if fuse is None or n in targets or len(reader) != 1:
            continue
        op = fuse(nodes[reader[0]].op)
        if op is not None:
            pairs[reader[0]] = (n, op)
    return pairs


def interpret_forward(plan, vals, batch=None, dtype=None):
    """The reference forward: the plan's steps in a plain loop, each output checked
    when ``batch`` is given (what the generated ``first_forward`` does)."""
    k = None
    try:
        for k, (forward, _, ctx, ins, out) in enumerate(plan.steps):
            vals[out] = forward(ctx, *[vals[i] for i in ins])
            if k in plan.fused:
                vals[plan.fused[k][0]] = ctx.z
            if batch is not None:
                plan.check_output(k, vals[out], batch, dtype)
    except GraphnetError:
        raise
    except Exception as exc:
        raise plan.failure(exc, "forward", k) from exc
    return vals


def interpret_backward(plan, vals, grads, checking, param_grads):
    """The reference backward: steps in reverse, gradients summed where a slot is read
    more than once (what the generated ``backward`` does, without its unrolling)."""
    places = {id(ctx): idx for ctx, idx in plan.param_contexts}
    k = None
    try:
        for k in reversed(range(len(plan.steps))):
            _, backward, ctx, ins, out = plan.steps[k]
            if grads[out] is None or not any(ctx.needs_grad):
                continue
            if id(ctx) in places:
                ctx.param_grads = param_grads and tuple(param_grads[i] for i in places[id(ctx)])
            r = backward(ctx, grads[out])
            if checking:
                plan._check_backward(ctx, ins, r, vals)
            ctx.param_grads = None
            if k in plan.fused:
                grads[plan.fused[k][0]] = ctx.dz
            for i, need, d in zip(ins, ctx.needs_grad, r):
                if need and d is not None:
                    grads[i] = d if grads[i] is None else plan._accumulate(i, grads[i], d)
    except GraphnetError:
        raise
    except Exception as exc:
        raise plan.failure(exc, "backward", k) from exc
    return grads


def check_feeds(plan, feeds, dtype, all_inputs):
    """Convert and check the feeds a plan needs; return {slot: array} and the batch size.

    Feeds of the same names, array types, dtypes and shapes as the last ones that
    passed every check and needed no conversion pass on one comparison each."""
    known = plan.known_feeds
    if known is not None and type(feeds) is dict and feeds.keys() == known[0]:
        out = {}
        for name, slot, kind, shape in known[1]:
            arr = feeds[name]
            if type(arr) is not np.ndarray or arr.dtype != kind or arr.shape != shape:
                break
            out[slot] = arr
        else:
            return out, known[2]
    out, batch = _check_feeds_fully(plan, feeds, dtype, all_inputs)
    if all(type(feeds[n]) is np.ndarray and feeds[n] is out[s] for n, s, _ in plan.feeds):
        plan.known_feeds = (frozenset(feeds), tuple(
            (n, s, out[s].dtype, out[s].shape) for n, s, _ in plan.feeds), batch)
    return out, batch


def _check_feeds_fully(plan, feeds, dtype, all_inputs):
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
            batch, first = arr.shape[0], name
        elif arr.shape[0] != batch:
            sample_count({first: batch, name: arr.shape[0]})
        out[slot] = arr
    if batch == 0 and plan.losses:
        raise FeedError(f"the feeds hold no samples, so loss {plan.losses[0][0]!r} has nothing "
                        f"to average; give at least one sample")
    return out, batch


def sample_count(counts, what=None):
    """The number of samples every input has, from ``{input name: count}``; a FeedError
    naming each count when they differ (the one wording for fit, predict and forward)."""
    if len(set(counts.values())) > 1:
        raise FeedError(f"{what + ': ' if what else ''}every input needs the same number of "
                        f"samples, got {counts}")
    return next(iter(counts.values()), 0)


def check_batch_size(batch_size):
    """``batch_size`` as an int, or the one GraphnetError for a bad one."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size < 1:
        raise GraphnetError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    return int(batch_size)
