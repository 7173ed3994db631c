"""The plugin module that the ``graphnet`` entry point names: one hook per kind."""

import graphnet as gn

from .activations import ACTIVATIONS
from .ops import OPS
from .optimizers import OPTIMIZERS


@gn.hookimpl
def graphnet_activations():
    return list(ACTIVATIONS)


@gn.hookimpl
def graphnet_ops():
    return list(OPS)


@gn.hookimpl
def graphnet_optimizers():
    return list(OPTIMIZERS)
