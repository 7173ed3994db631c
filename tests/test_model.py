"""Model: params, backward, predict,
summary, reproducibility, and the lecture's linear collapse."""

import re

import numpy as np
import pytest

import graphnet as gn


def classifier(hidden=16):
    g = gn.Graph("clf")
    x = g.input("x", (4,))
    y = g.input("y", (), dtype="int64")
    h = g.add("relu", g.add("dense", x, units=hidden, name="fc1"))
    out = g.add("dense", h, units=3, name="out")
    g.add("softmax_cross_entropy", out, y, name="loss")
    g.output(out)
    return g


RNG = np.random.default_rng(0)
X = RNG.normal(size=(6, 4)).astype(np.float32)
Y = np.array([0, 1, 2, 0, 1, 2])


def test_params_shapes_keys_and_dtype():
    model = gn.Model(classifier(), dtype="float32")
    assert {k: v.shape for k, v in model.params.items()} == {
        "fc1.weight": (4, 16), "fc1.bias": (16,), "out.weight": (16, 3), "out.bias": (3,)}
    assert all(v.dtype == np.float32 for v in model.params.values())
    assert model.param_count() == 4 * 16 + 16 + 16 * 3 + 3
    assert not model.params["fc1.bias"].any()        # biases start at zero
    limit = np.sqrt(6 / (4 + 16))                     # glorot_uniform
    assert np.abs(model.params["fc1.weight"]).max() <= limit
    assert model.inputs == ["x", "y"] and model.outputs == ["out"] and model.losses == ["loss"]


@pytest.mark.parametrize("init, check", [
    ("zeros", lambda w: not w.any()),
    ("ones", lambda w: np.all(w == 1)),
    ({"name": "normal", "std": 0.001}, lambda w: 0 < np.abs(w).max() < 0.01),
    ({"name": "uniform", "limit": 0.2}, lambda w: np.abs(w).max() <= 0.2 < 2 * np.abs(w).max()),
    ("he_uniform", lambda w: np.abs(w).max() <= np.sqrt(6 / 400)),
    ("he_normal", lambda w: 0.5 < w.std() / np.sqrt(2 / 400) < 1.5),
    ("glorot_normal", lambda w: 0.5 < w.std() / np.sqrt(2 / 500) < 1.5),
])
def test_initializers(init, check):
    g = gn.Graph()
    g.add("dense", g.input("x", (400,)), units=100, init=init, name="fc")
    w = gn.Model(g).params["fc.weight"]
    assert check(w)


def test_same_seed_same_params_different_seed_different():
    a, b, c = (gn.Model(classifier(), seed=s) for s in (7, 7, 8))
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k])
    assert not np.array_equal(a.params["fc1.weight"], c.params["fc1.weight"])


def test_same_seed_same_dropout_masks():
    g = gn.Graph()
    g.output(g.add("dropout", g.input("x", (50,)), rate=0.5, name="d"))
    models = [gn.Model(g, seed=s) for s in (1, 1, 2)]
    runs = [[m.forward({"x": np.ones((4, 50))}, training=True)["d"] for _ in range(2)]
            for m in models]
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0], runs[0][1])   # a new mask every step
    assert not np.array_equal(runs[0][0], runs[2][0])


def test_forward_returns_outputs_and_losses():
    model = gn.Model(classifier())
    outs = model.forward({"x": X, "y": Y})
    assert sorted(outs) == ["loss", "out"]
    assert outs["out"].shape == (6, 3) and outs["loss"].shape == ()
    assert sorted(model.forward({"x": X}, outputs="fc1")) == ["fc1"]


def test_predict_needs_no_targets():
    model = gn.Model(classifier())
    pred = model.predict({"x": X})
    assert list(pred) == ["out"] and pred["out"].shape == (6, 3)
    np.testing.assert_allclose(pred["out"], model.forward({"x": X, "y": Y})["out"])
    batched = model.predict({"x": X}, batch_size=4)
    np.testing.assert_allclose(batched["out"], pred["out"], rtol=1e-6)


def test_backward_matches_a_hand_written_mlp():
    """The engine's gradients equal the textbook formulas for a 2-layer relu MLP."""
    model = gn.Model(classifier(), dtype="float64", seed=3)
    x = X.astype(np.float64)
    p = model.params
    h_pre = x @ p["fc1.weight"] + p["fc1.bias"]
    h = np.maximum(h_pre, 0)
    z = h @ p["out.weight"] + p["out.bias"]
    e = np.exp(z - z.max(1, keepdims=True))
    prob = e / e.sum(1, keepdims=True)
    loss = -np.log(prob[np.arange(6), Y]).mean()
    dz = prob.copy()
    dz[np.arange(6), Y] -= 1
    dz /= 6
    dh = dz @ p["out.weight"].T * (h_pre > 0)
    expected = {"out.weight": h.T @ dz, "out.bias": dz.sum(0),
                "fc1.weight": x.T @ dh, "fc1.bias": dh.sum(0)}
    assert model.forward({"x": x, "y": Y})["loss"] == pytest.approx(loss, rel=1e-12)
    grads = model.backward()
    for k, v in expected.items():
        np.testing.assert_allclose(grads[k], v, rtol=1e-10, atol=1e-14)


def test_linear_collapse():
    """Two dense layers without an activation are one dense layer:
    (x W1 + b1) W2 + b2 = x (W1 W2) + (b1 W2 + b2)."""
    g = gn.Graph("stacked")
    x = g.input("x", (5,))
    g.output(g.add("dense", g.add("dense", x, units=7, name="l1", bias_init="normal"),
                   units=3, name="l2", bias_init="normal"))
    stacked = gn.Model(g, seed=1, dtype="float64")
    p = stacked.params
    one = gn.Graph("collapsed")
    one.output(one.add("dense", one.input("x", (5,)), units=3, name="l"))
    collapsed = gn.Model(one, dtype="float64")
    collapsed.params["l.weight"][...] = p["l1.weight"] @ p["l2.weight"]
    collapsed.params["l.bias"][...] = p["l1.bias"] @ p["l2.weight"] + p["l2.bias"]
    assert p["l1.bias"].any() and p["l2.bias"].any()
    xs = np.random.default_rng(2).normal(size=(10, 5))
    np.testing.assert_allclose(stacked.predict({"x": xs})["l2"],
                               collapsed.predict({"x": xs})["l"], rtol=1e-12, atol=1e-13)


def test_backward_twice_and_after_another_forward():
    model = gn.Model(classifier(), dtype="float64")
    model.forward({"x": X, "y": Y})
    g1 = model.backward()
    g1_copy = {k: v.copy() for k, v in g1.items()}
    assert all(np.array_equal(g1[k], v) for k, v in model.backward().items())
    model.forward({"x": X[:3], "y": Y[:3]})
    g2 = model.backward()
    assert not np.allclose(g2["out.bias"], g1["out.bias"])
    assert all(np.array_equal(g1[k], g1_copy[k]) for k in g1)   # earlier results untouched


def test_mutating_returned_gradients_changes_nothing_else():
    g = gn.Graph()
    a, b = g.input("a", (3,)), g.input("b", (3,))
    s = g.add("add", g.add("dense", a, units=3, name="fa"), g.add("dense", b, units=3, name="fb"))
    g.add("mse", s, g.input("t", (3,)), name="loss")
    model = gn.Model(g, dtype="float64")
    feeds = {"a": X[:, :3], "b": X[:, 1:], "t": X[:, :3]}
    model.forward(feeds)
    grads = model.backward(inputs=True)
    ref = {k: v.copy() for k, v in grads.items()}
    grads["fa.bias"] *= 0
    grads["a"] += 1
    for k in ("fb.bias", "b", "fa.weight"):
        np.testing.assert_array_equal(grads[k], ref[k])
    again = model.backward(inputs=True)
    for k in ref:
        np.testing.assert_array_equal(again[k], ref[k])


def test_summary_table():
    model = gn.Model(classifier(), dtype="float32")
    text = model.summary()
    rows = {}
    for line in text.splitlines():
        parts = re.split(r"\s{2,}", line.strip())
        if len(parts) == 4 and parts[0] in model.nodes:
            rows[parts[0]] = parts[1:]
    assert list(rows) == list(model.nodes)
    assert rows["fc1"] == ["dense", "(N, 16)", "80"]
    assert rows["relu_1"] == ["relu", "(N, 16)", "0"]
    assert rows["out"] == ["dense", "(N, 3)", "51"]
    assert rows["loss"] == ["softmax_cross_entropy", "scalar", "0"]
    assert rows["y"] == ["input", "(N)", "0"]
    total = sum(int(r[2].replace(",", "")) for r in rows.values())
    assert total == model.param_count() == 131
    assert f"Total params: {total:,}" in text and "float32" in text and "clf" in text
    big = gn.Model(classifier(hidden=1000))
    assert "Total params: 8,003" in big.summary() and "4,000" not in big.summary()
    assert "5,000" in big.summary()


def test_model_repr():
    assert "131 params" in repr(gn.Model(classifier()))


def test_replacing_model_rng_is_honoured_by_dropout():
    g = gn.Graph()
    g.output(g.add("dropout", g.input("x", (50,)), rate=0.5, name="d"))
    a, b = gn.Model(g, seed=1), gn.Model(g, seed=2)
    ones = {"x": np.ones((4, 50))}
    a.forward(ones, training=True)           # compile a's plan with its first rng
    a.rng, b.rng = np.random.default_rng(9), np.random.default_rng(9)
    np.testing.assert_array_equal(a.forward(ones, training=True)["d"],
                                  b.forward(ones, training=True)["d"])


def test_predict_in_batches_edge_cases():
    model = gn.Model(classifier())
    assert model.predict({"x": X[:0]}, batch_size=4)["out"].shape == (0, 3)
    np.testing.assert_allclose(model.predict({"x": X}, batch_size=np.int64(1))["out"],
                               model.predict({"x": X})["out"], rtol=1e-6)
    for bad in (0, 2.5, "4", True):
        with pytest.raises(gn.GraphnetError, match="batch_size"):
            model.predict({"x": X}, batch_size=bad)
