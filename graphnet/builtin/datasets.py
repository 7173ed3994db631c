"""Builtin datasets: the shipped digits and wine, and five generated toy sets."""

import inspect

from .. import datasets
from ..ops import Dataset
from ..hookspecs import hookimpl


def _generated(name, fn):
    """A Dataset whose options are the loader's keyword arguments, with their defaults."""
    options = {k: p.default for k, p in inspect.signature(fn).parameters.items()}
    return Dataset(name, fn, doc=inspect.getdoc(fn), options=options)


@hookimpl
def graphnet_datasets():
    return [
        _generated("digits", datasets.load_digits),
        Dataset("wine", datasets.load_wine, doc=inspect.getdoc(datasets.load_wine)),
        _generated("moons", datasets.make_moons),
        _generated("spirals", datasets.make_spirals),
        _generated("xor", datasets.make_xor),
        _generated("sine", datasets.make_sine),
        _generated("function", datasets.make_function),
    ]
