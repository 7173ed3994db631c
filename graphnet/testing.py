"""Checks a plugin author runs on their own op or activation (as graphnet does on its own).

>>> from graphnet.testing import check_activation, check_op
>>> check_activation("tanh")                     # doctest: +SKIP
>>> check_op("dense", [(3,)], {"units": 2})      # doctest: +SKIP

``check_op`` runs every check: shape inference, the gradient check in
float64, dtype preservation in float32, and the JSON round trip.
"""

import contextlib

import numpy as np

from .graph import Graph
from .gradients import gradcheck
from .model import Model
from .ops import Activation, Op
from . import plugins
from .errors import PluginError


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
