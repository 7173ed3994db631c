"""Checks a plugin author runs on their own op or activation (as graphnet does on its own).

>>> from graphnet.testing import check_activation, check_op
>>> check_activation("tanh")                     # doctest: +SKIP
>>> check_op("dense", [(3,)], {"units": 2})      # doctest: +SKIP

``check_op`` runs every check: shape inference, the gradient check in
float64, dtype preservation in float32, and the JSON round trip.
``check_optimizer`` checks an optimizer: its state survives a round trip, its
flat path (``elementwise = True``) agrees with param-by-param updates, and it
descends on a quadratic.
"""

import contextlib

import numpy as np

from .graph import Graph
from .gradients import gradcheck
from .model import Model, flat_arrays
from .ops import Activation, Op
from . import plugins
from .errors import PluginError
from .optim import Optimizer


@contextlib.contextmanager
def registered(obj):
    """Register an Op or Activation for the duration of a with-block (if not yet known)."""
    kind = "activation" if isinstance(obj, Activation) else "op"
    entry = plugins.registry().tables()["op"].get(obj.name)
    if entry is not None:
        mine = getattr(entry.obj, "activation", entry.obj)
        if obj is mine or (isinstance(obj, Op) and type(obj) is type(mine)):
            yield obj.name
            return
        # checking the registered namesake instead would test the wrong code
        raise PluginError(f"{kind} {obj.name!r} is already registered by plugin "
                          f"{entry.plugin!r}; give yours another name, or pass the name "
                          f"{obj.name!r} to check the registered one")
    hook = "graphnet_activations" if kind == "activation" else "graphnet_ops"

    class _Plugin:
        pass

    setattr(_Plugin, hook, staticmethod(plugins.hookimpl(lambda: [obj])))
    name = plugins.register(_Plugin(), name=f"graphnet.testing:{obj.name}")
    try:
        yield obj.name
    finally:
        plugins.unregister(name)


def check_op(op, input_shapes, attrs=None, batch=3, seed=0, tolerance=1e-6,
             int_inputs=None, classes=3, inputs=True, training=False):
    """Gradient-check one op (a registered name, an Op or its class, or an Activation).

    Builds inputs of the given per-sample shapes, the op, and (unless the op
    is a loss) an mse against a random target; checks that forward returns the
    shape the op inferred and that backward matches finite differences in
    float64. Returns the GradcheckReport; raises AssertionError if it fails.
    ``int_inputs`` lists input positions fed integer labels in [0, classes).
    ``training=True`` checks the training-mode pass (dropout's mask is replayed).
    """
    rng = np.random.default_rng(seed)
    if isinstance(op, type) and issubclass(op, Op):
        op = op()
    cm = registered(op) if isinstance(op, (Op, Activation)) else contextlib.nullcontext(op)
    with cm as name:
        opobj = plugins.get("op", name)
        int_inputs = tuple(opobj.int_inputs if int_inputs is None else int_inputs)
        g = Graph(f"check_{name}")
        feeds = {}
        ins = []
        for i, shape in enumerate(input_shapes):
            label = i in int_inputs
            ins.append(g.input(f"in{i}", shape=shape, dtype="int64" if label else "float32"))
            feeds[f"in{i}"] = (rng.integers(0, classes, size=(batch, *shape)) if label
                               else rng.normal(size=(batch, *shape)))
        y = g.add(name, *ins, name="node", **(attrs or {}))
        model = Model(g, seed=seed, dtype="float64")
        node = model.nodes["node"]
        if node.kind != "loss":
            t = g.input("target", shape=node.shape, dtype="float64")
            g.add("mse", y, t, name="loss")
            g.output(y)
            feeds["target"] = rng.normal(size=(batch, *node.shape))
            model = Model(g, seed=seed, dtype="float64")
        try:   # the engine checks the output's shape and dtype on a plan's first forward
            model.forward(feeds, outputs=["node"])
        except PluginError as exc:
            raise AssertionError(f"op {name!r}: {exc}") from exc
        report = gradcheck(model, feeds, inputs=inputs, tolerance=tolerance, seed=seed,
                           training=training)
        assert report.ok, f"op {name!r} failed its gradient check:\n{report}"
        check_float32(name, Model(g, seed=seed, dtype="float32"), feeds, training)
        check_roundtrip(g, feeds, seed=seed)
        return report


def check_roundtrip(graph, feeds, seed=0):
    """A graph must survive its JSON form: the text round-trips exactly, and the
    graph read back builds a model with the same params and the same outputs."""
    text = graph.to_json()
    again = Graph.from_json(text)
    assert again.to_json() == text, (
        f"graph {graph.name!r} changed in a JSON round trip:\n{text}\n!=\n{again.to_json()}")
    before = Model(graph, seed=seed, dtype="float64")
    after = Model(again, seed=seed, dtype="float64")
    for key, value in before.params.items():
        assert np.array_equal(value, after.params[key]), (
            f"param {key!r} differs after a JSON round trip of graph {graph.name!r}")
    out_before = before.forward(feeds)
    out_after = after.forward(feeds)
    for key, value in out_before.items():
        assert np.array_equal(value, out_after[key]), (
            f"output {key!r} differs after a JSON round trip of graph {graph.name!r}")


def check_float32(name, model, feeds, training=False):
    """A float32 model must stay float32: the op's output and every gradient."""
    outs = model.forward(feeds, outputs=["node", "loss"] if "loss" in model.nodes
                         else ["node"], training=training)
    grads = model.backward(loss="loss" if "loss" in model.nodes else None,
                           inputs=True)
    for what, arrays in (("output", outs), ("gradient", grads)):
        for key, value in arrays.items():
            assert np.asarray(value).dtype == np.float32, (
                f"op {name!r}: in a float32 model the {what} {key!r} is "
                f"{np.asarray(value).dtype}; keep the input's dtype (e.g. x.dtype.type(0.5) "
                f"for constants, np.zeros_like(x) for arrays)")


def check_activation(activation, shape=(5,), **kwargs):
    """Gradient-check an activation (a registered name or an Activation object)."""
    return check_op(activation, [shape], **kwargs)


def check_onnx(op, input_shapes, attrs=None, opset=None, batches=(1, 7), seed=0,
               rtol=1e-4, atol=1e-6, round_trip=True):
    """Export a one-node model of ``op`` (a registered name, an Op or an Activation) to ONNX.

    The file must pass ``onnx.checker``, and onnxruntime must give what
    ``model.predict`` gives (float32, within rtol) at each batch size of
    ``batches``. With ``round_trip``, ``gn.from_onnx`` must read back the
    same node names, ops, attrs and params, and predict exactly the same.
    Returns the ``onnx.ModelProto``; raises AssertionError if a check fails.
    Needs the ``onnx`` extra (onnx and onnxruntime).
    """
    import onnxruntime
    from .onnx import from_onnx, to_onnx
    if isinstance(op, type) and issubclass(op, Op):
        op = op()
    cm = registered(op) if isinstance(op, (Op, Activation)) else contextlib.nullcontext(op)
    with cm as name:
        g = Graph(f"onnx_{name}")
        ins = [g.input(f"x{i}", shape=s) for i, s in enumerate(input_shapes)]
        g.output(g.add(name, *ins, name="y", **(attrs or {})))
        model = Model(g, seed=seed)
        proto = to_onnx(model, None, opset=opset)
        session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                               providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(seed)
        for batch in batches:
            feeds = {f"x{i}": rng.normal(size=(batch, *s)).astype(np.float32)
                     for i, s in enumerate(input_shapes)}
            got = session.run(["y"], feeds)[0]
            want = model.predict(feeds)["y"]
            assert got.shape == want.shape and np.allclose(got, want, rtol=rtol, atol=atol), (
                f"op {name!r}: onnxruntime differs from predict at batch {batch} by up to "
                f"{np.max(np.abs(got - want)) if got.shape == want.shape else got.shape}")
        if round_trip:
            back = from_onnx(proto)
            for what in ("op", "attrs"):
                here = {n: getattr(node, what) for n, node in model.nodes.items()}
                there = {n: getattr(node, what) for n, node in back.nodes.items()}
                if what == "op":
                    here = {n: o.name for n, o in here.items()}
                    there = {n: o.name for n, o in there.items()}
                assert here == there, f"op {name!r}: the ONNX round trip changed {what}: " \
                                      f"{here} != {there}"
            assert back.params.keys() == model.params.keys() and all(
                np.array_equal(back.params[k], v) for k, v in model.params.items()), (
                f"op {name!r}: the ONNX round trip changed the params")
            assert np.array_equal(back.predict(feeds)["y"], want), (
                f"op {name!r}: the model read back from ONNX predicts differently")
        return proto


def check_optimizer(name_or_cls, steps=60, seed=0, tolerance=1e-12, **hyper):
    """Check an optimizer (a registered name or an Optimizer subclass) built with ``hyper``.

    - state round trip: ``state_dict`` after some steps, loaded into a fresh
      optimizer, continues exactly as the original does;
    - flat vs per param: with ``elementwise = True`` the update over one flat
      array (what a Model hands it, in chunks of ``flat_chunk``) equals the
      update param by param; an optimizer that needs each param's shape must
      leave ``elementwise`` False;
    - descent: ``steps`` steps on ``0.5 * sum(a * w**2)`` lower the loss.

    Raises AssertionError naming the check that failed; returns the final loss.

    >>> check_optimizer("adam", lr=0.05) < 0.5 * 6.5
    True
    """
    make = (lambda: name_or_cls(**hyper)) if isinstance(name_or_cls, type) else (
        lambda: plugins.optimizer(name_or_cls, **hyper))
    opt = make()
    if not isinstance(opt, Optimizer):
        raise AssertionError(f"{name_or_cls!r} did not build a graphnet.Optimizer")
    label = f"optimizer {opt.name!r}"
    rng = np.random.default_rng(seed)
    shapes = {"w": (3, 2), "b": (2,), "s": ()}
    a = {k: np.array(rng.uniform(0.5, 2.0, size=v)) for k, v in shapes.items()}
    start = {k: np.array(rng.normal(size=v) + np.sign(rng.normal(size=v)))
             for k, v in shapes.items()}

    def grads_of(params):
        return {k: a[k] * params[k] for k in params}

    def loss_of(params):
        return float(sum(0.5 * np.sum(a[k] * params[k] ** 2) for k in params))

    def run(o, params, n):
        for _ in range(n):
            o.step(params, {k: np.array(g) for k, g in grads_of(params).items()})
        return params

    # state round trip
    first = run(opt, {k: v.copy() for k, v in start.items()}, 5)
    saved = opt.state_dict()
    again = make()
    again.load_state_dict(saved)
    ahead = run(opt, {k: v.copy() for k, v in first.items()}, 5)
    resumed = run(again, {k: v.copy() for k, v in first.items()}, 5)
    for k in shapes:
        if not np.allclose(ahead[k], resumed[k], rtol=tolerance, atol=tolerance):
            raise AssertionError(f"{label}: after state_dict/load_state_dict, param {k!r} "
                                 f"moves differently ({resumed[k]} instead of {ahead[k]})")
    # flat vs per param
    if opt.elementwise:
        layout, offset = [], 0
        for k, shape in shapes.items():
            size = int(np.prod(shape, dtype=np.int64))
            layout.append((k, offset, size, shape))
            offset += size
        layout = tuple(layout)
        flat_p = np.concatenate([start[k].reshape(-1) for k in shapes])
        params = flat_arrays(layout, flat_p)
        flat_opt, loose_opt = make(), make()
        flat_opt.flat_chunk = 4  # several chunks, one of them ragged
        loose = {k: v.copy() for k, v in start.items()}
        for _ in range(5):
            flat_g = np.concatenate([grads_of(params)[k].reshape(-1) for k in shapes])
            flat_opt.step(params, flat_arrays(layout, flat_g))
            loose_opt.step(loose, {k: np.array(g) for k, g in grads_of(loose).items()})
        for k in shapes:
            if not np.allclose(params[k], loose[k], rtol=1e-9, atol=1e-12):
                raise AssertionError(
                    f"{label}: elementwise = True, but the update over flat chunks differs "
                    f"from the update param by param for {k!r} ({params[k]} vs {loose[k]}); "
                    f"an update that needs each param's shape must set elementwise = False")
    # descent
    fresh = make()
    params = run(fresh, {k: v.copy() for k, v in start.items()}, steps)
    before, after = loss_of(start), loss_of(params)
    if not (np.isfinite(after) and after < before):
        raise AssertionError(f"{label}: {steps} steps on a quadratic took the loss from "
                             f"{before:.4g} to {after:.4g}; it should go down")
    return after

