import numpy as np
import pytest

import graphnet as gn
from graphnet.testing import check_op, registered
from graphnet_contrib.ops import LayerNorm


@pytest.mark.parametrize("shape", [(6,), (3, 4)])
def test_layer_norm_passes_graphnet_gradient_check(shape):
    report = check_op(LayerNorm(), [shape])
    assert report.ok
    assert {"node.gamma", "node.beta", "in0"} <= set(report.errors)


def test_gradient_check_with_a_large_eps():
    assert check_op(LayerNorm(), [(5,)], {"eps": 0.5}, seed=3).ok


def _model(d=5, **attrs):
    g = gn.Graph("ln")
    x = g.input("x", shape=(d,))
    g.output(g.add("layer_norm", x, name="ln", **attrs))
    return gn.Model(g, seed=0, dtype="float64")


def test_forward_normalizes_the_last_axis_and_applies_gamma_beta():
    with registered(LayerNorm()):
        model = _model()
        x = np.random.default_rng(0).normal(3.0, 5.0, size=(4, 5))
        y = model.predict({"x": x})["ln"]
        np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-12)
        np.testing.assert_allclose(y.var(axis=-1), 1, rtol=1e-5)   # eps = 1e-5 shrinks it
        model.params["ln.gamma"][:] = 2.0
        model.params["ln.beta"][:] = -1.0
        y2 = model.predict({"x": x})["ln"]
        np.testing.assert_allclose(y2, 2 * y - 1)
        assert model.params["ln.gamma"].shape == (5,)


def test_scalar_input_is_a_shape_error_naming_the_node():
    with registered(LayerNorm()):
        g = gn.Graph("bad")
        g.add("layer_norm", g.input("x", shape=()), name="norm")
        with pytest.raises(gn.ShapeError, match="norm"):
            gn.Model(g)


def test_negative_eps_is_refused():
    with registered(LayerNorm()):
        g = gn.Graph("bad")
        g.add("layer_norm", g.input("x", shape=(3,)), name="norm", eps=-1.0)
        with pytest.raises(gn.GraphnetError, match="eps"):
            gn.Model(g)


def test_params_get_gradients_when_the_input_needs_none():
    # layer_norm right on a model input: backward skips dx (needs_grad[0] is False)
    with registered(LayerNorm()):
        g = gn.Graph("first")
        y = g.add("layer_norm", g.input("x", shape=(4,)), name="ln")
        g.add("mse", y, g.input("t", shape=(4,)), name="loss")
        model = gn.Model(g, seed=0, dtype="float64")
        rng = np.random.default_rng(1)
        model.params["ln.gamma"][:] = rng.normal(size=4)
        feeds = {"x": rng.normal(size=(5, 4)), "t": rng.normal(size=(5, 4))}
        report = gn.gradcheck(model, feeds)
        assert report.ok, report
        assert set(report.errors) == {"ln.gamma", "ln.beta"}
