"""Builtin datasets."""

from .. import datasets
from ..ops import Dataset
from ..plugins import hookimpl


@hookimpl
def graphnet_datasets():
    return [Dataset("digits", datasets.load_digits, doc=datasets.load_digits.__doc__)]
