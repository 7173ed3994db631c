import math

import numpy as np
import pytest

from graphnet.testing import check_activation
from graphnet_contrib.activations import (ACTIVATIONS, GELU, HARD_SIGMOID, MISH, SILU, gelu,
                                          hard_sigmoid, mish, silu)


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: a.name)
def test_passes_graphnet_gradient_check(act):
    report = check_activation(act, shape=(7,))
    assert report.ok and report.checked > 0


@pytest.mark.parametrize("act", [GELU, MISH], ids=lambda a: a.name)
def test_gradient_check_on_a_matrix_input(act):
    assert check_activation(act, shape=(2, 3), seed=1).ok


def test_gelu_is_close_to_the_exact_erf_form():
    x = np.linspace(-6, 6, 241)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    assert np.max(np.abs(gelu(x) - exact)) < 1e-3       # the tanh approximation's error
    assert gelu(np.array([0.0]))[0] == 0.0


def test_known_values():
    x = np.array([-2.0, 0.0, 1.0, 3.0])
    sig = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(silu(x), x * sig)
    np.testing.assert_allclose(mish(x), x * np.tanh(np.log1p(np.exp(x))))
    np.testing.assert_allclose(hard_sigmoid(np.array([-4.0, -3.0, 0.0, 1.5, 3.0, 9.0])),
                               [0.0, 0.0, 0.5, 0.75, 1.0, 1.0])


def test_hard_sigmoid_derivative_is_a_sixth_inside_and_zero_outside():
    x = np.array([-5.0, -1.0, 0.0, 2.9, 3.5])
    np.testing.assert_allclose(HARD_SIGMOID.derivative(x, hard_sigmoid(x)),
                               [0, 1 / 6, 1 / 6, 1 / 6, 0])


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: a.name)
def test_float32_stays_float32_and_extremes_stay_finite(act):
    x = np.array([-1e30, -50.0, -1.0, 0.0, 1.0, 50.0, 1e30], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow is fine
        y = act.fn(x)
        d = act.derivative(x, y)
    assert y.dtype == np.float32 and d.dtype == np.float32
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(d))
    # far from zero each is the identity (or 1) on the right and 0 on the left
    assert d[-2] == pytest.approx(0.0 if act is HARD_SIGMOID else 1.0, abs=1e-6)
    assert d[1] == pytest.approx(0.0, abs=1e-6)


def test_silu_derivative_matches_a_central_difference():
    x = np.linspace(-4, 4, 17)
    h = 1e-6
    numeric = (silu(x + h) - silu(x - h)) / (2 * h)
    np.testing.assert_allclose(SILU.derivative(x, silu(x)), numeric, atol=1e-8)
