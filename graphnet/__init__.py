"""graphnet: a graph-based neural-network engine on numpy, NetworkX and pluggy.

>>> import graphnet as gn
>>> g = gn.Graph("mlp")
"""

from . import plugins
from .callbacks import Callback, EarlyStopping, LearningRateLogger
from .errors import (CheckpointError, CycleError, DataError, FeedError, GraphError,
                     GraphnetError, PluginError, SchemaError, ShapeError, TrainingError,
                     UnknownOpError)
from .gradients import GradcheckReport, gradcheck
from .graph import Graph
from .model import Model
from .ops import REQUIRED, Activation, Attr, Context, Dataset, Initializer, Op, Param
from .optim import Optimizer, optimizer
from .plugins import hookimpl
from .render import render
from .schedules import Schedule, schedule
from .serialize import Checkpoint, load, load_checkpoint, model_schema, save
from .train import History

__version__ = "0.1.0"

__all__ = [
    "Activation", "Attr", "CheckpointError", "Context", "CycleError", "DataError", "Dataset",
    "FeedError", "GradcheckReport", "Graph", "GraphError", "GraphnetError", "Initializer",
    "Model", "Op", "Optimizer", "Param", "PluginError", "REQUIRED", "SchemaError",
    "ShapeError", "TrainingError", "UnknownOpError", "gradcheck", "hookimpl", "optimizer",
    "plugins", "render",
]

# training: schedules, the fit loop's History and callbacks
__all__ += ["Callback", "EarlyStopping", "History", "LearningRateLogger", "Schedule", "schedule"]
# model files and checkpoints
__all__ += ["Checkpoint", "load", "load_checkpoint", "model_schema", "save"]
