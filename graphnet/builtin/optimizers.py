"""Builtin optimizers, in order of increasing complexity."""

from ..optim import Optimizer
from ..plugins import hookimpl


class SGD(Optimizer):
    """theta <- theta - lr * g."""

    name = "sgd"

    def __init__(self, lr=0.01):
        super().__init__(lr=lr)

    def update(self, param, grad, state, step):
        param -= self.lr * grad


@hookimpl
def graphnet_optimizers():
    return [SGD]
