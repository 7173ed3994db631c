"""graphnet: a graph-based neural-network engine on numpy, NetworkX and pluggy.

>>> import graphnet as gn
>>> g = gn.Graph("mlp")
"""

import importlib
import importlib.util

from . import plugins
from .callbacks import Callback, EarlyStopping, LearningRateLogger
from .checkpoint import Checkpoint, load, load_checkpoint, save
from .errors import (CheckpointError, CycleError, DataError, FeedError, GraphError,
                     GraphnetError, PluginError, SchemaError, ShapeError, TrainingError,
                     UnknownNameError, UnknownOpError)
from .gradients import GradcheckReport, gradcheck
from .graph import Graph
from .history import History
from .hookspecs import hookimpl
from .lr_schedules import Schedule
from .model import Model
from .ops import REQUIRED, Activation, Attr, Context, Dataset, Initializer, Op, Param
from .optim import Optimizer
from .plugins import optimizer, schedule
from .render import render
from .runs import RunResult, train_run
from .schema import model_schema
from .sweep import sweep
from .version import __version__


def __getattr__(name):
    """Submodules on first use, so ``import graphnet; graphnet.datasets.load("moons")`` works
    without every module being imported up front."""
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Activation", "Attr", "Callback", "Checkpoint", "CheckpointError", "Context", "CycleError",
    "DataError", "Dataset", "EarlyStopping", "FeedError", "GradcheckReport", "Graph",
    "GraphError", "GraphnetError", "History", "Initializer", "LearningRateLogger", "Model",
    "Op", "Optimizer", "Param", "PluginError", "REQUIRED", "RunResult", "Schedule", "SchemaError",
    "ShapeError", "TrainingError", "UnknownNameError", "UnknownOpError", "gradcheck", "hookimpl",
    "load", "load_checkpoint", "model_schema", "optimizer", "plugins", "render", "save",
    "schedule", "sweep", "train_run",
]
