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


STACKED_MAX = 1 << 15
"""Adam updates m and v in one call each step only up to this many elements: below it
the calls cost more than the passes over memory, above it twice the memory per pass
falls out of the CPU's cache."""


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015), bias-corrected, eps outside the root as torch.optim.Adam.

    m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2;
    theta <- theta - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps).
    """

    name = "adam"
    elementwise = True

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, *, clip_norm=None):
        super().__init__(lr=lr, beta1=beta1, beta2=beta2, eps=eps, clip_norm=clip_norm)
        self._coefs, self._pairs = {}, {}   # see _coefficients and _adam

    def init_state(self, param):
        """m and v as the two rows of one array, so that one numpy call updates both."""
        mv = np.zeros((2,) + param.shape, param.dtype)
        return {"m": mv[0, ...], "v": mv[1, ...]}   # views even for a 0-d param

    def update(self, param, grad, state, step):
        self._adam(param, grad, state, step)

    def _adam(self, param, grad, state, step):
        """Nine numpy calls on the rows m and v of one array (init_state's; for up to
        STACKED_MAX elements), else twelve.

        The bias corrections are folded into two scalars: with c2 = sqrt(1 - beta2^t),
        lr m_hat / (sqrt(v_hat) + eps) = (lr c2 / (1 - beta1^t)) m / (sqrt(v) + eps c2);
        both branches round alike, so the flat and the per-param steps agree bit for bit.
        """
        m, v = state["m"], state["v"]
        c2 = math.sqrt(1.0 - self.beta2 ** step)
        pair = self._pairs.get(id(m))
        if pair is not None and pair[0] is m and pair[1] is v:
            mv = pair[2]
        elif m.size > STACKED_MAX:   # large: the passes over separate rows stay in cache
            mv = None
        else:
            mv = _rows(m, v)
            if mv is not None and mv.shape[1:] == m.shape:   # whole rows: kept from step to step
                if len(self._pairs) > 256:
                    self._pairs.clear()
                self._pairs[id(m)] = (m, v, mv)
        if mv is not None:
            buf2 = self.scratch(mv)
            betas, coefs = self._coefficients(mv)
            mv *= betas                          # m *= beta1, v *= beta2
            np.multiply(grad, coefs, out=buf2)   # (1 - beta1) g, (1 - beta2) g
            buf2[1, ...] *= grad
            mv += buf2
            buf = buf2[0, ...]
        else:                                    # state loaded into separate arrays
            buf = self.scratch(param)
            m *= self.beta1
            np.multiply(grad, 1.0 - self.beta1, out=buf)
            m += buf
            v *= self.beta2
            np.multiply(grad, 1.0 - self.beta2, out=buf)
            buf *= grad
            v += buf
        np.sqrt(v, out=buf)
        buf += self.eps * c2
        np.divide(m, buf, out=buf)
        buf *= self.lr * c2 / (1.0 - self.beta1 ** step)
        param -= buf

    def _coefficients(self, mv):
        """[beta1, beta2] and [1 - beta1, 1 - beta2] shaped to broadcast over ``mv``'s rows."""
        key = (mv.ndim, mv.dtype, self.beta1, self.beta2)
        got = self._coefs.get(key)
        if got is None:
            shape = (2,) + (1,) * (mv.ndim - 1)
            got = self._coefs[key] = (
                np.array([self.beta1, self.beta2], mv.dtype).reshape(shape),
                np.array([1.0 - self.beta1, 1.0 - self.beta2], mv.dtype).reshape(shape))
        return got


def _rows(m, v):
    """The (2, ...) array whose rows are ``m`` and ``v`` (or the same slice of each),
    as Adam's init_state makes them; None for arrays made apart (a loaded state)."""
    base = m.base
    if base is None or v.base is not base or base.ndim != m.ndim + 1 or base.shape[0] != 2:
        return None
    start, row = base.ctypes.data, base.strides[0]
    at = m.ctypes.data
    if v.ctypes.data != at + row or m.strides != base.strides[1:] or v.strides != m.strides:
        return None
    if m.shape == base.shape[1:] and at == start:
        return base
    if m.ndim != 1 or not base.flags.c_contiguous:
        return None
    lo = (at - start) // m.itemsize
    return base[:, lo:lo + m.shape[0]]


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
        self._coefs, self._pairs = {}, {}   # see _coefficients and _adam

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
