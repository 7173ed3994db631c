"""Builtin optimizers, in order of increasing complexity.

Each update works in place with numpy's ``out=`` and in-place operators, on
the param, its state arrays and a reusable scratch array (``self.scratch``):
after the first step nothing is allocated per step. Every update works element
by element (``elementwise = True``), so on a Model's params, which are views
into one flat array, ``step`` runs it once over all of them. In the formulas g is the
param's gradient, ``lr`` the learning rate of this step (a schedule's value
if ``lr`` is a schedule) and t the step number, counting from 1.
"""

import math

import numpy as np

from ..optim import Optimizer
from ..hookspecs import hookimpl


class SGD(Optimizer):
    """Plain (mini-batch) gradient descent: theta <- theta - lr * (g + weight_decay * theta).

    With ``weight_decay`` > 0 this is L2 regularisation folded into the gradient,
    as torch.optim.SGD does it.

    >>> import numpy as np
    >>> w = np.array([1.0]); SGD(lr=0.1).step({"w": w}, {"w": np.array([2.0])}); w
    array([0.8])
    """

    name = "sgd"
    elementwise = True

    def __init__(self, lr=0.01, weight_decay=0.0, *, clip_norm=None):
        super().__init__(lr=lr, weight_decay=weight_decay, clip_norm=clip_norm)

    def update(self, param, grad, state, step):
        buf = self.scratch(param)
        if self.weight_decay:
            buf[...] = param
            buf *= self.weight_decay
            buf += grad
            buf *= self.lr
        else:
            np.multiply(grad, self.lr, out=buf)
        param -= buf


class Momentum(Optimizer):
    """The lecture's momentum: m <- beta * m + (1 - beta) * g; theta <- theta - lr * m.

    m is an exponential moving average of the gradients, so lr keeps the
    meaning it has in SGD (torch.optim.SGD's momentum adds g without the
    (1 - beta) factor: its lr is (1 - beta) times this one).
    ``nesterov=True`` steps along the look-ahead average instead:
    theta <- theta - lr * (beta * m + (1 - beta) * g), with m already updated.
    """

    name = "momentum"
    elementwise = True

    def __init__(self, lr=0.01, beta=0.9, nesterov=False, *, clip_norm=None):
        super().__init__(lr=lr, beta=beta, nesterov=nesterov, clip_norm=clip_norm)

    def init_state(self, param):
        return {"m": _zeros(param)}

    def update(self, param, grad, state, step):
        m, buf = state["m"], self.scratch(param)
        m *= self.beta
        _mul(grad, 1.0 - self.beta, buf)
        m += buf
        if self.nesterov:   # buf holds (1 - beta) g: add beta m
            buf2 = self.scratch(param, 1)
            _mul(m, self.beta, buf2)
            buf += buf2
            buf *= self.lr
        else:
            _mul(m, self.lr, buf)
        param -= buf


class RMSprop(Optimizer):
    """The lecture's RMSprop: E <- beta * E + (1 - beta) * g^2; theta <- theta - lr * g / sqrt(E + eps).

    eps is inside the square root, as on the lecture's slide. torch.optim.RMSprop
    puts it outside, ``g / (sqrt(E) + eps)`` (and calls beta ``alpha``); the two
    differ only while E is of the order of eps.
    """

    name = "rmsprop"
    elementwise = True

    def __init__(self, lr=0.001, beta=0.9, eps=1e-8, *, clip_norm=None):
        super().__init__(lr=lr, beta=beta, eps=eps, clip_norm=clip_norm)

    def init_state(self, param):
        return {"E": _zeros(param)}

    def update(self, param, grad, state, step):
        E, buf = state["E"], self.scratch(param)
        E *= self.beta
        _square(grad, buf)
        buf *= 1.0 - self.beta
        E += buf
        np.add(E, self.eps, out=buf)
        np.sqrt(buf, out=buf)
        np.divide(grad, buf, out=buf)
        buf *= self.lr
        param -= buf


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015), bias-corrected, eps outside the root as torch.optim.Adam.

    m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2;
    theta <- theta - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps).
    """

    name = "adam"
    elementwise = True

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, *, clip_norm=None):
        super().__init__(lr=lr, beta1=beta1, beta2=beta2, eps=eps, clip_norm=clip_norm)

    def init_state(self, param):
        return {"m": _zeros(param), "v": _zeros(param)}

    def update(self, param, grad, state, step):
        self._adam(param, grad, state, step)

    def _adam(self, param, grad, state, step):
        m, v, buf = state["m"], state["v"], self.scratch(param)
        m *= self.beta1
        _mul(grad, 1.0 - self.beta1, buf)
        m += buf
        v *= self.beta2
        _square(grad, buf)
        buf *= 1.0 - self.beta2
        v += buf
        # (the same order of operations as torch.optim.Adam's single-tensor path)
        np.sqrt(v, out=buf)
        buf /= math.sqrt(1.0 - self.beta2 ** step)
        buf += self.eps
        np.divide(m, buf, out=buf)
        buf *= self.lr / (1.0 - self.beta1 ** step)
        param -= buf


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019), as torch.optim.AdamW.

    theta <- theta * (1 - lr * weight_decay), then the Adam step: the decay
    does not go through m and v, unlike L2 regularisation added to g.
    """

    name = "adamw"

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, *,
                 clip_norm=None):
        Optimizer.__init__(self, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                           weight_decay=weight_decay, clip_norm=clip_norm)

    def update(self, param, grad, state, step):
        if self.weight_decay:
            param *= 1.0 - self.lr * self.weight_decay
        self._adam(param, grad, state, step)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011): G <- G + g^2; theta <- theta - lr * g / (sqrt(G) + eps).

    Every component's step shrinks with its own history of gradients; eps
    is outside the root as in torch.optim.Adagrad.
    """

    name = "adagrad"
    elementwise = True

    def __init__(self, lr=0.01, eps=1e-10, *, clip_norm=None):
        super().__init__(lr=lr, eps=eps, clip_norm=clip_norm)

    def init_state(self, param):
        return {"G": _zeros(param)}

    def update(self, param, grad, state, step):
        G, buf = state["G"], self.scratch(param)
        _square(grad, buf)
        G += buf
        np.sqrt(G, out=buf)
        buf += self.eps
        np.divide(grad, buf, out=buf)
        buf *= self.lr
        param -= buf


def _zeros(param):
    return np.zeros_like(param)


def _mul(a, scalar, out):
    return np.multiply(a, scalar, out=out)


def _square(a, out):
    return np.multiply(a, a, out=out)


@hookimpl
def graphnet_optimizers():
    return [SGD, Momentum, RMSprop, Adam, AdamW, Adagrad]
