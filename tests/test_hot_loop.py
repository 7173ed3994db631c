"""The training step is a flat plan: no NetworkX call and no registry lookup.

Not a timing test: every NetworkX function, the DiGraph class and the plugin
registry are made to raise while steps run, so any use of them fails loudly.
"""

import networkx as nx
import numpy as np
import pytest

import graphnet as gn
from graphnet.plugins import Registry


class HotLoopCall(AssertionError):
    pass


def boom(what):
    def raiser(*args, **kwargs):
        raise HotLoopCall(f"{what} was called during a training step")
    return raiser


def forbid_graph_and_registry(monkeypatch):
    for name in dir(nx):
        if not name.startswith("_") and callable(getattr(nx, name)):
            monkeypatch.setattr(nx, name, boom(f"networkx.{name}"))
    for cls in (nx.Graph, nx.DiGraph):
        monkeypatch.setattr(cls, "__getattribute__", boom(f"an attribute of a {cls.__name__}"))
    for name in ("get", "tables", "entries", "load"):
        monkeypatch.setattr(Registry, name, boom(f"Registry.{name}"))
    monkeypatch.setattr(gn.plugins, "registry", boom("plugins.registry"))
    monkeypatch.setattr(gn.plugins, "get", boom("plugins.get"))


def residual_model():
    """Dense, two activations, a fan-out into a residual add, softmax cross-entropy."""
    g = gn.Graph("hot")
    x = g.input("x", shape=(5,))
    y = g.input("y", shape=(), dtype="int64")
    h = g.add("tanh", g.add("dense", x, units=8, name="fc1"))
    r = g.add("relu", g.add("dense", h, units=8, name="fc2"))
    h = g.add("add", h, r)                       # h feeds fc2 and the add: gradients summed
    logits = g.add("dense", h, units=3, name="out")
    g.add("softmax_cross_entropy", logits, y, name="loss")
    g.output(logits)
    return gn.Model(g, seed=0)


OPTIMIZERS = sorted(e.name for e in gn.plugins.entries("optimizer"))


@pytest.mark.parametrize("opt_name", OPTIMIZERS)
def test_training_steps_touch_neither_networkx_nor_the_registry(monkeypatch, opt_name):
    model = residual_model()
    opt = gn.optimizer(opt_name)
    rng = np.random.default_rng(0)
    batches = [{"x": rng.normal(size=(n, 5)).astype(np.float32),
                "y": rng.integers(0, 3, size=n)} for n in (4, 4, 3, 4)]

    def step(feeds):
        loss = float(model.forward(feeds, training=True)["loss"])
        opt.step(model.params, model.backward())
        return loss

    step(batches[0])   # the first step compiles the plans (training, then predict)
    model.predict({"x": batches[0]["x"]})
    before = {k: v.copy() for k, v in model.params.items()}
    forbid_graph_and_registry(monkeypatch)
    losses = [step(b) for b in batches[1:]]    # includes a new batch size
    model.predict({"x": batches[1]["x"]})
    monkeypatch.undo()
    assert all(np.isfinite(losses))
    assert all(not np.array_equal(before[k], model.params[k]) for k in before)


def test_the_patches_do_catch_graph_work(monkeypatch):
    """A new plan needs NetworkX: with the patches on it must fail (the test can fail)."""
    model = residual_model()
    forbid_graph_and_registry(monkeypatch)
    with pytest.raises(HotLoopCall):
        model.forward({"x": np.zeros((2, 5), np.float32)}, outputs=["fc1"])
    with pytest.raises(HotLoopCall):
        gn.optimizer("sgd")


# --- the engine reuses its buffers: what it hands out must never change under the caller


def feeds_for(n, seed):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(n, 5)).astype(np.float32), "y": rng.integers(0, 3, size=n)}


def test_held_gradients_are_not_overwritten_by_the_next_backward():
    model = residual_model()
    model.forward(feeds_for(4, 1), training=True)
    first = model.backward()
    kept = {k: v.copy() for k, v in first.items()}
    one_view = model.backward()["fc1.weight"]        # only a view held, not the dict
    one_copy = one_view.copy()
    model.forward(feeds_for(4, 2), training=True)
    second = model.backward()
    assert any(not np.array_equal(kept[k], second[k]) for k in kept)
    for k in kept:
        np.testing.assert_array_equal(first[k], kept[k])
    np.testing.assert_array_equal(one_view, one_copy)


def test_backward_out_refills_the_arrays_it_is_given():
    model = residual_model()
    model.forward(feeds_for(4, 1), training=True)
    expected = {k: v.copy() for k, v in model.backward().items()}
    model.forward(feeds_for(4, 2), training=True)
    previous = model.backward(inputs=True)            # input grads are dropped on reuse
    views = {k: previous[k] for k in model.params}
    model.forward(feeds_for(4, 1), training=True)
    again = model.backward(out=previous)
    assert again is previous and set(again) == set(model.params)
    for k in expected:
        assert again[k] is views[k]                   # the same memory, refilled
        np.testing.assert_array_equal(again[k], expected[k])


def test_backward_out_refuses_arrays_that_are_not_its_own():
    model, other = residual_model(), residual_model()
    model.forward(feeds_for(4, 1), training=True)
    other.forward(feeds_for(4, 1), training=True)
    for bad in ({k: v.copy() for k, v in model.params.items()}, other.backward()):
        with pytest.raises(gn.GraphnetError, match="earlier backward of this same model"):
            model.backward(out=bad)
    grads = model.backward()
    grads["fc1.weight"] = grads["fc1.weight"].copy()  # no longer a view of its flat array
    with pytest.raises(gn.GraphnetError, match="out=None"):
        model.backward(out=grads)


def test_forward_outputs_belong_to_the_caller():
    model = residual_model()
    out1 = model.forward(feeds_for(4, 1), training=True)
    logits = out1["out"].copy()
    model.forward(feeds_for(4, 2), training=True)
    np.testing.assert_array_equal(out1["out"], logits)


def test_fan_out_through_identity_sums_without_writing_into_shared_gradients():
    """identity and add hand back dy itself; summing at fan-out must not write into it."""
    g = gn.Graph("fan")
    x = g.input("x", shape=(3,))
    t = g.input("t", shape=(3,))
    h = g.add("dense", x, units=3, name="fc")
    a = g.add("identity", h, name="a")
    b = g.add("add", a, h, name="b")                 # h reaches b twice: via a and directly
    c = g.add("add", b, a, name="c")                 # a is read twice too
    g.add("mse", c, t, name="loss")
    model = gn.Model(g, seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    feeds = {"x": rng.normal(size=(4, 3)), "t": rng.normal(size=(4, 3))}
    report = gn.gradcheck(model, feeds, inputs=True)
    assert report.ok, str(report)
    model.forward(feeds, training=True)
    g1 = {k: v.copy() for k, v in model.backward(inputs=True).items()}
    model.forward(feeds, training=True)
    g2 = model.backward(inputs=True)
    for k in g1:                                      # a second pass gives the same sums
        np.testing.assert_allclose(g2[k], g1[k], rtol=1e-12)


def test_fit_steps_touch_neither_networkx_nor_the_registry(monkeypatch):
    model = residual_model()
    opt = gn.optimizer("adam")
    data = feeds_for(24, 0)
    model.fit(data, optimizer=opt, epochs=1, batch_size=8, progress=False)
    forbid_graph_and_registry(monkeypatch)
    history = model.fit(data, optimizer=opt, epochs=2, batch_size=8, progress=False)
    monkeypatch.undo()
    assert len(history) == 2 and all(np.isfinite(r["loss"]) for r in history.rows)


@pytest.mark.parametrize("keep", ["dict", "copy of the dict", "one view", "flat", "nothing"])
def test_backward_reuses_its_arrays_only_once_nobody_holds_them(keep):
    """backward() without out= refills the last result's memory only when the caller
    kept no part of it; whatever was kept never changes under the caller."""
    model = residual_model()
    model.forward(feeds_for(4, 1), training=True)
    grads = model.backward()
    flat_id = id(grads.flat)
    held = {"dict": lambda g: g, "copy of the dict": dict, "one view": lambda g: g["fc2.bias"],
            "flat": lambda g: g.flat, "nothing": lambda g: None}[keep](grads)
    arrays = [] if held is None else list(held.values()) if isinstance(held, dict) else [held]
    snapshot = [np.array(a) for a in arrays]
    first = np.array(grads.flat)
    del grads
    model.forward(feeds_for(4, 2), training=True)
    again = model.backward()
    assert (id(again.flat) == flat_id) == (keep == "nothing")
    assert not np.array_equal(first, again.flat)            # another batch, other gradients
    for a, before in zip(arrays, snapshot):
        np.testing.assert_array_equal(a, before)


def test_forward_copy_false_hands_out_the_engine_arrays():
    model = residual_model()
    own = model.forward(feeds_for(4, 1), training=True, copy=False)
    plan, vals = model._last
    assert all(own[name] is vals[slot] for name, slot in plan.targets)
