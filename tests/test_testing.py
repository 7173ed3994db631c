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


# --- registered(): every kind a plugin can provide ------------------------------

def test_registered_op_class_is_usable_in_a_graph_and_gone_after():
    with registered(Scale) as name:
        g = gn.Graph("t")
        g.output(g.add(name, g.input("x", shape=(2,)), name="s"))
        y = gn.Model(g, seed=0, dtype="float64").predict({"x": np.ones((1, 2))})["s"]
        assert y.shape == (1, 2)
    assert name not in [e.name for e in plugins.entries("op")]


def test_registered_activation_is_usable_by_name_and_gone_after():
    cube = gn.Activation("test_cube", fn=lambda x: x**3, derivative=lambda x, y: 3 * x**2)
    with registered(cube) as name:
        g = gn.Graph("t")
        g.output(g.add(name, g.input("x", shape=(2,)), name="c"))
        y = gn.Model(g, dtype="float64").predict({"x": np.array([[2.0, -1.0]])})["c"]
        np.testing.assert_allclose(y, [[8.0, -1.0]])
    with pytest.raises(gn.UnknownNameError):
        plugins.get("op", "test_cube")


class Halve(gn.Optimizer):
    """w -= lr * sign(g) / 2: an optimizer plugin."""

    name = "test_halve"

    def __init__(self, lr=0.1):
        super().__init__(lr=lr)

    def update(self, key, param, grad, state, lr):
        param -= lr * np.sign(grad) / 2


def test_registered_optimizer_is_buildable_by_name_and_gone_after():
    with registered(Halve) as name:
        opt = gn.optimizer(name, lr=0.2)
        assert isinstance(opt, Halve)
        with registered(Halve):                  # the registered class itself is fine
            pass
    with pytest.raises(gn.UnknownNameError):
        gn.optimizer("test_halve")


def test_registered_refuses_an_optimizer_namesake():
    class Adam(Halve):
        name = "adam"

    with pytest.raises(gn.PluginError, match="optimizer 'adam' is already registered"):
        with registered(Adam):
            pass
    assert not isinstance(gn.optimizer("adam"), Halve)    # the builtin is untouched


class Doubling(gn.Schedule):
    """lr doubles every step: a schedule plugin."""

    name = "test_doubling"

    def __init__(self, lr=0.1):
        self.lr = lr

    def __call__(self, t):
        return self.lr * 2 ** t


def test_registered_schedule_is_buildable_by_name_and_gone_after():
    with registered(Doubling) as name:
        assert gn.schedule(name, lr=0.5)(3) == 4.0
        assert gn.optimizer("sgd", lr={"name": name, "lr": 1.0}).schedule(2) == 4.0
    with pytest.raises(gn.UnknownNameError):
        gn.schedule("test_doubling")


def test_registered_initializer_fills_a_model_param_and_is_gone_after():
    halves = gn.Initializer("test_halves", lambda rng, shape, fan_in, fan_out:
                            np.full(shape, 0.5))
    g = gn.Graph("t")
    g.output(g.add("dense", g.input("x", shape=(3,)), name="d", units=2, init="test_halves"))
    with registered(halves):
        model = gn.Model(g, seed=0, dtype="float64")
        assert np.all(model.params["d.weight"] == 0.5)
    with pytest.raises(gn.GraphnetError, match="test_halves"):
        gn.Model(g, seed=0)


def test_registered_dataset_loads_by_name_and_is_gone_after():
    x = np.arange(6.0).reshape(3, 2)
    data = gn.Dataset("test_tiny", lambda: {"train": {"x": x}, "test": {"x": x[:1]}})
    with registered(data) as name:
        loaded = gn.datasets.load(name)
        np.testing.assert_array_equal(loaded["train"]["x"], x)
        assert loaded["test"]["x"].shape == (1, 2)
    with pytest.raises(gn.GraphnetError, match="test_tiny"):
        gn.datasets.load("test_tiny")


def test_registered_refuses_what_no_hook_returns():
    with pytest.raises(gn.PluginError, match="registered\\(\\) takes"):
        with registered(object()):
            pass
