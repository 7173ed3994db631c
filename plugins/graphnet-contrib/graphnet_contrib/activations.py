"""Activations: gelu, silu, mish, hard_sigmoid.

Each is f(x) and f'(x) given x and y = f(x), written to keep the input's dtype
(a float32 model stays float32) and to stay finite for any finite x.
"""

import numpy as np

import graphnet as gn

_SQRT_2_OVER_PI = np.sqrt(2.0 / np.pi)
_GELU_C = 0.044715


def _sigmoid(x):
    """1 / (1 + e^-x) without overflow: e^-|x| never exceeds 1."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _softplus(x):
    return np.logaddexp(x.dtype.type(0), x)


def gelu(x):
    """GELU(x) = x * Phi(x), tanh approximation:
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    t = _gelu_tanh(x)
    return x.dtype.type(0.5) * x * (1 + t)


def _gelu_tanh(x):
    # tanh saturates long before |x| = 10; clipping keeps x^3 from overflowing float32
    xc = np.clip(x, -10, 10)
    return np.tanh(x.dtype.type(_SQRT_2_OVER_PI) * (xc + x.dtype.type(_GELU_C) * xc ** 3))


def gelu_grad(x, y):
    xc = np.clip(x, -10, 10)
    t = _gelu_tanh(x)
    du = x.dtype.type(_SQRT_2_OVER_PI) * (1 + x.dtype.type(3 * _GELU_C) * xc * xc)
    half = x.dtype.type(0.5)
    return half * (1 + t) + half * xc * (1 - t * t) * du


def silu(x):
    """SiLU(x) = x * sigmoid(x), also called swish."""
    return x * _sigmoid(x)


def silu_grad(x, y):
    s = _sigmoid(x)
    return s * (1 + x * (1 - s))


def mish(x):
    """Mish(x) = x * tanh(softplus(x)) (Misra 2019)."""
    return x * np.tanh(_softplus(x))


def mish_grad(x, y):
    t = np.tanh(_softplus(x))
    return t + x * (1 - t * t) * _sigmoid(x)


def hard_sigmoid(x):
    """hard_sigmoid(x) = clip(x / 6 + 1/2, 0, 1), as PyTorch's Hardsigmoid."""
    return np.clip(x / x.dtype.type(6) + x.dtype.type(0.5), 0, 1).astype(x.dtype, copy=False)


def hard_sigmoid_grad(x, y):
    return np.where((x > -3) & (x < 3), x.dtype.type(1 / 6), x.dtype.type(0))


# --- ONNX forms: one ONNX op where the opset has it, else the formula in ONNX ops ---

def gelu_onnx(b, x):
    if b.opset >= 20:
        return b.op("Gelu", x, approximate="tanh")
    cube = b.op("Mul", b.op("Mul", x, x), x)
    inner = b.op("Mul", b.op("Add", x, b.op("Mul", cube, b.const(_GELU_C))),
                 b.const(_SQRT_2_OVER_PI))
    half_x = b.op("Mul", x, b.const(0.5))
    return b.op("Mul", half_x, b.op("Add", b.op("Tanh", inner), b.const(1.0)))


def silu_onnx(b, x):
    return b.op("Mul", x, b.op("Sigmoid", x))   # as PyTorch writes nn.SiLU


def mish_onnx(b, x):
    if b.opset >= 18:
        return b.op("Mish", x)
    return b.op("Mul", x, b.op("Tanh", b.op("Softplus", x)))


def hard_sigmoid_onnx(b, x):
    return b.op("HardSigmoid", x, alpha=1 / 6, beta=0.5)


GELU = gn.Activation("gelu", gelu, gelu_grad, onnx=gelu_onnx)
SILU = gn.Activation("silu", silu, silu_grad, onnx=silu_onnx)
MISH = gn.Activation("mish", mish, mish_grad, onnx=mish_onnx)
HARD_SIGMOID = gn.Activation("hard_sigmoid", hard_sigmoid, hard_sigmoid_grad,
                             onnx=hard_sigmoid_onnx)

ACTIVATIONS = [GELU, SILU, MISH, HARD_SIGMOID]
