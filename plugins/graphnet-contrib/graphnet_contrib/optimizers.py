"""Optimizers: lion and nadam, one param at a time through Optimizer.update."""

import numpy as np

import graphnet as gn


class Lion(gn.Optimizer):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"):

        c = beta1 * m + (1 - beta1) * g
        theta <- theta - lr * (sign(c) + weight_decay * theta)
        m = beta2 * m + (1 - beta2) * g

    Every coordinate moves by exactly lr (plus decay), so lr is typically 3-10x
    smaller than Adam's. weight_decay is decoupled, as in AdamW.
    """

    name = "lion"

    def __init__(self, lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0):
        super().__init__(lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay)

    def init_state(self, param):
        return {"m": np.zeros_like(param)}

    def update(self, param, grad, state, step):
        m = state["m"]
        c = self.beta1 * m + (1 - self.beta1) * grad
        if self.weight_decay:
            param *= 1 - self.lr * self.weight_decay
        param -= self.lr * np.sign(c)
        m *= self.beta2
        m += (1 - self.beta2) * grad


class NAdam(gn.Optimizer):
    """NAdam (Dozat 2016): Adam with Nesterov momentum, as torch.optim.NAdam.

        mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g^2
        denom = sqrt(v / (1 - beta2^t)) + eps
        theta <- theta - lr * (1 - mu_t) / (1 - prod_{i<=t} mu_i) * g / denom
                       - lr * mu_{t+1} / (1 - prod_{i<=t+1} mu_i) * m / denom
    """

    name = "nadam"

    def __init__(self, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, momentum_decay=4e-3):
        # graphnet checks lr, the betas and eps; momentum_decay is this optimizer's own
        if isinstance(momentum_decay, bool) or not (
                isinstance(momentum_decay, (int, float)) and momentum_decay >= 0):
            raise gn.GraphnetError(f"optimizer 'nadam': momentum_decay must be a number "
                                   f">= 0, got {momentum_decay!r}")
        super().__init__(lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                         momentum_decay=momentum_decay)

    def init_state(self, param):
        # mu_product is a 0-d array so that state_dict() saves it with the rest
        return {"m": np.zeros_like(param), "v": np.zeros_like(param),
                "mu_product": np.ones(())}

    def _mu(self, t):
        return self.beta1 * (1 - 0.5 * 0.96 ** (t * self.momentum_decay))

    def update(self, param, grad, state, step):
        m, v = state["m"], state["v"]
        mu, mu_next = self._mu(step), self._mu(step + 1)
        mu_product = float(state["mu_product"]) * mu
        state["mu_product"][...] = mu_product
        m *= self.beta1
        m += (1 - self.beta1) * grad
        v *= self.beta2
        v += (1 - self.beta2) * grad * grad
        denom = np.sqrt(v / (1 - self.beta2 ** step)) + self.eps
        param -= (self.lr * (1 - mu) / (1 - mu_product)) * grad / denom
        param -= (self.lr * mu_next / (1 - mu_product * mu_next)) * m / denom


OPTIMIZERS = [Lion, NAdam]
