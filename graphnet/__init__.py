"""graphnet: a graph-based neural-network engine on numpy, NetworkX and pluggy.

>>> import graphnet as gn
>>> g = gn.Graph("mlp")
"""

import sys
import types

from .version import __version__

# public name -> the module that defines it, imported on first use: ``import graphnet``
# costs nothing up front, so the command line handles Ctrl-C from its first instant
_HOMES = {
    "Callback": "callbacks", "EarlyStopping": "callbacks", "LearningRateLogger": "callbacks",
    "Checkpoint": "checkpoint", "load": "checkpoint", "load_checkpoint": "checkpoint",
    "save": "checkpoint", "GradcheckReport": "gradients", "gradcheck": "gradients",
    "Graph": "graph", "History": "history", "Model": "model", "hookimpl": "hookspecs",
    "Optimizer": "optim", "optimizer": "plugins", "schedule": "plugins", "render": "render",
    "Schedule": "lr_schedules", "model_schema": "schema", "RunResult": "runs",
    "train_run": "runs", "sweep": "sweep", "to_onnx": "onnx", "from_onnx": "onnx",
    **dict.fromkeys(["CheckpointError", "CycleError", "DataError", "FeedError", "GraphError",
                     "GraphnetError", "PluginError", "SchemaError", "ShapeError",
                     "TrainingError", "UnknownNameError", "UnknownOpError"], "errors"),
    **dict.fromkeys(["REQUIRED", "Activation", "Attr", "Buffer", "Context", "Dataset",
                     "Initializer", "Op", "Param"], "ops"),
}


def __getattr__(name):
    """Public names and submodules on first use (``graphnet.datasets.load("moons")``)."""
    import importlib  # here, not at the top: the command's first instants import nothing
    import importlib.util

    if name in _HOMES:
        value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
        globals()[name] = value
        return value
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """graphnet itself: importing the submodule graphnet.render must not replace the
    function ``graphnet.render`` (the import system sets a package attribute per submodule)."""

    def __setattr__(self, name, value):
        if name in _HOMES and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "Activation", "Attr", "Buffer", "Callback", "Checkpoint", "CheckpointError", "Context",
    "CycleError", "DataError", "Dataset", "EarlyStopping", "FeedError", "GradcheckReport", "Graph",
    "GraphError", "GraphnetError", "History", "Initializer", "LearningRateLogger", "Model",
    "Op", "Optimizer", "Param", "PluginError", "REQUIRED", "RunResult", "Schedule",
    "SchemaError", "ShapeError", "TrainingError", "UnknownNameError", "UnknownOpError",
    "from_onnx", "gradcheck", "hookimpl", "load", "load_checkpoint", "model_schema",
    "optimizer", "plugins", "render", "save", "schedule", "sweep", "to_onnx", "train_run",
]
