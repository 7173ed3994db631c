"""The generated plan: debuggable (its lines in tracebacks, failures naming the node),
checked on its first forward, and equal to the reference interpreter on every graph."""

import traceback
from pathlib import Path

import numpy as np
import pytest

import graphnet as gn
from graphnet.scheduler import Plan
from graphnet.testing import registered

ROOT = Path(__file__).resolve().parents[1]


class Explodes(gn.Op):
    """y = x until ``where`` says otherwise: then forward or backward raises."""

    name = "test_explodes"
    attrs = {"where": gn.Attr("forward", "str", choices=("forward", "backward", "nowhere"))}

    def forward(self, ctx, x):
        if ctx.attrs["where"] == "forward":
            raise ZeroDivisionError("forward blew up")
        return x

    def backward(self, ctx, dy):
        if ctx.attrs["where"] == "backward":
            return (dy[:, 99],)                    # an IndexError, as a real bug would be
        return (dy,)


class WrongDtype(gn.Op):
    name = "test_wrong_dtype"

    def forward(self, ctx, x):
        return x.astype(np.float16)

    def backward(self, ctx, dy):
        return (dy,)


class NotAnArray(gn.Op):
    name = "test_not_an_array"

    def forward(self, ctx, x):
        return x.tolist()

    def backward(self, ctx, dy):
        return (dy,)


def model_with(op_name, **attrs):
    g = gn.Graph("boom")
    x, t = g.input("x", shape=(3,)), g.input("t", shape=(2,))
    h = g.add("dense", x, units=2, name="fc")
    y = g.add(op_name, h, name="bad", **attrs)
    g.add("mse", y, t, name="loss")
    g.output(y)
    return gn.Model(g, seed=0)


def feeds(n=4):
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(n, 3)).astype(np.float32),
            "t": rng.normal(size=(n, 2)).astype(np.float32)}


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_an_op_that_raises_is_named_with_its_origin_and_the_generated_line(direction):
    with registered(Explodes()):
        model = model_with("test_explodes", where=direction)
        with pytest.raises(gn.PluginError) as info:
            model.forward(feeds(), training=True)
            model.backward()
    err = info.value
    assert err.node == "bad"
    msg = str(err)
    assert f"node 'bad': op 'test_explodes' from module {__name__}" in msg
    assert f"in {direction}" in msg
    cause = err.__cause__
    assert isinstance(cause, ZeroDivisionError if direction == "forward" else IndexError)
    text = "".join(traceback.format_exception(cause))
    # the generated function and its line (from linecache) show in the original traceback
    where = "first_forward>" if direction == "forward" else ": backward>"
    line = "= f1(c1, vals[" if direction == "forward" else "r = b1(c1, g)"
    assert "<graphnet plan " in text and where in text and line in text, text


def test_the_traceback_shows_the_generated_line_the_second_time_too():
    """The unchecked forward (every later step) is registered with linecache as well."""
    explodes = Explodes()
    with registered(explodes):
        model = model_with("test_explodes", where="nowhere")
        model.forward(feeds(), training=True)
        model.program.nodes["bad"].attrs["where"] = "forward"   # contexts share the attrs
        with pytest.raises(gn.PluginError, match="node 'bad'") as info:
            model.forward(feeds(), training=True)
    text = "".join(traceback.format_exception(info.value.__cause__))
    assert ": forward>" in text and "vals[" in text and "= f1(c1, " in text


def test_an_activation_that_raises_names_the_node_and_its_module():
    bad = gn.Activation("test_bad_act", fn=lambda x: x @ np.ones((5, 5)),
                        derivative=lambda x, y: x)
    with registered(bad):
        model = model_with("test_bad_act")
        with pytest.raises(gn.PluginError, match=rf"node 'bad': op 'test_bad_act' from "
                                                 rf"module {__name__}.*raised \w+ in forward"):
            model.forward(feeds())


def test_a_graphnet_error_from_an_op_passes_through_unchanged():
    g = gn.Graph("ce")
    x, y = g.input("x", shape=(3,)), g.input("y", shape=(), dtype="int64")
    g.add("softmax_cross_entropy", g.add("dense", x, units=2, name="fc"), y, name="loss")
    model = gn.Model(g)
    with pytest.raises(gn.FeedError, match=r"node 'loss': labels must lie in \[0, 2\)"):
        model.forward({"x": np.zeros((2, 3)), "y": np.array([0, 5])})


@pytest.mark.parametrize("op, problem", [
    (WrongDtype(), "dtype float16, where the model computes in float32"),
    (NotAnArray(), "a list, not a numpy array"),
])
def test_the_first_forward_checks_each_output(op, problem):
    with registered(op):
        model = model_with(op.name)
        with pytest.raises(gn.PluginError, match=f"node 'bad': op '{op.name}'.*{problem}"):
            model.forward(feeds())
        with pytest.raises(gn.PluginError, match="node 'bad'"):   # still refused: not marked
            model.forward(feeds())                                # checked after a failure


def test_a_failing_plugin_op_is_one_line_and_exit_2_in_the_cli(tmp_path, capsys):
    from graphnet.cli import main
    with registered(Explodes()):
        model = model_with("test_explodes", where="forward")
        path = tmp_path / "boom.json"
        model.graph.to_json(path)
        code = main(["gradcheck", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "node 'bad'" in err and "test_explodes" in err and "Traceback" not in err


# --- optimizers, schedules and initializers from plugins ------------------------------


class BrokenOptimizer(gn.Optimizer):
    name = "test_broken_opt"

    def update(self, param, grad, state, step):
        param -= grad["no such key"]


class BrokenSchedule(gn.Schedule):
    name = "test_broken_schedule"

    def __init__(self, lr=0.1):
        super().__init__(lr=lr)

    def value(self, t):
        if t > 0:
            raise ValueError("schedule blew up")
        return self.lr


def grads_of(model):
    model.forward(feeds(), training=True)
    return model.backward()


def test_an_optimizer_that_raises_is_named_with_its_origin():
    model = model_with("identity")
    with pytest.raises(gn.PluginError, match=rf"optimizer 'test_broken_opt' from module "
                                             rf"{__name__} raised IndexError in step 1") as e:
        BrokenOptimizer(lr=0.1).step(model.params, grads_of(model))
    assert isinstance(e.value.__cause__, IndexError)


def test_a_schedule_that_raises_is_named_with_its_origin():
    model = model_with("identity")
    opt = gn.optimizer("sgd", lr=BrokenSchedule(0.1))
    opt.step(model.params, grads_of(model))
    with pytest.raises(gn.PluginError, match=rf"schedule 'test_broken_schedule' from module "
                                             rf"{__name__} raised ValueError for update 1"):
        opt.step(model.params, grads_of(model))


def test_an_initializer_that_raises_names_the_node_and_param():
    def broken(rng, shape, fan_in, fan_out):
        return {"weights": np.ones(shape)}["weight"]  # a KeyError
    init = gn.Initializer("test_broken_init", broken)
    name = gn.plugins.register(init)
    try:
        g = gn.Graph("init")
        g.add("dense", g.input("x", shape=(3,)), units=2, init="test_broken_init", name="fc")
        with pytest.raises(gn.PluginError, match=rf"node 'fc': param 'weight'.*'test_broken_init' "
                                                 rf"from module {__name__} raised KeyError"):
            gn.Model(g)
    finally:
        gn.plugins.unregister(name)


# --- the generated plan against the reference interpreter -------------------------------


def sample_feeds(model, n, rng):
    """Random feeds for every input: normal floats; integer labels below the smallest
    size their consumers could index with (classes, vocabulary)."""
    out = {}
    for name in model.inputs:
        node = model.nodes[name]
        if node.dtype.startswith("float"):
            out[name] = rng.normal(size=(n, *node.shape))
            continue
        limit = []
        for other in model.nodes.values():
            if name in other.inputs:
                limit += [model.nodes[i].shape[-1] for i in other.inputs
                          if i != name and model.nodes[i].shape]
                limit += [p.shape[0] for p in other.params.values() if p.shape]
        out[name] = rng.integers(0, max(1, min(limit, default=2)), size=(n, *node.shape))
    return out


def run_twice(model, feeds):
    """Two training steps' forward outputs and gradients (copies), without updates."""
    results = []
    for _ in range(2):
        outs = model.forward(feeds, training=True)
        grads = {}
        if model.losses and any(model.nodes[o].kind == "loss" for o in outs):
            grads = {k: np.array(v) for k, v in model.backward(inputs=True).items()}
        results.append((outs, grads))
    return results


def compare(graph, dtype):
    """Generated and interpreted plans on one graph: bit-for-bit the same values."""
    generated = gn.Model(graph, seed=3, dtype=dtype)
    reference = gn.Model(graph, seed=3, dtype=dtype)
    key = reference._default_outputs
    reference._plans[key] = Plan(reference.program, list(key), generated=False)
    feeds = sample_feeds(generated, 3, np.random.default_rng(0))
    got, want = run_twice(generated, feeds), run_twice(reference, feeds)
    for (outs, grads), (outs_ref, grads_ref) in zip(got, want):
        assert outs.keys() == outs_ref.keys() and grads.keys() == grads_ref.keys()
        for k in outs:
            np.testing.assert_array_equal(outs[k], outs_ref[k], err_msg=f"output {k}")
        for k in grads:
            np.testing.assert_array_equal(grads[k], grads_ref[k], err_msg=f"gradient {k}")
    return bool(got[0][1])


def own_graphs():
    """Graphs compared even when this file runs alone: the shipped model files and
    one graph with every builtin merge, fan-out and loss."""
    graphs = [gn.Graph.from_json(p) for p in sorted((ROOT / "examples/models").rglob("*.json"))]
    g = gn.Graph("every_builtin")
    x, t, y = g.input("x", shape=(4,)), g.input("t", shape=(3,)), g.input("y", shape=(),
                                                                          dtype="int64")
    h = g.add("tanh", g.add("dense", x, units=6, name="fc1"))
    a = g.add("relu", g.add("dense", h, units=6, name="fc2"))
    m = g.add("mul", g.add("sub", h, a), g.add("sigmoid", h))
    c = g.add("concat", m, g.add("identity", h), g.add("dropout", a, rate=0.3))
    r = g.add("reshape", g.add("flatten", c), shape=(3, 6))
    s = g.add("dense", g.add("flatten", g.add("softmax", r)), units=3, name="head")
    g.add("softmax_cross_entropy", s, y, name="ce")
    g.add("mse", g.add("add", s, g.add("dense", h, units=3)), t, name="mse")
    g.add("binary_cross_entropy", s, t, name="bce")
    g.output(s)
    return graphs + [g]


@pytest.mark.last
def test_generated_plans_equal_the_reference_interpreter_on_every_graph(recorded_graphs):
    """Every graph the suite built (this file's own ones at least), then the shipped
    model files and a graph with every builtin op, which must all run."""
    compared = skipped = 0
    for graph, dtype in list(recorded_graphs.values()):
        try:
            compare(graph, dtype)
        except gn.GraphnetError:   # a plugin unregistered since, a deliberately broken op,
            skipped += 1           # labels these random feeds cannot match
            continue
        compared += 1
    assert compared >= 1, f"none of the {skipped} recorded graphs could be compared"
    assert all([compare(g, "float64") for g in own_graphs()])   # each has gradients
