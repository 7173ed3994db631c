"""A Model: a compiled graph with its params, run forward and backward.

>>> import numpy as np, graphnet as gn
>>> g = gn.Graph("mlp")
>>> x, t = g.input("x", shape=(2,)), g.input("y", shape=(1,))
>>> y = g.add("dense", g.add("tanh", g.add("dense", x, units=8)), units=1, name="out")
>>> _ = g.add("mse", y, t, name="loss"); _ = g.output(y)
>>> model = gn.Model(g, seed=0)
>>> outs = model.forward({"x": np.zeros((4, 2)), "y": np.zeros((4, 1))}, training=True)
>>> sorted(model.backward()) == sorted(model.params)
True
"""

import math
import operator
import sys

import numpy as np

from .errors import GraphnetError, PluginError, ShapeError, did_you_mean, origin
from .graph import Graph
from .ops import check_init
from .plugins import registry
from .scheduler import FLOAT_DTYPES, Plan, Program, check_batch_size, check_feeds, sample_count

DEFAULT_MAX_PARAMS = 10**9


class FlatArrays(dict):
    """``{name: array}`` whose arrays are views into one 1-d array, ``flat``.

    ``model.params`` and what ``model.backward()`` returns are FlatArrays of
    one layout, so an optimizer can update every param with a few numpy calls
    over ``flat`` instead of a few per param. It is a plain dict otherwise:
    replacing an entry (``params[k] = new``) is allowed, and ``intact()`` then
    says False so that the optimizer goes param by param.
    """

    __slots__ = ("flat", "views", "layout")

    def __init__(self, items=(), flat=None, layout=None):
        super().__init__(items)
        self.flat = flat
        self.layout = layout              # ((key, offset, size, shape), ...), shared
        self.views = tuple(self.values())

    def intact(self):
        """True while every entry is still the view into ``flat`` it was made as."""
        return (self.flat is not None and len(self) == len(self.views)
                and all(map(operator.is_, self.values(), self.views)))

    def __reduce__(self):
        """Copies and pickles stay views into their own copy of ``flat`` (or, once an
        entry was replaced, become a FlatArrays without one)."""
        if self.intact():
            return flat_arrays, (self.layout, self.flat)
        return FlatArrays, (dict(self),)


def flat_arrays(layout, flat):
    """A FlatArrays of views into ``flat``, one per ``layout`` entry."""
    return FlatArrays(((key, flat[o:o + n].reshape(shape)) for key, o, n, shape in layout),
                      flat, layout)


class Model:
    """A graph made runnable: shapes inferred, params created from ``seed``, plans compiled.

    ``dtype`` is the float type of params and computations ("float32" or
    "float64"). A graph whose params and buffers would exceed ``max_params``
    elements is refused before anything is allocated. ``model.buffers`` holds
    the ops' non-trainable arrays (batch_norm's running statistics) by
    ``<node>.<name>``, apart from ``model.params``: no optimizer sees them.
    """

    def __init__(self, graph, seed=0, dtype="float32", max_params=DEFAULT_MAX_PARAMS):
        if not isinstance(graph, Graph):
            raise GraphnetError(f"Model needs a graphnet.Graph, got {type(graph).__name__}; "
                                f"build one with gn.Graph() or gn.Graph.from_networkx(G)")
        if str(dtype) not in FLOAT_DTYPES:
            raise GraphnetError(f"model dtype must be one of {list(FLOAT_DTYPES)}, got {dtype!r}")
        self.graph = graph.copy()
        self.dtype = np.dtype(dtype)
        self.seed = seed
        self.program = Program(self.graph)
        count = self.program.param_count() + self.program.buffer_count()
        if count > max_params:
            raise GraphnetError(f"model {self.graph.name!r} would have {count:,} params, more "
                                f"than the limit of {int(max_params):,}; make it smaller or pass "
                                f"max_params")
        try:
            init_seq, run_seq = np.random.SeedSequence(seed).spawn(2)
        except (TypeError, ValueError):
            raise GraphnetError(f"model {self.graph.name!r}: seed must be a whole number >= 0, "
                                f"got {seed!r}") from None
        self.params = self._init_params(np.random.default_rng(init_seq))
        self.buffers = {f"{node.name}.{b}": np.full(spec.shape, spec.fill, self.dtype)
                        for node in self.program.nodes.values()
                        for b, spec in node.buffers.items()}
        self.rng = np.random.default_rng(run_seq)  # dropout and other run-time randomness
        self._plans = {}
        self._last = None
        self._default_outputs = tuple(self.outputs + [l for l in self.losses
                                                      if l not in self.outputs])
        self._one = np.ones((), dtype=self.dtype)   # the seed gradient of a loss
        self._spare = self._spare_refs = None        # see _gradient_arrays

    def _init_params(self, rng):
        """Each param initialised in node order, all of them views into one flat array."""
        layout, offset = [], 0
        for node in self.program.nodes.values():
            for pname, spec in node.params.items():
                size = int(np.prod(spec.shape, dtype=np.int64))
                layout.append((f"{node.name}.{pname}", offset, size, tuple(spec.shape)))
                offset += size
        self._layout = tuple(layout)
        self._flat_size = offset
        params = flat_arrays(self._layout, np.empty(offset, self.dtype))
        for node in self.program.nodes.values():
            for pname, spec in node.params.items():
                where = f"node {node.name!r}: param {pname!r}'s initializer"
                initializer, kwargs, _ = check_init(where, spec.init, registry().get)
                fan_in, fan_out = default_fans(spec.shape)
                fan_in = fan_in if spec.fan_in is None else spec.fan_in
                fan_out = fan_out if spec.fan_out is None else spec.fan_out
                out = params[f"{node.name}.{pname}"]
                try:
                    initializer.fill(out, rng, fan_in, fan_out, **kwargs)
                except ShapeError as exc:
                    raise ShapeError(f"{where}: {exc}") from None
                except (TypeError, ValueError, OverflowError) as exc:
                    raise GraphnetError(f"{where} {initializer.name!r} from "
                                        f"{origin(initializer.fn)} failed with {kwargs}: "
                                        f"{type(exc).__name__}: {exc}") from exc
                except GraphnetError:
                    raise
                except Exception as exc:
                    err = PluginError(f"{where} {initializer.name!r} from "
                                      f"{origin(initializer.fn)} raised {type(exc).__name__}: "
                                      f"{exc}")
                    err.node = node.name
                    raise err from exc
        return params

    # --- properties --------------------------------------------------------
    @property
    def name(self):
        return self.graph.name

    @property
    def nodes(self):
        """Compiled nodes by name, in topological order (op, attrs, shape, params)."""
        return self.program.nodes

    @property
    def outputs(self):
        return list(self.program.outputs)

    @property
    def losses(self):
        return list(self.program.losses)

    @property
    def inputs(self):
        return list(self.program.inputs)

    def param_count(self):
        """The number of trainable values (the params)."""
        return sum(p.size for p in self.params.values())

    def buffer_count(self):
        """The number of non-trainable values (the buffers)."""
        return sum(b.size for b in self.buffers.values())

    # --- running -----------------------------------------------------------
    def plan(self, targets):
        """The cached Plan computing these node names."""
        key = targets if type(targets) is tuple else tuple(targets)
        plan = self._plans.get(key)
        if plan is None:
            for t in targets:
                if t not in self.program.nodes:
                    raise GraphnetError(f"{t!r} is not a node of model {self.name!r}"
                                        f"{did_you_mean(t, self.program.nodes)}")
            plan = self._plans[key] = Plan(self.program, list(targets))
        return plan

    def forward(self, feeds, outputs=None, training=False, copy=True):
        """Run the graph on a batch; return {node name: array} for ``outputs``.

        By default the outputs are the graph's outputs and its losses (which
        need the targets fed too). Only the nodes the outputs need are run.
        With ``training=True`` dropout is on, batch_norm uses and records batch
        statistics, and ``backward`` may follow.
        The arrays returned are the caller's (the engine reuses its own);
        ``copy=False`` hands out the engine's own instead, valid until the
        next forward, for a loop that reads them at once (``fit`` does).
        """
        if outputs is None:
            outputs = self._default_outputs
        elif isinstance(outputs, str):
            outputs = [outputs]
        vals = self._run(outputs, feeds, training)
        if not copy:
            return {name: vals[slot] for name, slot in self._last[0].targets}
        return {name: vals[slot].copy() for name, slot in self._last[0].targets}

    def _run(self, outputs, feeds, training):
        """Forward through the plan for ``outputs``; its slot values (engine-owned)."""
        plan = self._plans.get(outputs if type(outputs) is tuple else tuple(outputs))
        if plan is None:
            plan = self.plan(outputs)
        fed, batch = check_feeds(plan, feeds, self.dtype, self.program.inputs)
        vals = [None] * plan.size
        for slot, arr in fed.items():
            vals[slot] = arr
        params = self.params
        for slot, key in plan.param_slots:
            vals[slot] = params[key]
        if training is not plan.training or self.rng is not plan.rng:
            plan.set_mode(bool(training), self.rng)
        if plan.buffer_contexts:
            plan.bind_buffers(self.buffers)
        plan.run_forward(vals, batch, self.dtype)
        self._last = (plan, vals)
        return vals

    def backward(self, loss=None, inputs=False, out=None):
        """Gradients of the last forward's loss: {param key: array}, one per param.

        With several loss nodes their sum is differentiated, unless ``loss``
        names one. ``inputs=True`` adds the gradients of the float inputs,
        keyed by input name. The result is a FlatArrays (views into one flat
        array, in the order of ``model.params``) that belongs to the caller;
        once the caller has let go of every part of it (as the loop
        ``opt.step(model.params, model.backward())`` does), the next backward
        refills the same memory instead of allocating.
        A training loop that is done with the last step's gradients passes
        them back as ``out`` to have them overwritten in place, so that a step
        allocates nothing:

        >>> grads = None                                          # doctest: +SKIP
        >>> for feeds in batches:                                 # doctest: +SKIP
        ...     model.forward(feeds, training=True)
        ...     grads = model.backward(out=grads)
        ...     opt.step(model.params, grads)
        """
        if self._last is None:
            raise GraphnetError("backward needs a forward pass first: call "
                                "model.forward(feeds, training=True)")
        plan, vals = self._last
        if loss is None:
            losses = plan.losses
            if not losses:
                raise GraphnetError(
                    f"the last forward computed no loss node (model losses: {self.losses}); "
                    f"call forward with the targets fed so that the loss is computed")
        else:
            losses = [(n, s) for n, s in plan.losses if n == loss]
            if not losses:
                raise GraphnetError(f"{loss!r} is not a loss computed by the last forward; "
                                    f"losses computed: {[n for n, _ in plan.losses]}"
                                    f"{did_you_mean(loss, self.losses)}")
        plan.set_grad_mode(bool(inputs))
        out, fresh = self._gradient_arrays(out)
        try:   # ops may write the param gradients straight into out's arrays
            grads = plan.run_backward(vals, {slot: self._one for _, slot in losses}, out.views)
        except BaseException:
            for ctx, _ in plan.param_contexts:   # an op failed: let go of out's arrays
                ctx.param_grads = None
            raise
        for slot, key in plan.param_slots:
            g, view = grads[slot], out[key]
            if g is not view:
                if g is None:
                    view.fill(0)
                else:
                    np.copyto(view, g)
        if not fresh:
            for key in plan.unused_params:
                out[key].fill(0)
        if inputs:
            for name, slot, node in plan.feeds:
                if node.dtype in FLOAT_DTYPES:
                    g = grads[slot]
                    out[name] = np.array(g) if g is not None else np.zeros_like(vals[slot])
        return out

    def _gradient_arrays(self, out):
        """The FlatArrays for backward to fill, and whether it is new: ``out`` (once
        checked to be an earlier backward's result of this model), else new zeros."""
        if out is None:
            spare = self._spare        # the last arrays handed out, if nobody holds them now
            if spare is not None and self._refs(spare) == self._spare_refs:
                return spare, False    # unchanged: a changed entry or key changes the counts
            spare = self._spare = flat_arrays(self._layout, np.zeros(self._flat_size, self.dtype))
            self._spare_refs = self._refs(spare)
            return spare, True
        if isinstance(out, FlatArrays) and out.layout is self._layout:
            for key in [k for k in out if k in self.program.inputs]:
                del out[key]                    # input gradients of an inputs=True call
            if out.intact():
                return out, False
        raise GraphnetError("backward(out=...) takes the gradients that an earlier backward "
                            "of this same model returned, with every array left in place; "
                            "pass out=None to get new arrays")

    @staticmethod
    def _refs(grads):
        """Reference counts of a backward's result, its flat array and its views: the
        same as when it was made means that the caller let go of all of them (a kept
        view, or a dict of them, holds the flat array or the views), so the next
        backward may write into them."""
        return (sys.getrefcount(grads), sys.getrefcount(grads.flat), len(grads),
                tuple(map(sys.getrefcount, grads.views)))

    def predict(self, feeds, batch_size=None):
        """The graph's outputs for ``feeds`` (targets not needed), batched if asked."""
        if not self.outputs:
            raise GraphnetError(f"model {self.name!r} has no outputs; mark them with g.output(...)")
        if batch_size is None:
            return {k: np.array(v) for k, v in self.forward(feeds, self.outputs).items()}
        batch_size = check_batch_size(batch_size)
        n = _batch_len(feeds)
        if not n:  # no samples, or an array without a batch axis: forward says which
            return self.predict(feeds)
        parts = {o: [] for o in self.outputs}
        for start in range(0, n, batch_size):
            chunk = {k: np.asarray(v)[start:start + batch_size] for k, v in feeds.items()}
            for k, v in self.forward(chunk, self.outputs).items():
                parts[k].append(np.array(v))
        return {k: np.concatenate(v) if v else np.empty((0,)) for k, v in parts.items()}

    # --- training (graphnet.train) -----------------------------------------
    def fit(self, data, **kwargs):
        """Train on ``data`` (a dict of arrays); see ``graphnet.train.fit``."""
        from .train import fit
        return fit(self, data, **kwargs)

    def adapt(self, data, **kwargs):
        """Set the buffers ops learn from data (normalize); see ``graphnet.train.adapt``."""
        from .train import adapt
        return adapt(self, data, **kwargs)

    def evaluate(self, data, **kwargs):
        """Losses and metrics on ``data``; see ``graphnet.train.evaluate``."""
        from .train import evaluate
        return evaluate(self, data, **kwargs)

    # --- describing ----------------------------------------------------------
    def summary(self):
        """A table of node, op, output shape and param count, with totals (as Keras prints):
        a node's count holds its buffers too; the totals tell trainable and not apart."""
        rows = [("node", "op", "output shape", "params")]
        for node in self.program.nodes.values():
            shape = "scalar" if node.kind == "loss" else "(N" + "".join(
                f", {d}" for d in node.shape) + ")"
            rows.append((node.name, node.op.name, shape,
                         f"{node.param_count() + node.buffer_count():,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        line = "-" * (sum(widths) + 6)

        def fmt(r):
            return "  ".join([r[0].ljust(widths[0]), r[1].ljust(widths[1]),
                              r[2].ljust(widths[2]), r[3].rjust(widths[3])])

        body = [fmt(r) for r in rows[1:]]
        trainable, fixed = self.param_count(), self.buffer_count()
        nbytes = sum(a.nbytes for a in (*self.params.values(), *self.buffers.values()))
        return "\n".join([f'Model "{self.name}" ({self.dtype})', line, fmt(rows[0]), line,
                          *body, line, f"Total params: {trainable + fixed:,} ({_human(nbytes)})",
                          f"Trainable params: {trainable:,}",
                          f"Non-trainable params: {fixed:,}",
                          f"Outputs: {', '.join(self.outputs) or '-'}    "
                          f"Losses: {', '.join(self.losses) or '-'}"])

    def _repr_mimebundle_(self, include=None, exclude=None):
        """Show the model as SVG in Jupyter."""
        from .render import render
        return render(self)._repr_mimebundle_(include=include, exclude=exclude)

    def __repr__(self):
        return (f"<Model {self.name!r}: {len(self.program.nodes)} nodes, "
                f"{self.param_count():,} params, {self.dtype}>")


def default_fans(shape):
    """Fans of a param that does not declare them, as Keras reads them from its shape:
    a (in, out) matrix has fan_in = in and fan_out = out; a vector has both = its length."""
    shape = tuple(shape)
    if not shape:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    return math.prod(shape[:-1]), shape[-1]


def _batch_len(feeds):
    return sample_count({k: (np.shape(v) or (None,))[0] for k, v in feeds.items()})


def _human(nbytes):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
