"""Builtin datasets (filled in by the datasets module)."""

from ..plugins import hookimpl


@hookimpl
def graphnet_datasets():
    return []
