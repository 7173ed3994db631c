"""The training step's fast paths give the numbers of the plain ones.

A dense node and the activation reading it run as one plan step; Adam updates
m and v as the rows of one array; softmax cross-entropy takes row maxima and
sums its own way. Each is compared with the plain path, bit for bit where the
arithmetic is the same, and through finite differences.
"""

import numpy as np
import pytest

import graphnet as gn
from graphnet.builtin.ops import DenseActivation
from graphnet.builtin.losses import row_max, row_sum
from graphnet.builtin.optimizers import _rows
from graphnet.ops import Context
from graphnet.render import output_gradients, output_stats
from graphnet.scheduler import Plan


def mlp(act="relu", hidden=(6, 5), features=(4,), loss="ce", name="fused"):
    g = gn.Graph(name)
    h = g.input("x", shape=features)
    y = (g.input("y", shape=(), dtype="int64") if loss == "ce"
         else g.input("y", shape=features[:-1] + (3,)))
    for i, units in enumerate(hidden):
        h = g.add(act, g.add("dense", h, units=units, name=f"fc{i}"), name=f"act{i}")
    out = g.add("dense", h, units=3, name="out")
    if loss == "ce":
        g.add("softmax_cross_entropy", out, y, name="loss")
    else:
        g.add("mse", out, y, name="loss")
    g.output(out)
    return g


def feeds_for(model, n=7, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + model.nodes["x"].shape).astype(model.dtype)
    if model.nodes["y"].dtype == "int64":
        return {"x": x, "y": rng.integers(0, 3, size=n)}
    return {"x": x, "y": rng.normal(size=(n,) + model.nodes["y"].shape).astype(model.dtype)}


def two_steps(model, feeds):
    """Outputs and gradients (copies) of two forward/backward passes."""
    got = []
    for _ in range(2):
        outs = model.forward(feeds, training=True)
        grads = {k: np.array(v) for k, v in model.backward(inputs=True).items()}
        got.append((outs, grads))
    return got


def with_plan(graph, fuse, generated=True, dtype="float32"):
    model = gn.Model(graph, seed=1, dtype=dtype)
    key = model._default_outputs
    model._plans[key] = Plan(model.program, list(key), generated=generated, fuse=fuse)
    return model


CASES = [("relu", (4,)), ("tanh", (4,)), ("relu", (2, 4))]   # (2, 4): dense over the last axis


@pytest.mark.parametrize("generated", [True, False])
@pytest.mark.parametrize("act, features", CASES)
def test_fused_dense_activation_equals_the_two_nodes_bit_for_bit(act, features, generated):
    graph = mlp(act, features=features, loss="ce" if len(features) == 1 else "mse")
    fused, plain = with_plan(graph, True, generated), with_plan(graph, False, generated)
    feeds = feeds_for(fused)
    got, want = two_steps(fused, feeds), two_steps(plain, feeds)
    plan = fused._last[0]
    assert len(plan.fused) == 2 and len(plan.steps) == len(plain._last[0].steps) - 2
    assert all(isinstance(step[0].__self__, DenseActivation) for k, step in
               enumerate(plan.steps) if k in plan.fused)
    for (outs, grads), (outs_ref, grads_ref) in zip(got, want):
        assert outs.keys() == outs_ref.keys() and grads.keys() == grads_ref.keys()
        for k in outs:
            np.testing.assert_array_equal(outs[k], outs_ref[k])
        for k in grads:
            np.testing.assert_array_equal(grads[k], grads_ref[k])
    # the dense's own value and gradient are still in its slots (overlays read them)
    _, vals = fused._last
    _, vals_ref = plain._last
    np.testing.assert_array_equal(vals[plan.slot["fc0"]], vals_ref[plain._last[0].slot["fc0"]])
    stats = output_stats(fused)
    assert stats.keys() == output_stats(plain).keys() and "fc0" in stats
    grads_at = output_gradients(fused)
    np.testing.assert_array_equal(grads_at["fc0"], output_gradients(plain)["fc0"])


def test_gradcheck_goes_through_the_fused_step(monkeypatch):
    graph = mlp("tanh")
    model = gn.Model(graph, seed=0)
    assert len(model.plan(model._default_outputs).fused) == 2
    feeds = feeds_for(model)
    assert gn.gradcheck(model, feeds, inputs=True).ok
    real = DenseActivation.backward

    def wrong(self, ctx, dy):           # a broken fused backward must be caught
        dx, dw, db = real(self, ctx, dy)
        return dx, dw * 1.01, db

    monkeypatch.setattr(DenseActivation, "backward", wrong)
    assert not gn.gradcheck(gn.Model(graph, seed=0), feeds).ok


def test_no_fusion_when_the_dense_is_read_twice_or_is_an_output():
    g = gn.Graph("shared")
    x, y = g.input("x", shape=(4,)), g.input("y", shape=(), dtype="int64")
    d = g.add("dense", x, units=3, name="fc")
    a = g.add("relu", d, name="act")
    s = g.add("add", a, d)                      # fc read by act and by the add
    f2 = g.add("dense", s, units=3, name="fc2")
    e = g.add("tanh", f2)                       # fc2 is an output
    g.add("softmax_cross_entropy", g.add("add", e, g.add("leaky_relu", g.add(
        "dense", s, units=3, name="fc3"))), y, name="loss")     # leaky_relu: no *_into
    g.output(f2)
    model = gn.Model(g, seed=0)
    plan = model.plan(model._default_outputs)
    assert plan.fused == {}
    assert gn.gradcheck(model, feeds_for(model)).ok


def test_held_outputs_and_gradients_are_not_overwritten_by_the_next_step():
    model = gn.Model(mlp("relu"), seed=0)
    opt = gn.optimizer("adam", lr=0.1)
    feeds, other = feeds_for(model, seed=0), feeds_for(model, seed=1)
    outs = model.forward(feeds, training=True, outputs=["act0", "out", "loss"])
    act0 = outs["act0"]
    kept_act0 = act0.copy()
    grads = model.backward()
    kept = {k: v.copy() for k, v in grads.items()}
    opt.step(model.params, grads)
    for _ in range(2):
        model.forward(other, training=True, outputs=["act0", "out", "loss"])
        opt.step(model.params, model.backward())
    np.testing.assert_array_equal(act0, kept_act0)
    for k in kept:
        np.testing.assert_array_equal(grads[k], kept[k])
    # what the caller let go of is reused: the same flat array comes back
    flat = id(model.backward().flat)
    assert id(model.backward().flat) == flat


def test_a_failure_inside_a_fused_step_names_both_nodes():
    from graphnet.builtin.activations import relu_into
    model = gn.Model(mlp("relu"), seed=0)
    feeds = feeds_for(model)
    model.forward(feeds)
    plan = model.plan(model._default_outputs)
    k = next(iter(plan.fused))
    act = plan.fused[k][1].op.activation

    def broken(x, out):
        raise ValueError("boom")

    act.forward_into = broken
    try:
        with pytest.raises(gn.PluginError, match="'fc0' with 'act0'.*boom"):
            model.forward(feeds)
    finally:
        act.forward_into = relu_into


def rows_of(c, n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, c)).astype(np.float32) * 10


@pytest.mark.parametrize("c, n", [(3, 64), (10, 64), (10, 7), (100, 32), (1, 5)])
def test_row_max_and_row_sum_match_numpy(c, n):
    x = rows_of(c, n)
    ctx = Context("loss", {})
    np.testing.assert_array_equal(row_max(ctx, x), x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(row_sum(ctx, x), x.sum(axis=1, keepdims=True), rtol=1e-5,
                               atol=1e-4)
    x[n // 2, c // 2] = np.nan                    # a NaN logit stays a NaN
    assert np.isnan(row_max(ctx, x)[n // 2, 0])
    assert not np.isnan(np.delete(row_max(ctx, x), n // 2)).any()


@pytest.mark.parametrize("c", [3, 100])
def test_softmax_cross_entropy_gradcheck_both_row_max_paths(c):
    g = gn.Graph("ce")
    x, y = g.input("x", shape=(c,)), g.input("y", shape=(), dtype="int64")
    g.add("softmax_cross_entropy", g.add("dense", x, units=c, name="fc"), y, name="loss")
    model = gn.Model(g, seed=0)
    rng = np.random.default_rng(0)
    feeds = {"x": rng.normal(size=(2 * c + 1, c)), "y": rng.integers(0, c, size=2 * c + 1)}
    assert gn.gradcheck(model, feeds, inputs=True).ok


def test_adam_on_rows_of_one_array_equals_adam_on_separate_arrays_bit_for_bit():
    rng = np.random.default_rng(0)
    shape = (5, 3)
    p0 = rng.normal(size=shape).astype(np.float32)
    stacked, apart = gn.optimizer("adam", lr=0.05), gn.optimizer("adam", lr=0.05)
    pa, pb = {"w": p0.copy()}, {"w": p0.copy()}
    stacked.step(pa, {"w": rng.normal(size=shape).astype(np.float32)})
    apart.load_state_dict(stacked.state_dict())       # loaded: m and v made apart
    pb["w"][...] = pa["w"]
    assert _rows(stacked.state["w"]["m"], stacked.state["w"]["v"]) is not None
    assert _rows(apart.state["w"]["m"], apart.state["w"]["v"]) is None
    for _ in range(3):
        g = rng.normal(size=shape).astype(np.float32)
        stacked.step(pa, {"w": g})
        apart.step(pb, {"w": g.copy()})
    np.testing.assert_array_equal(pa["w"], pb["w"])
    for key in ("m", "v"):
        np.testing.assert_array_equal(stacked.state["w"][key], apart.state["w"][key])


def test_rows_finds_the_same_slice_of_both_rows_only():
    mv = np.zeros((2, 10), np.float32)
    assert _rows(mv[0], mv[1]) is mv
    part = _rows(mv[0][2:6], mv[1][2:6])
    part += 1
    assert mv[0][2:6].all() and mv[1][2:6].all() and not mv[:, :2].any() and not mv[:, 6:].any()
    assert _rows(mv[1], mv[0]) is None                   # swapped rows
    assert _rows(mv[0][2:6], mv[1][3:7]) is None         # different slices
    assert _rows(mv[0].copy(), mv[1]) is None


def test_adam_updates_a_scalar_param_in_place():
    opt, p = gn.optimizer("adam", lr=0.1), {"s": np.array(1.0)}
    for _ in range(3):
        opt.step(p, {"s": np.array(2.0)})
    assert opt.state["s"]["m"] > 0 and opt.state["s"]["v"] > 0
    assert float(p["s"]) == pytest.approx(0.7, abs=1e-6)   # three steps of lr against g > 0


def test_dense_products_take_np_dot_where_it_fits_and_np_matmul_elsewhere():
    """product() is np.dot for 2-d arrays of one dtype into a C-contiguous out, and
    falls back to np.matmul (which casts) for an out np.dot refuses: same values."""
    from graphnet.builtin.ops import product
    rng = np.random.default_rng(0)
    a = rng.random((5, 3), dtype=np.float32)
    b = rng.random((3, 4), dtype=np.float32)
    want = a.astype(np.float64) @ b.astype(np.float64)
    for out in (None, np.empty((5, 4), np.float32), np.empty((5, 4), np.float64),
                np.empty((4, 5), np.float32).T):
        got = product(a, b, out)
        if out is not None:
            assert got is out
        np.testing.assert_allclose(got, want, rtol=1e-6)
    ones = np.ones(5, np.float32)
    np.testing.assert_allclose(product(ones, rng.random((5, 2), dtype=np.float32)).shape, (2,))
    with pytest.raises(ValueError):
        product(a, a)
