"""Initializers: how a new param is filled, from the seeded generator.

glorot_* (Glorot and Bengio 2010) suit tanh and sigmoid; he_* (He et al.
2015) suit relu. The normal variants are plain (not truncated) normals.
"""

import numpy as np

from ..hookspecs import hookimpl
from ..ops import Attr, Initializer


MAX_SCALE = 1e6
"""Largest std or limit: beyond it a param is noise that no float32 training recovers from."""


def zeros(rng, shape, fan_in, fan_out):
    return np.zeros(shape)


def ones(rng, shape, fan_in, fan_out):
    return np.ones(shape)


def normal(rng, shape, fan_in, fan_out, std=0.05):
    return rng.normal(0.0, std, shape)


def uniform(rng, shape, fan_in, fan_out, limit=0.05):
    return rng.uniform(-limit, limit, shape)


def glorot_uniform(rng, shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape)


def glorot_normal(rng, shape, fan_in, fan_out):
    return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), shape)


def he_normal(rng, shape, fan_in, fan_out):
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)


def he_uniform(rng, shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, shape)


@hookimpl
def graphnet_initializers():
    return [
        Initializer("zeros", zeros, doc="all zeros", iid=True),
        Initializer("ones", ones, doc="all ones", iid=True),
        Initializer("normal", normal, {"std": Attr(0.05, "float", min=0, max=MAX_SCALE,
                                                   doc="standard deviation")},
                    doc="N(0, std^2)", iid=True),
        Initializer("uniform", uniform, {"limit": Attr(0.05, "float", min=0, max=MAX_SCALE,
                                                       doc="half-width of the interval")},
                    doc="U(-limit, limit)", iid=True),
        Initializer("glorot_uniform", glorot_uniform, doc="U(+-sqrt(6/(fan_in+fan_out)))",
                    iid=True),
        Initializer("glorot_normal", glorot_normal, doc="N(0, 2/(fan_in+fan_out))", iid=True),
        Initializer("he_normal", he_normal, doc="N(0, 2/fan_in)", iid=True),
        Initializer("he_uniform", he_uniform, doc="U(+-sqrt(6/fan_in))", iid=True),
    ]
