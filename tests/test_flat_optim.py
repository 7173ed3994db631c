"""Optimizers update a Model's params through its flat arrays: the same numbers as
param by param, with the state still keyed by param name."""

import numpy as np
import pytest

import graphnet as gn

CASES = [("sgd", {}), ("sgd", {"weight_decay": 0.1}), ("momentum", {}),
         ("momentum", {"nesterov": True}), ("rmsprop", {}), ("adam", {}), ("adamw", {}),
         ("adagrad", {})]


def model():
    g = gn.Graph("flat")
    x = g.input("x", shape=(4,))
    y = g.input("y", shape=(), dtype="int64")
    h = g.add("tanh", g.add("dense", x, units=6, name="fc1"))
    logits = g.add("dense", h, units=3, name="out")
    g.add("softmax_cross_entropy", logits, y, name="loss")
    g.output(logits)
    return gn.Model(g, seed=0)


def batches(n=4):
    rng = np.random.default_rng(0)
    return [{"x": rng.normal(size=(5, 4)).astype(np.float32), "y": rng.integers(0, 3, size=5)}
            for _ in range(n)]


def train(m, opt, feeds_list, flat=True):
    for feeds in feeds_list:
        m.forward(feeds, training=True)
        grads = m.backward()
        if flat:
            opt.step(m.params, grads)
        else:                      # plain dicts of the same arrays: param by param
            opt.step(dict(m.params), dict(grads))


@pytest.mark.parametrize("chunk", [None, 7])
@pytest.mark.parametrize("name, hyper", CASES)
def test_flat_step_equals_param_by_param_bit_for_bit(name, hyper, chunk):
    a, b = model(), model()
    opt_a, opt_b = gn.optimizer(name, lr=0.05, **hyper), gn.optimizer(name, lr=0.05, **hyper)
    if chunk:
        opt_a.flat_chunk = chunk          # several chunks, one ending mid-param
    train(a, opt_a, batches())
    train(b, opt_b, batches(), flat=False)
    assert opt_a._flat is not None and opt_b._flat is None   # each took its own path
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert sorted(sa["state"]) == sorted(a.params) == sorted(sb["state"])
    for k in sa["state"]:
        for key in sb["state"][k]:
            np.testing.assert_array_equal(sa["state"][k][key], sb["state"][k][key])
            assert sa["state"][k][key].shape == a.params[k].shape


def test_state_survives_a_save_and_load_between_flat_steps():
    feeds = batches(6)
    a, b = model(), model()
    opt_a = gn.optimizer("adam", lr=0.05)
    train(a, opt_a, feeds)
    opt_b = gn.optimizer("adam", lr=0.05)
    train(b, opt_b, feeds[:3])
    saved = opt_b.state_dict()
    opt_c = gn.optimizer("adam", lr=0.05)
    opt_c.load_state_dict(saved)
    train(b, opt_c, feeds[3:])
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_a_replaced_param_falls_back_to_param_by_param():
    feeds = batches(3)
    a, b = model(), model()
    opt_a, opt_b = gn.optimizer("adam", lr=0.05), gn.optimizer("adam", lr=0.05)
    train(a, opt_a, feeds[:1])
    train(b, opt_b, feeds[:1])
    b.params["fc1.weight"] = b.params["fc1.weight"].copy()    # no longer a view
    assert not b.params.intact()
    train(a, opt_a, feeds[1:])
    train(b, opt_b, feeds[1:])
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_state_arrays_are_views_of_one_flat_array_per_key():
    m, opt = model(), gn.optimizer("adam", lr=0.05)
    train(m, opt, batches(1))
    flat = opt._flat[2]
    assert set(flat) == {"m", "v"}
    for k in m.params:
        assert np.shares_memory(opt.state[k]["m"], flat["m"])
        assert opt.state[k]["v"].shape == m.params[k].shape


def test_a_deep_copied_model_trains_its_own_params():
    """Copies keep params as views into their own flat array, so the flat step reaches them."""
    import copy
    import pickle
    a = model()
    before = {k: v.copy() for k, v in a.params.items()}
    b = copy.deepcopy(a)
    c = pickle.loads(pickle.dumps(a))
    for m in (a, b, c):
        train(m, gn.optimizer("adam", lr=0.05), batches(2))
    for k in before:
        assert not np.array_equal(b.params[k], before[k])
        np.testing.assert_array_equal(b.params[k], a.params[k])
        np.testing.assert_array_equal(c.params[k], a.params[k])


def test_params_stay_views_of_the_flat_buffer_after_load_gradcheck_and_load_state_dict(
        tmp_path):
    """Restoring params copies into the model's arrays, so the fused step still applies."""
    m, opt = model(), gn.optimizer("adam", lr=0.05)
    train(m, opt, batches(2))
    path = tmp_path / "m.npz"
    gn.save(m, path, optimizer=opt)
    loaded = gn.load(path)
    assert loaded.params.intact()
    for k in m.params:
        np.testing.assert_array_equal(loaded.params[k], m.params[k])
        assert np.shares_memory(loaded.params[k], loaded.params.flat)

    before = {k: v.copy() for k, v in loaded.params.items()}
    report = gn.gradcheck(loaded, batches(1)[0])
    assert report.ok and loaded.params.intact()
    for k in before:
        np.testing.assert_array_equal(loaded.params[k], before[k])   # left untouched

    resumed = gn.optimizer("adam", lr=0.05)
    resumed.load_state_dict(opt.state_dict())
    train(loaded, resumed, batches(1))
    train(m, opt, batches(1))
    assert loaded.params.intact() and resumed._flat is not None       # the flat path ran
    for k in m.params:
        np.testing.assert_array_equal(loaded.params[k], m.params[k])
