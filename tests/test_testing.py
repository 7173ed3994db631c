"""graphnet.testing: the checks a plugin author runs on their own ops and activations."""

import numpy as np
import pytest

import graphnet as gn
from graphnet import plugins
from graphnet.testing import check_activation, check_op, check_optimizer, registered


class Scale(gn.Op):
    """y = x * gain, with a learned per-feature gain: an op with a param."""

    name = "test_scale"
    attrs = {"start": gn.Attr(1.0, "float")}

    def params(self, attrs, shape):
        return {"gain": gn.Param((shape[-1],), {"name": "uniform", "limit": 2.0})}

    def forward(self, ctx, x, gain):
        ctx.x, ctx.gain = x, gain
        return x * gain

    def backward(self, ctx, dy):
        dx = dy * ctx.gain if ctx.needs_grad[0] else None
        return dx, (dy * ctx.x).reshape(-1, ctx.x.shape[-1]).sum(axis=0)


class WrongScale(Scale):
    name = "test_wrong_scale"

    def backward(self, ctx, dy):
        dx, dgain = super().backward(ctx, dy)
        return dx, dgain * 1.01


class WrongShape(Scale):
    name = "test_wrong_shape"

    def infer(self, attrs, shape):
        return shape + (1,)


def test_check_op_on_a_custom_op_with_a_param():
    report = check_op(Scale(), [(4,)])
    assert report.ok and {"node.gain", "in0"} <= set(report.errors)
    assert check_op(Scale, [(2, 3)], {"start": 2.0}).ok    # a class works too
    assert "test_scale" not in [e.name for e in plugins.entries("op")]  # unregistered after


def test_check_op_catches_a_wrong_param_gradient():
    with pytest.raises(AssertionError, match="(?s)test_wrong_scale.*node.gain  9"):
        check_op(WrongScale(), [(4,)])


def test_check_op_catches_a_wrong_shape_inference():
    with pytest.raises(AssertionError, match=r"forward returned shape \(3, 4\).*\(3, 4, 1\)"):
        check_op(WrongShape(), [(4,)])


def test_check_activation_on_a_custom_activation():
    cube = gn.Activation("test_cube", fn=lambda x: x**3, derivative=lambda x, y: 3 * x**2)
    assert check_activation(cube, shape=(3, 2)).ok
    sig = lambda x, beta: 1 / (1 + np.exp(-beta * x))  # noqa: E731
    swish = gn.Activation(
        "test_swish", fn=lambda x, beta=1.0: x * sig(x, beta),
        derivative=lambda x, y, beta=1.0: sig(x, beta) * (1 + beta * x * (1 - sig(x, beta))),
        attrs={"beta": 1.0})
    assert check_activation(swish, attrs={"beta": 1.7}).ok


def test_check_op_by_name_and_for_losses():
    assert check_op("dense", [(3,)], {"units": 2}).ok
    assert check_op("softmax_cross_entropy", [(5,), ()], classes=5).ok


def test_a_namesake_of_a_registered_op_is_refused():
    fake = gn.Activation("tanh", fn=lambda x: x, derivative=lambda x, y: np.ones_like(x))
    with pytest.raises(gn.PluginError, match="'tanh'.*graphnet.builtin.activations"):
        check_activation(fake)
    tanh = plugins.get("activation", "tanh")
    assert check_activation(tanh).ok        # the registered object itself is fine


def test_registered_cleans_up_after_an_error():
    with pytest.raises(RuntimeError):
        with registered(Scale()) as name:
            assert name == "test_scale" and plugins.get("op", name)
            raise RuntimeError
    with pytest.raises(gn.UnknownOpError):
        plugins.get("op", "test_scale")


class Leaky64(Scale):
    """An op whose backward promotes to float64 (a float64 constant)."""

    name = "test_leaky64"

    def backward(self, ctx, dy):
        dx, dgain = super().backward(ctx, dy)
        return dx * np.ones(dx.shape), dgain


def test_check_op_catches_a_float64_leak():
    with pytest.raises(AssertionError, match="float32 model.*'in0' is float64"):
        check_op(Leaky64(), [(3,)])


class NoFans(Scale):
    """A param declared without fans and with the default glorot_uniform init."""

    name = "test_no_fans"

    def params(self, attrs, shape):
        return {"gain": gn.Param((shape[-1],))}


def test_params_without_fans_get_them_from_their_shape():
    with registered(NoFans()):
        g = gn.Graph()
        g.add("test_no_fans", g.input("x", (6,)), name="n")
        gain = gn.Model(g).params["n.gain"]
    assert gain.shape == (6,) and 0 < np.abs(gain).max() <= np.sqrt(6 / 12)
    from graphnet.model import default_fans
    assert default_fans((4, 3)) == (4, 3) and default_fans((2, 5, 3)) == (10, 3)
    assert default_fans(()) == (1, 1)


def test_an_activation_that_promotes_to_float64_is_kept_float32():
    sloppy = gn.Activation("test_sloppy", fn=lambda x: x + np.zeros(x.shape),
                           derivative=lambda x, y: np.ones(x.shape))
    assert check_activation(sloppy).ok          # check_op's float32 pass included


def test_check_roundtrip_catches_an_attr_lost_in_json():
    """A serializer that changes an attr on the way out fails the round-trip check."""
    from graphnet.testing import check_roundtrip

    g = gn.Graph("rt")
    x = g.input("x", shape=(3,))
    g.output(g.add("dense", x, units=2, name="fc"))
    feeds = {"x": np.ones((2, 3))}
    check_roundtrip(g, feeds)            # a builtin graph passes
    broken = g.copy()
    original = broken.to_json

    def lossy_to_json(path=None):        # simulates a serializer that drops use_bias
        return original().replace('"units": 2', '"units": 2, "use_bias": false')

    broken.to_json = lossy_to_json
    with pytest.raises(AssertionError, match="JSON round trip"):
        check_roundtrip(broken, feeds)


# --- check_optimizer ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(e.name for e in gn.plugins.entries("optimizer")))
def test_check_optimizer_passes_every_registered_optimizer(name):
    assert check_optimizer(name, lr=0.05) < check_optimizer("sgd", lr=1e-9)


class ShapeScaled(gn.Optimizer):
    """Scales by the param's first axis: wrong once update receives flat chunks."""
    name = "test_shape_scaled"
    elementwise = True

    def update(self, param, grad, state, step):
        param -= self.lr * grad / (param.shape[0] if param.ndim else 1)


class Forgetful(gn.Optimizer):
    """Keeps its momentum outside self.state, so state_dict cannot carry it."""
    name = "test_forgetful"

    def __init__(self, lr=0.1):
        super().__init__(lr=lr)
        self.m = {}

    def update(self, param, grad, state, step):
        m = self.m.setdefault(id(state), np.zeros_like(grad))
        m *= 0.9
        m += grad
        param -= self.lr * m


class Ascent(gn.Optimizer):
    name = "test_ascent"

    def update(self, param, grad, state, step):
        param += self.lr * grad


@pytest.mark.parametrize("cls, words", [(ShapeScaled, "elementwise = True"),
                                         (Forgetful, "load_state_dict"),
                                         (Ascent, "should go down")])
def test_check_optimizer_names_what_is_wrong(cls, words):
    with pytest.raises(AssertionError, match=words):
        check_optimizer(cls, lr=0.1)
