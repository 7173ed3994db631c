"""The lecture's five activations, plus leaky_relu; each stable for large |x|.

Every derivative keeps the dtype of its input, so a float32 model stays float32.
relu and tanh also come as ``*_into`` functions that write into a
buffer the engine reuses (forward f(x), backward dy * f'(x)), which saves an
allocation and a pass over memory per layer and batch.
"""

import numpy as np

from ..ops import Activation
from ..hookspecs import hookimpl


def relu(x):
    """ReLU(x) = max(0, x)."""
    return np.maximum(x, 0)


def relu_grad(x, y):
    return (x > 0).astype(x.dtype)


def relu_into(x, out):
    # the maximum against zeros in ``out`` itself: numpy's maximum with a scalar runs a
    # loop about twice as slow as the fill and the array-array loop together
    out.fill(0)
    return np.maximum(x, out, out=out)


def relu_backward_into(x, y, dy, out):
    return np.multiply(dy, x > 0, out=out)


def elu(x, alpha=1.0):
    """ELU(x) = x if x >= 0 else alpha * (e^x - 1)."""
    return np.where(x >= 0, x, x.dtype.type(alpha) * np.expm1(np.minimum(x, 0)))


def elu_grad(x, y, alpha=1.0):
    return np.where(x >= 0, x.dtype.type(1), y + x.dtype.type(alpha))


def sigmoid(x):
    """sigmoid(x) = 1 / (1 + e^-x), computed without overflow for any x."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_grad(x, y):
    return y * (1 - y)


def softplus(x):
    """softplus(x) = log(1 + e^x), computed as logaddexp(0, x)."""
    return np.logaddexp(x.dtype.type(0), x)


def softplus_grad(x, y):
    return sigmoid(x)


def tanh(x):
    """tanh(x) = (e^x - e^-x) / (e^x + e^-x)."""
    return np.tanh(x)


def tanh_grad(x, y):
    return 1 - y * y


def tanh_into(x, out):
    return np.tanh(x, out=out)


def tanh_backward_into(x, y, dy, out):
    np.multiply(y, y, out=out)
    np.subtract(1, out, out=out)
    out *= dy
    return out


def leaky_relu(x, alpha=0.01):
    """leaky_relu(x) = x if x >= 0 else alpha * x."""
    return np.where(x >= 0, x, x.dtype.type(alpha) * x)


def leaky_relu_grad(x, y, alpha=0.01):
    return np.where(x >= 0, x.dtype.type(1), x.dtype.type(alpha))


@hookimpl
def graphnet_activations():
    return [
        Activation("relu", relu, relu_grad, forward_into=relu_into,
                   backward_into=relu_backward_into, onnx="Relu"),
        Activation("elu", elu, elu_grad, attrs={"alpha": 1.0}, onnx="Elu"),
        Activation("softplus", softplus, softplus_grad, onnx="Softplus"),
        Activation("sigmoid", sigmoid, sigmoid_grad, onnx="Sigmoid"),
        Activation("tanh", tanh, tanh_grad, forward_into=tanh_into,
                   backward_into=tanh_backward_into, onnx="Tanh"),
        Activation("leaky_relu", leaky_relu, leaky_relu_grad, attrs={"alpha": 0.01},
                   onnx="LeakyRelu"),
    ]
