"""graphnet.scheduler: the Program (topological order, shapes, params), the Plan
(pruning, gradients, feed checks), the generated plan debuggable (its lines in
tracebacks, failures naming the node), checked on its first forward, and equal to
the reference interpreter on every graph."""

import traceback
from pathlib import Path

import numpy as np
import pytest

import graphnet as gn
from graphnet.scheduler import Plan, Program, check_batch_size, check_feeds, sample_count
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


class FusedBroken(gn.Optimizer):
    """An optimizer that does its whole step itself, with a bug in it."""
    name = "test_fused_broken"

    def step(self, params, grads):
        grads = self.begin_step(grads)
        for name, grad in grads.items():
            params[name] -= self.lr * grad["no such key"]


class FusedChecks(gn.Optimizer):
    name = "test_fused_checks"

    def step(self, params, grads):
        raise gn.GraphnetError("optimizer 'test_fused_checks': lr is too large for me")


class OnTopOfBase(BrokenOptimizer):
    name = "test_on_top"

    def step(self, params, grads):
        super().step(params, grads)


def test_an_optimizer_whose_own_step_raises_is_named_with_its_origin():
    model = model_with("identity")
    opt = FusedBroken(lr=0.1)
    with pytest.raises(gn.PluginError, match=rf"optimizer 'test_fused_broken' from module "
                                             rf"{__name__} raised IndexError in step 1") as e:
        opt.step(model.params, grads_of(model))
    assert isinstance(e.value.__cause__, IndexError)
    with pytest.raises(gn.PluginError, match="in step 2"):
        opt.step(model.params, grads_of(model))
    with pytest.raises(gn.PluginError, match=r"test_fused_broken.*raised IndexError"):
        model.fit(feeds(), optimizer=FusedBroken(lr=0.1), epochs=1, batch_size=2, progress=False)


def test_a_step_override_passes_graphnet_errors_and_wrapped_failures_through_once():
    model = model_with("identity")
    with pytest.raises(gn.GraphnetError, match=r"^optimizer 'test_fused_checks': lr is too"):
        FusedChecks(lr=0.1).step(model.params, grads_of(model))
    with pytest.raises(gn.PluginError) as e:
        OnTopOfBase(lr=0.1).step(model.params, grads_of(model))
    assert str(e.value).count("raised") == 1 and "'test_on_top'" in str(e.value)
    assert isinstance(e.value.__cause__, IndexError)
    assert FusedBroken.step.__doc__ is None and FusedBroken.step.__name__ == "step"
    assert not hasattr(gn.Optimizer.step, "__wrapped__")   # its own try: no call per step


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


# --- Program: order, shapes, params ------------------------------------------------

def diamond():
    """x feeds a tanh and a dense, which a concat joins; a second input z feeds only
    a branch no output of ``a`` needs."""
    g = gn.Graph("diamond")
    x, z = g.input("x", shape=(3,)), g.input("z", shape=(2,))
    a = g.add("tanh", x, name="a")
    b = g.add("dense", x, units=5, name="b")
    c = g.add("concat", a, b, name="c")
    g.add("dense", c, units=2, name="head")
    g.add("relu", z, name="side")
    g.output("head", "a", "side")
    return g


def test_program_orders_nodes_so_every_input_comes_first_in_declaration_order():
    program = Program(diamond())
    order = list(program.nodes)
    assert order == ["x", "z", "a", "b", "c", "head", "side"]
    for name, node in program.nodes.items():
        assert all(order.index(i) < order.index(name) for i in node.inputs), name
    assert program.inputs == ["x", "z"] and program.losses == []


def test_program_infers_every_shape_and_counts_params():
    program = Program(diamond())
    shapes = {n: node.shape for n, node in program.nodes.items()}
    assert shapes == {"x": (3,), "z": (2,), "a": (3,), "b": (5,), "c": (8,),
                      "head": (2,), "side": (2,)}
    assert program.param_count() == (3 * 5 + 5) + (8 * 2 + 2)
    model = gn.Model(diamond())
    assert program.param_count() == sum(v.size for v in model.params.values())


def test_a_plan_holds_only_the_nodes_its_targets_need():
    program = Program(diamond())
    plan = Plan(program, ["a"])
    assert [n for n, _, _ in plan.feeds] == ["x"]
    assert [node.name for node in plan.nodes] == ["a"]
    assert sorted(plan.unused_params) == ["b.bias", "b.weight", "head.bias", "head.weight"]
    full = Plan(program, ["head", "side"])
    assert [node.name for node in full.nodes] == ["a", "b", "c", "head", "side"]
    out = gn.Model(diamond()).forward({"x": np.ones((2, 3))}, outputs=["a"])  # z not fed
    np.testing.assert_allclose(out["a"], np.tanh(np.ones((2, 3))), rtol=1e-6)


# --- Plan: gradients -------------------------------------------------------------

def two_layer():
    g = gn.Graph("clf")
    x = g.input("x", (4,))
    y = g.input("y", (), dtype="int64")
    h = g.add("relu", g.add("dense", x, units=16, name="fc1"))
    out = g.add("dense", h, units=3, name="out")
    g.add("softmax_cross_entropy", out, y, name="loss")
    g.output(out)
    return g


X = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
Y = np.array([0, 1, 2, 0, 1, 2])


def test_backward_keys_and_input_gradients():
    model = gn.Model(two_layer())
    model.forward({"x": X, "y": Y}, training=True)
    grads = model.backward()
    assert sorted(grads) == sorted(model.params)
    assert all(grads[k].shape == v.shape and grads[k].dtype == v.dtype
               for k, v in model.params.items())
    with_inputs = model.backward(inputs=True)
    assert sorted(with_inputs) == sorted([*model.params, "x"])   # labels have no gradient
    assert with_inputs["x"].shape == X.shape


def test_gradients_of_a_node_read_twice_are_summed():
    """y = x + x: x's gradient is twice what y = u (fed u = 2x) gives u."""
    def graph(fan_out):
        g = gn.Graph("fan_out")
        x, t = g.input("x", shape=(3,)), g.input("t", shape=(3,))
        y = g.add("add", x, x, name="y") if fan_out else g.add("identity", x, name="y")
        g.add("mse", y, t, name="loss")
        return g

    rng = np.random.default_rng(1)
    x, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    twice, once = gn.Model(graph(True), dtype="float64"), gn.Model(graph(False), dtype="float64")
    twice.forward({"x": x, "t": t})
    once.forward({"x": 2 * x, "t": t})
    dx = twice.backward(inputs=True)["x"]
    np.testing.assert_allclose(dx, 2 * once.backward(inputs=True)["x"], rtol=1e-12)
    assert gn.gradcheck(twice, {"x": x, "t": t}, inputs=True).ok


# --- Plan: feed checks -----------------------------------------------------------

def test_check_feeds_converts_to_the_model_dtype_and_names_what_is_wrong():
    program = Program(diamond())
    plan = Plan(program, ["a"])
    out, batch = check_feeds(plan, {"x": np.ones((2, 3))}, np.float32, program.inputs)
    assert batch == 2 and out[plan.slot["x"]].dtype == np.float32
    with pytest.raises(gn.FeedError, match="input 'x' is missing.*'a'"):
        check_feeds(plan, {"z": np.ones((2, 2))}, np.float32, program.inputs)
    with pytest.raises(gn.FeedError, match="feed 'xx' is not an input.*'x'"):
        check_feeds(plan, {"xx": np.ones((2, 3))}, np.float32, program.inputs)
    both = Plan(program, ["a", "side"])
    with pytest.raises(gn.FeedError, match="same number of samples.*'x': 2.*'z': 3"):
        check_feeds(both, {"x": np.ones((2, 3)), "z": np.ones((3, 2))}, np.float32,
                    program.inputs)


def test_sample_count_and_check_batch_size():
    assert sample_count({"x": 5, "y": 5}) == 5 and sample_count({}) == 0
    with pytest.raises(gn.FeedError, match=r"fit: every input needs the same number of "
                                           r"samples, got \{'x': 5, 'y': 4\}"):
        sample_count({"x": 5, "y": 4}, "fit")
    assert check_batch_size(np.int64(3)) == 3 and type(check_batch_size(np.int64(3))) is int
    for bad in (0, -1, 1.5, True, "2", None):
        with pytest.raises(gn.GraphnetError, match="batch_size must be a whole number >= 1"):
            check_batch_size(bad)


class Counter(gn.Op):
    """identity that counts its forward calls."""

    name = "count_calls"
    calls = 0

    def forward(self, ctx, x):
        Counter.calls += 1
        return x

    def backward(self, ctx, dy):
        return (dy,)


def test_forward_runs_only_what_the_outputs_need():
    with registered(Counter()):
        g = gn.Graph()
        x = g.input("x", (3,))
        a = g.add("tanh", x, name="a")
        b = g.add("count_calls", x, name="b")
        g.output(a, b)
        model = gn.Model(g)
        Counter.calls = 0
        model.forward({"x": np.ones((2, 3))}, outputs=["a"])
        assert Counter.calls == 0
        model.forward({"x": np.ones((2, 3))})
        assert Counter.calls == 1


def test_compiled_steps_make_no_networkx_call_and_no_registry_lookup(monkeypatch):
    """DESIGN.md: after compiling, forward and backward run a flat plan."""
    import networkx

    from graphnet import plugins as plugin_module

    model = gn.Model(two_layer(), dtype="float32")
    feeds = {"x": X, "y": Y}
    model.forward(feeds, training=True)
    expected = model.backward()

    def forbidden(*args, **kwargs):
        raise AssertionError("called while running a compiled plan")

    for name in ("ancestors", "descendants", "topological_sort",
                 "lexicographical_topological_sort", "find_cycle"):
        monkeypatch.setattr(networkx, name, forbidden)
    monkeypatch.setattr(networkx.DiGraph, "__iter__", forbidden)
    monkeypatch.setattr(networkx.DiGraph, "nodes", property(forbidden))
    monkeypatch.setattr(plugin_module.Registry, "get", forbidden)
    monkeypatch.setattr(plugin_module.Registry, "tables", forbidden)
    model.forward(feeds, training=True)
    grads = model.backward()
    for k in expected:
        np.testing.assert_array_equal(grads[k], expected[k])


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
