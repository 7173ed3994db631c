"""Gradients of whole graphs against central differences (float64, below 1e-6):
skip connections, fan-out, repeated inputs, concat of branches, several inputs and
losses, dropout while training, input gradients; and gradcheck catching a wrong op."""

import numpy as np
import pytest

import graphnet as gn
from graphnet.testing import check_activation, registered

RNG = np.random.default_rng(42)


def assert_grads(model, feeds, **kwargs):
    report = gn.gradcheck(model, feeds, **kwargs)
    assert report.ok and report.max_error < 1e-6, str(report)
    return report


def regression(shape=(4,), out=3):
    g = gn.Graph("g")
    x = g.input("x", shape)
    t = g.input("t", (out,))
    return g, x, t


def feeds_for(model, batch=5, classes=3):
    feeds = {}
    for name in model.inputs:
        node = model.nodes[name]
        if node.dtype.startswith("int"):
            feeds[name] = RNG.integers(0, classes, size=(batch, *node.shape))
        else:
            feeds[name] = RNG.normal(size=(batch, *node.shape))
    return feeds


def test_skip_connection():
    g, x, t = regression(out=4)
    h = g.add("tanh", g.add("dense", x, units=4))
    h = g.add("add", x, h, name="skip")
    g.add("mse", g.add("dense", h, units=4), t, name="loss")
    model = gn.Model(g, dtype="float64")
    assert_grads(model, feeds_for(model), inputs=True)


def test_node_feeding_three_consumers():
    g, x, t = regression()
    h = g.add("dense", x, units=3, name="shared")
    a, b, c = g.add("tanh", h), g.add("sigmoid", h), g.add("dense", h, units=3)
    g.add("mse", g.add("add", g.add("mul", a, b), c), t, name="loss")
    model = gn.Model(g, dtype="float64")
    assert len(list(g.nx.successors("shared"))) == 3
    assert_grads(model, feeds_for(model), inputs=True)


def test_repeated_input():
    g, x, t = regression()
    h = g.add("dense", x, units=3)
    sq = g.add("mul", h, h, name="square")
    g.add("mse", g.add("sub", sq, g.add("add", h, h)), t, name="loss")
    model = gn.Model(g, dtype="float64")
    assert model.nodes["square"].inputs == [h, h]
    assert_grads(model, feeds_for(model), inputs=True)


def test_repeated_input_gradient_is_doubled():
    """d(h*h)/dh = 2h: both positions of a repeated input contribute."""
    g = gn.Graph()
    x = g.input("x", (3,))
    g.add("mse", g.add("mul", x, x), g.input("t", (3,)), name="loss", reduction="sum")
    model = gn.Model(g, dtype="float64")
    X, T = RNG.normal(size=(2, 3)), RNG.normal(size=(2, 3))
    model.forward({"x": X, "t": T})
    np.testing.assert_allclose(model.backward(inputs=True)["x"], 2 * (X * X - T) * 2 * X)


def test_concat_of_two_branches():
    g, x, t = regression()
    a = g.add("relu", g.add("dense", x, units=2, init="he_normal"))
    b = g.add("elu", g.add("dense", x, units=3))
    h = g.add("concat", a, b)
    g.add("mse", g.add("dense", h, units=3), t, name="loss")
    model = gn.Model(g, dtype="float64")
    assert model.nodes[h].shape == (5,)
    assert_grads(model, feeds_for(model), inputs=True)


def test_two_separate_inputs():
    g = gn.Graph()
    a, b = g.input("a", (3,)), g.input("b", (2, 2))
    y = g.input("y", (), dtype="int64")
    ha = g.add("dense", a, units=4)
    hb = g.add("dense", g.add("flatten", b), units=4)
    g.add("softmax_cross_entropy", g.add("softplus", g.add("add", ha, hb)), y, name="loss")
    model = gn.Model(g, dtype="float64")
    report = assert_grads(model, feeds_for(model, classes=4), inputs=True)
    assert {"a", "b"} <= set(report.errors) and "y" not in report.errors


def two_loss_model():
    g, x, t = regression()
    y = g.input("y", (), dtype="int64")
    h = g.add("tanh", g.add("dense", x, units=5, name="trunk"))
    g.add("mse", g.add("dense", h, units=3, name="reg"), t, name="l_reg")
    g.add("softmax_cross_entropy", g.add("dense", h, units=3, name="cls"), y, name="l_cls")
    return gn.Model(g, dtype="float64")


def test_two_losses_sum_unless_one_is_named():
    model = two_loss_model()
    feeds = feeds_for(model)
    assert_grads(model, feeds, inputs=True)
    assert_grads(model, feeds, loss="l_cls", inputs=True)
    assert_grads(model, feeds, loss="l_reg")
    model.forward(feeds)
    both = model.backward()
    one, two = model.backward(loss="l_reg"), model.backward(loss="l_cls")
    for key in model.params:
        np.testing.assert_allclose(both[key], one[key] + two[key], rtol=1e-12, atol=1e-15)
    # a head that a named loss does not reach gets zero gradient
    assert not one["cls.weight"].any() and not two["reg.weight"].any()
    assert one["trunk.weight"].any() and two["trunk.weight"].any()


def test_dropout_while_training_replays_the_rng():
    g, x, t = regression()
    h = g.add("dropout", g.add("tanh", g.add("dense", x, units=8)), rate=0.5)
    g.add("mse", g.add("dense", h, units=3), t, name="loss")
    model = gn.Model(g, dtype="float64")
    feeds = feeds_for(model)
    assert_grads(model, feeds, training=True, inputs=True)


def test_float32_model_is_checked_in_float64():
    g, x, t = regression()
    g.add("mse", g.add("dense", g.add("sigmoid", g.add("dense", x, units=6)), units=3), t,
          name="loss")
    model = gn.Model(g, dtype="float32")
    before = {k: v.copy() for k, v in model.params.items()}
    assert_grads(model, feeds_for(model))
    for k, v in model.params.items():  # the model itself is untouched
        assert v.dtype == np.float32 and np.array_equal(v, before[k])


def test_input_gradients_match_formula():
    g = gn.Graph()
    x, t = g.input("x", (3,)), g.input("t", (3,))
    g.add("mse", x, t, name="loss")
    model = gn.Model(g, dtype="float64")
    X, T = RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3))
    model.forward({"x": X, "t": T})
    grads = model.backward(inputs=True)
    np.testing.assert_allclose(grads["x"], 2 * (X - T) / X.size)
    np.testing.assert_allclose(grads["t"], -2 * (X - T) / X.size)
    assert "x" not in model.backward()


def test_fan_out_through_pass_through_ops_accumulates_correctly():
    """identity and add hand back their incoming gradient; summing at fan-out must
    not add into an array that another node's gradient still uses."""
    g, x, t = regression(out=4)
    h = g.add("dense", x, units=4)
    i1, i2 = g.add("identity", h), g.add("identity", h)
    s = g.add("add", i1, i2)
    s2 = g.add("add", s, s)
    s3 = g.add("add", s2, i1)
    s4 = g.add("sub", s3, g.add("concat", g.add("dropout", h, rate=0.1)))
    g.add("mse", s4, t, name="loss")
    g.add("mse", s, t, name="loss2")
    pair = g.add("concat", s2, s2, i2)            # one input twice, with split views
    g.add("mse", g.add("dense", pair, units=4), t, name="loss3")
    model = gn.Model(g, dtype="float64")
    feeds = feeds_for(model)
    assert_grads(model, feeds, inputs=True)
    model.forward(feeds)
    first = model.backward(inputs=True)
    again = model.backward(inputs=True)  # backward twice on one forward: same answer
    for k in first:
        np.testing.assert_array_equal(first[k], again[k])


def test_every_activation_in_parallel_branches():
    g, x, t = regression()
    h = g.add("dense", x, units=4, name="trunk")
    branches = [g.add(act, g.add("dense", h, units=4))
                for act in ("relu", "elu", "softplus", "sigmoid", "tanh", "leaky_relu", "softmax")]
    s = branches[0]
    for b in branches[1:]:
        s = g.add("add", s, b)
    g.add("binary_cross_entropy", g.add("dense", g.add("tanh", s), units=3), t, name="loss")
    model = gn.Model(g, dtype="float64", seed=3)
    feeds = feeds_for(model)
    feeds["t"] = (feeds["t"] > 0).astype(float)
    assert_grads(model, feeds, inputs=True, max_per_param=16)


# --- gradcheck itself --------------------------------------------------------------
def bad_cube():
    return gn.Activation("bad_cube", fn=lambda x: x**3, derivative=lambda x, y: 2 * x**2)


def test_gradcheck_reports_a_wrong_gradient_without_raising():
    with registered(bad_cube()):
        g, x, t = regression()
        g.add("mse", g.add("dense", g.add("bad_cube", g.add("dense", x, units=3, name="fc1")),
                           units=3, name="fc2"), t, name="loss")
        model = gn.Model(g, dtype="float64")
        report = gn.gradcheck(model, feeds_for(model))
    assert not report.ok and report.max_error > 1e-2
    assert report.errors["fc1.weight"] > 1e-2 and report.errors["fc2.weight"] < 1e-6
    assert report.worst in ("fc1.weight", "fc1.bias")
    text = str(report)
    assert "FAILED" in text and "fc1.weight" in text and "above tolerance" in text


def test_check_activation_raises_on_a_wrong_derivative():
    with pytest.raises(AssertionError, match="bad_cube"):
        check_activation(bad_cube())
    assert "bad_cube" not in [e.name for e in gn.plugins.entries("op")]


def test_report_lists_every_param_and_counts_entries():
    model = two_loss_model()
    report = gn.gradcheck(model, feeds_for(model), max_per_param=4)
    assert set(report.errors) == set(model.params)
    assert report.checked == sum(min(p.size, 4) for p in model.params.values())
    assert "OK" in str(report)


def test_integer_valued_feeds_of_float_inputs_are_checked_too():
    g, x, t = regression()
    g.add("mse", g.add("dense", x, units=3), t, name="loss")
    model = gn.Model(g, dtype="float64")
    feeds = {"x": np.arange(20).reshape(5, 4) % 3, "t": np.zeros((5, 3), dtype=int)}
    report = assert_grads(model, feeds, inputs=True)
    assert {"x", "t"} <= set(report.errors)


def test_gradients_handed_to_two_inputs_are_not_shared():
    """add hands the same array to both inputs; a later sum into one of them (from an
    earlier consumer of ``a``) must not change the other's gradient."""
    g, x, t = regression()
    a = g.add("dense", x, units=3, name="a")
    b = g.add("dense", x, units=3, name="b")
    c = g.add("tanh", a, name="c")                  # consumes a before the add does
    d = g.add("identity", b, name="d")
    s = g.add("add", a, d, name="s")
    g.add("mse", g.add("mul", s, c), t, name="loss")
    model = gn.Model(g, dtype="float64")
    assert_grads(model, feeds_for(model), inputs=True)


# --- random DAGs ---------------------------------------------------------------------
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

UNARY = ["tanh", "sigmoid", "softplus", "elu", "relu", "identity", "dense", "softmax", "dropout"]
BINARY = ["add", "sub", "mul", "concat_dense"]


@st.composite
def random_dag(draw):
    """A random DAG over (3,)-shaped nodes: any node may feed any later node, any
    number of times, so fan-out, repeated inputs and skips all show up. Dense biases
    start random: sub(a, a) is exactly zero, and a zero bias would then put elu's
    input on its kink, where central differences are off by eps / 4."""
    g = gn.Graph("random")
    nodes = [g.input("x1", (3,)), g.input("x2", (3,))]
    for _ in range(draw(st.integers(1, 8))):
        pick = st.sampled_from(nodes)
        if draw(st.booleans()):
            op = draw(st.sampled_from(UNARY))
            attrs = {"units": 3, "bias_init": "normal"} if op == "dense" else {}
            nodes.append(g.add(op, draw(pick), **attrs))
        else:
            op, a, b = draw(st.sampled_from(BINARY)), draw(pick), draw(pick)
            if op == "concat_dense":
                nodes.append(g.add("dense", g.add("concat", a, b), units=3, bias_init="normal"))
            else:
                nodes.append(g.add(op, a, b))
    used = {i for n in g.nodes() for i in g.node(n)["inputs"]}
    sinks = [n for n in nodes if n not in used] or nodes[-1:]
    total = sinks[0]
    for s in sinks[1:]:
        total = g.add("add", total, s)
    g.add("mse", total, g.input("t", (3,)), name="loss")
    return g


@settings(max_examples=30, deadline=None, derandomize=True,  # the same DAGs in every run
          suppress_health_check=[HealthCheck.too_slow])
@given(graph=random_dag(), seed=st.integers(0, 3))
def test_random_dags(graph, seed):
    model = gn.Model(graph, seed=seed, dtype="float64")
    rng = np.random.default_rng(seed)
    feeds = {k: rng.normal(size=(3, 3)) for k in ("x1", "x2", "t")}
    report = gn.gradcheck(model, feeds, inputs=True, max_per_param=9, training=True)
    assert report.ok, str(report)
