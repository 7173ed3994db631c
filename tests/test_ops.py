"""Every builtin op, activation and loss: values against plain numpy, gradients against
finite differences (float64, below 1e-6), stability at +-1000 in float32, dtypes."""

import numpy as np
import pytest

import graphnet as gn
from graphnet import plugins
from graphnet.testing import check_activation, check_op

# op name -> list of (per-sample input shapes, attrs); every builtin op must be here.
CASES = {
    "dense": [([(4,)], {"units": 3}), ([(4,)], {"units": 2, "use_bias": False}),
              ([(2, 4)], {"units": 3})],
    "add": [([(3,), (3,)], {}), ([(3,), (4, 3)], {}), ([(), (3,)], {}), ([(4, 1), (1, 3)], {})],
    "sub": [([(3,), (3,)], {}), ([(2, 3), (3,)], {}), ([(3,), ()], {})],
    "mul": [([(3,), (3,)], {}), ([(1,), (2, 3)], {}), ([(), ()], {})],
    "concat": [([(2,), (3,)], {}), ([(2, 3), (4, 3)], {"axis": 0}),
               ([(2, 3), (2, 1), (2, 2)], {"axis": -1}), ([(3,)], {})],
    "flatten": [([(2, 3)], {}), ([()], {})],
    "reshape": [([(6,)], {"shape": [2, 3]}), ([(2, 3)], {"shape": [-1]}),
                ([(2, 6)], {"shape": [3, -1]})],
    "dropout": [([(5,)], {"rate": 0.5})],
    "softmax": [([(4,)], {}), ([(3, 4)], {"axis": 0})],
    "identity": [([(3,)], {})],
    "relu": [([(5,)], {})], "elu": [([(5,)], {}), ([(5,)], {"alpha": 0.3})],
    "softplus": [([(5,)], {})], "sigmoid": [([(5,)], {})], "tanh": [([(5,)], {})],
    "leaky_relu": [([(5,)], {}), ([(5,)], {"alpha": 0.2})],
    "mse": [([(3,), (3,)], {}), ([(3,), (3,)], {"reduction": "sum"}), ([(), ()], {})],
    "softmax_cross_entropy": [([(4,), ()], {}), ([(4,), ()], {"reduction": "sum"})],
    "binary_cross_entropy": [([(3,), (3,)], {}), ([(), ()], {"reduction": "sum"})],
    # the layers of graphnet.builtin.layers (tests/test_layers.py checks their values)
    "conv2d": [([(2, 5, 5)], {"filters": 3, "kernel_size": 3}),
               ([(2, 6, 5)], {"filters": 2, "kernel_size": 2, "stride": 2, "padding": 1}),
               ([(1, 7, 7)], {"filters": 2, "kernel_size": 3, "stride": 2, "padding": 2,
                              "use_bias": False}),
               ([(3, 4, 4)], {"filters": 2, "kernel_size": 1})],
    "max_pool2d": [([(2, 4, 4)], {}), ([(2, 5, 5)], {"pool_size": 3, "stride": 1}),
                   ([(1, 5, 6)], {"pool_size": 2, "stride": 3})],
    "avg_pool2d": [([(2, 4, 4)], {}), ([(2, 5, 5)], {"pool_size": 3, "stride": 1}),
                   ([(1, 5, 6)], {"pool_size": 2, "stride": 3})],
    "global_avg_pool2d": [([(3, 4, 5)], {})],
    "batch_norm": [([(4,)], {}), ([(3, 4, 4)], {"momentum": 0.5})],
    "embedding": [([(5,)], {"vocab": 4, "units": 3}), ([()], {"vocab": 3, "units": 2})],
    "normalize": [([(4,)], {}), ([(2, 3, 3)], {"eps": 0.1})],
}
PARAMS = [pytest.param(name, shapes, attrs, id=f"{name}-{i}")
          for name, cases in CASES.items() for i, (shapes, attrs) in enumerate(cases)]


def builtin_ops():
    return sorted(e.name for e in plugins.entries("op")
                  if e.plugin.startswith("graphnet.builtin") and e.name != "input")


def test_every_builtin_op_has_a_gradient_case():
    assert sorted(CASES) == builtin_ops()


@pytest.mark.parametrize("name, shapes, attrs", PARAMS)
def test_gradcheck_alone(name, shapes, attrs):
    report = check_op(name, shapes, attrs)
    assert report.ok and report.max_error < 1e-6, str(report)
    assert report.checked > 0


@pytest.mark.parametrize("name", ["relu", "elu", "softplus", "sigmoid", "tanh", "leaky_relu"])
def test_check_activation(name):
    assert check_activation(name, shape=(2, 3)).max_error < 1e-6


def test_dropout_gradcheck_while_training():
    report = check_op("dropout", [(6,)], {"rate": 0.4}, training=True)
    assert report.ok, str(report)


def test_soft_label_cross_entropy_gradients():
    """softmax_cross_entropy also takes target probabilities, with their gradient."""
    g = gn.Graph()
    z, p = g.input("z", (4,)), g.input("p", (4,))
    g.add("softmax_cross_entropy", z, p, name="loss")
    model = gn.Model(g, dtype="float64")
    rng = np.random.default_rng(1)
    feeds = {"z": rng.normal(size=(3, 4)), "p": rng.dirichlet(np.ones(4), size=3)}
    report = gn.gradcheck(model, feeds, inputs=True)
    assert report.ok and set(report.errors) == {"z", "p"}, str(report)


# --- values -------------------------------------------------------------------------
def run(op, arrays, attrs=None, dtypes=None, model_dtype="float64", training=False):
    """Run one node on arrays with a batch axis; return the output."""
    g = gn.Graph()
    names = [g.input(f"in{i}", np.shape(a)[1:], dtype=(dtypes or {}).get(i, "float32"))
             for i, a in enumerate(arrays)]
    out = g.add(op, *names, name="node", **(attrs or {}))
    model = gn.Model(g, dtype=model_dtype)
    return model.forward({f"in{i}": a for i, a in enumerate(arrays)}, outputs=[out],
                         training=training)[out]


X = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])


@pytest.mark.parametrize("name, expected", [
    ("relu", np.maximum(X, 0)),
    ("elu", np.where(X >= 0, X, np.exp(X) - 1)),
    ("softplus", np.log1p(np.exp(X))),
    ("sigmoid", 1 / (1 + np.exp(-X))),
    ("tanh", np.tanh(X)),
    ("leaky_relu", np.where(X >= 0, X, 0.01 * X)),
    ("identity", X),
    ("softmax", np.exp(X) / np.exp(X).sum()),
])
def test_activation_values(name, expected):
    np.testing.assert_allclose(run(name, [X]), expected, rtol=1e-12, atol=1e-15)


def test_activation_attrs():
    np.testing.assert_allclose(run("elu", [X], {"alpha": 2.0}),
                               np.where(X >= 0, X, 2 * (np.exp(X) - 1)), rtol=1e-12)
    np.testing.assert_allclose(run("leaky_relu", [X], {"alpha": 0.1}),
                               np.where(X >= 0, X, 0.1 * X), rtol=1e-12)


def test_activation_attr_kinds_come_from_defaults_or_from_gn_attr():
    power = gn.Activation("test_power", fn=lambda x, k=2, scale=1.0: scale * x ** k,
                          derivative=lambda x, y, k=2, scale=1.0: scale * k * x ** (k - 1),
                          attrs={"k": 2, "scale": gn.Attr(1.0, "float", min=0.0)})
    name = plugins.register(power)
    try:
        assert run("test_power", [X], {"k": 3, "scale": 2.0}) == pytest.approx(2 * X ** 3)
        for attrs, message in [({"k": "abc"}, "attr 'k' must be an integer, got 'abc'"),
                               ({"k": 2.5}, "attr 'k' must be an integer"),
                               ({"scale": -1.0}, "attr 'scale' must be >= 0.0")]:
            g = gn.Graph("bad")
            with pytest.raises(gn.GraphError, match=message):
                g.add("test_power", g.input("x", shape=(3,)), name="p", **attrs)
                gn.Model(g)
    finally:
        plugins.unregister(name)


def test_merge_values_keep_input_order_and_broadcast_per_sample():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(2, 4, 3))
    np.testing.assert_allclose(run("sub", [a, b]), a[:, None, :] - b)
    np.testing.assert_allclose(run("sub", [b, a]), b - a[:, None, :])
    s = rng.normal(size=(2,))  # a scalar per sample scales its own sample only
    np.testing.assert_allclose(run("mul", [s, a]), s[:, None] * a)
    np.testing.assert_allclose(run("add", [a, s]), a + s[:, None])


def test_concat_values_along_axis():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 2, 3)), rng.normal(size=(2, 1, 3))
    np.testing.assert_array_equal(run("concat", [a, b], {"axis": 0}), np.concatenate([a, b], 1))
    c = rng.normal(size=(2, 2, 1))
    np.testing.assert_array_equal(run("concat", [a, c]), np.concatenate([a, c], 2))


def test_shape_ops_values():
    x = np.arange(12.0).reshape(2, 6)
    np.testing.assert_array_equal(run("reshape", [x], {"shape": [3, -1]}), x.reshape(2, 3, 2))
    np.testing.assert_array_equal(run("flatten", [x.reshape(2, 2, 3)]), x)
    np.testing.assert_array_equal(run("flatten", [np.zeros((0, 2, 3))]), np.zeros((0, 6)))


def test_dense_values():
    g = gn.Graph()
    g.output(g.add("dense", g.input("x", (3,)), units=2, name="fc"))
    model = gn.Model(g, dtype="float64")
    x = np.random.default_rng(0).normal(size=(4, 3))
    w, b = model.params["fc.weight"], model.params["fc.bias"]
    assert w.shape == (3, 2) and b.shape == (2,)
    np.testing.assert_allclose(model.predict({"x": x})["fc"], x @ w + b)


def test_dropout_scales_kept_units_and_is_identity_when_not_training():
    x = np.ones((200, 50))
    y = run("dropout", [x], {"rate": 0.25}, training=True)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_array_equal(run("dropout", [x], {"rate": 0.25}), x)


def test_loss_values_and_reductions():
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    assert run("mse", [p, t]) == pytest.approx(np.mean((p - t) ** 2), rel=1e-12)
    assert run("mse", [p, t], {"reduction": "sum"}) == pytest.approx(np.sum((p - t) ** 2))
    labels = np.array([0, 2, 1, 2])
    logp = p - np.log(np.exp(p).sum(axis=1, keepdims=True))
    ce = -logp[np.arange(4), labels]
    assert run("softmax_cross_entropy", [p, labels], dtypes={1: "int64"}) == pytest.approx(
        ce.mean(), rel=1e-12)
    assert run("softmax_cross_entropy", [p, labels], {"reduction": "sum"},
               dtypes={1: "int64"}) == pytest.approx(ce.sum(), rel=1e-12)
    onehot = np.eye(3)[labels]
    assert run("softmax_cross_entropy", [p, onehot]) == pytest.approx(ce.mean(), rel=1e-12)
    y = rng.integers(0, 2, size=(4, 3)).astype(float)
    s = 1 / (1 + np.exp(-p))
    bce = -(y * np.log(s) + (1 - y) * np.log(1 - s))
    assert run("binary_cross_entropy", [p, y]) == pytest.approx(bce.sum() / 4, rel=1e-12)
    assert run("binary_cross_entropy", [p, y], {"reduction": "sum"}) == pytest.approx(
        bce.sum(), rel=1e-12)
    assert run("mse", [p, t]).shape == ()


# --- stability and dtypes --------------------------------------------------------------
BIG = np.array([[-1000.0, -100.0, -1.0, 0.0, 1.0, 100.0, 1000.0]], dtype=np.float32)


@pytest.mark.parametrize("name", ["softplus", "sigmoid", "elu", "relu", "tanh", "leaky_relu"])
def test_activations_finite_at_1000_in_float32(name):
    g = gn.Graph()
    x = g.input("x", BIG.shape[1:])
    h = g.add(name, x, name="act")
    g.add("mse", h, g.input("t", BIG.shape[1:]), name="loss")
    model = gn.Model(g, dtype="float32")
    outs = model.forward({"x": BIG, "t": np.zeros_like(BIG)}, outputs=["act", "loss"])
    grads = model.backward(inputs=True)
    assert outs["act"].dtype == np.float32 and np.all(np.isfinite(outs["act"]))
    assert np.isfinite(outs["loss"])
    assert grads["x"].dtype == np.float32 and np.all(np.isfinite(grads["x"]))
    act = plugins.get("activation", name)
    d = act.derivative(BIG, act.fn(BIG))
    assert d.dtype == np.float32 and np.all(np.isfinite(d))


def test_activation_limits_at_1000():
    x = np.array([-1000.0, 1000.0], dtype=np.float32)
    get = lambda n: plugins.get("activation", n)  # noqa: E731
    np.testing.assert_array_equal(get("softplus").fn(x), [0, 1000])
    np.testing.assert_array_equal(get("sigmoid").fn(x), [0, 1])
    np.testing.assert_array_equal(get("elu").fn(x), [-1, 1000])
    np.testing.assert_array_equal(get("softplus").derivative(x, get("softplus").fn(x)), [0, 1])
    np.testing.assert_array_equal(get("elu").derivative(x, get("elu").fn(x)), [0, 1])


def test_cross_entropies_finite_at_1000_in_float32():
    g = gn.Graph()
    z, y = g.input("z", (3,)), g.input("y", (), dtype="int64")
    b = g.input("b", (3,))
    g.add("softmax_cross_entropy", z, y, name="ce")
    g.add("binary_cross_entropy", z, b, name="bce")
    model = gn.Model(g, dtype="float32")
    logits = np.array([[1000, -1000, 0], [-1000, 1000, 1000], [0, 0, -1000]], np.float32)
    feeds = {"z": logits, "y": np.array([1, 0, 2]), "b": np.array(
        [[0, 1, 1], [1, 0, 1], [0, 1, 1]], np.float32)}
    outs = model.forward(feeds)
    grads = model.backward(inputs=True)
    for k, v in outs.items():
        assert v.dtype == np.float32 and np.isfinite(v), k
    for k in ("z", "b"):
        assert grads[k].dtype == np.float32 and np.all(np.isfinite(grads[k])), k
    # per sample: log-sum-exp minus the labelled logit, 2000, 2000 + log 2, 1000 + log 2
    assert outs["ce"] == pytest.approx((5000 + 2 * np.log(2)) / 3, rel=1e-6)
    np.testing.assert_allclose(model.backward(loss="ce", inputs=True)["z"].sum(axis=1), 0, atol=1e-6)


def test_float32_model_stays_float32():
    """Every output and every gradient of a float32 model built from every op is float32."""
    g = gn.Graph()
    x, x2 = g.input("x", (2, 3)), g.input("x2", ())
    y, t = g.input("y", (), dtype="int64"), g.input("t", (4,))
    h = g.add("flatten", x)
    h = g.add("dense", h, units=4)
    h = g.add("dropout", h, rate=0.3)
    acts = [g.add(a, h) for a in ("relu", "elu", "softplus", "sigmoid", "tanh", "leaky_relu")]
    h = acts[0]
    for a in acts[1:]:
        h = g.add("add", h, a)
    h = g.add("mul", h, x2)
    h = g.add("sub", h, g.add("softmax", h))
    h = g.add("concat", h, g.add("identity", h))
    h = g.add("reshape", h, shape=[2, 4])
    h = g.add("dense", g.add("reshape", h, shape=[-1]), units=4)
    g.add("mse", h, t, name="mse")
    g.add("binary_cross_entropy", h, t, name="bce")
    g.add("softmax_cross_entropy", h, y, name="ce")
    g.output(h)
    model = gn.Model(g, dtype="float32")
    rng = np.random.default_rng(0)
    feeds = {"x": rng.normal(size=(5, 2, 3)), "x2": rng.normal(size=5),  # float64 feeds
             "y": rng.integers(0, 4, size=5), "t": rng.random((5, 4))}
    outs = model.forward(feeds, training=True)
    grads = model.backward(inputs=True)
    assert {k: v.dtype for k, v in outs.items()} == {k: np.float32 for k in outs}
    assert {k: v.dtype for k, v in grads.items()} == {k: np.float32 for k in grads}
    assert set(grads) == set(model.params) | {"x", "x2", "t"}
    assert all(p.dtype == np.float32 for p in model.params.values())


# --- property tests: broadcasting, concat and reshape over many shapes ------------------
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def broadcast_pair(draw):
    """Two per-sample shapes that broadcast by numpy's rules (ranks 0 to 3)."""
    out = draw(st.lists(st.integers(1, 3), min_size=0, max_size=3))
    shapes = []
    for _ in range(2):
        rank = draw(st.integers(0, len(out)))
        tail = out[len(out) - rank:]
        shapes.append(tuple(d if draw(st.booleans()) else 1 for d in tail))
    return shapes


@SETTINGS
@given(shapes=broadcast_pair(), op=st.sampled_from(["add", "sub", "mul"]))
def test_merges_broadcast_per_sample(shapes, op):
    sa, sb = shapes
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, *sa)), rng.normal(size=(2, *sb))
    out = run(op, [a, b])
    rank = max(len(sa), len(sb))
    pad = lambda x, s: x.reshape((2,) + (1,) * (rank - len(s)) + s)  # noqa: E731
    expected = {"add": np.add, "sub": np.subtract, "mul": np.multiply}[op](pad(a, sa), pad(b, sb))
    np.testing.assert_allclose(out, expected)
    assert check_op(op, [sa, sb], batch=2).max_error < 1e-6


@SETTINGS
@given(base=st.lists(st.integers(1, 3), min_size=1, max_size=3), data=st.data())
def test_concat_any_axis(base, data):
    axis = data.draw(st.integers(-len(base), len(base) - 1))
    k = axis % len(base)
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    shapes = [tuple(base[:k] + [s] + base[k + 1:]) for s in sizes]
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(2, *s)) for s in shapes]
    np.testing.assert_array_equal(run("concat", arrays, {"axis": axis}),
                                  np.concatenate(arrays, axis=k + 1))
    assert check_op("concat", shapes, {"axis": axis}, batch=2).max_error < 1e-6


@SETTINGS
@given(dims=st.lists(st.integers(1, 4), min_size=1, max_size=3), data=st.data())
def test_reshape_with_minus_one(dims, data):
    size = int(np.prod(dims))
    target = list(data.draw(st.permutations(dims)))
    target[data.draw(st.integers(0, len(target) - 1))] = -1
    x = np.arange(2.0 * size).reshape(2, *dims)
    np.testing.assert_array_equal(run("reshape", [x], {"shape": target}),
                                  x.reshape(2, *target))
    assert check_op("reshape", [tuple(dims)], {"shape": target}, batch=2).max_error < 1e-6
