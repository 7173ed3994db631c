"""The exceptions graphnet raises for anything a user's input can cause.

Every message names the thing at fault (a node, an input, a JSON path, a file,
a plugin), what was expected, what was found, and what to do about it.
"""

import difflib
import importlib.metadata
import inspect


class GraphnetError(Exception):
    """Base class: catch this to handle every user-facing graphnet failure.

    ``node`` is the name of the graph node at fault, when there is one, so that
    callers (the JSON loader pointing at ``nodes[3]``, a drawing marking it red)
    need not read the message.

    >>> GraphnetError("node 'fc1': attr 'units' must be >= 1, got 0", node="fc1").node
    'fc1'
    """

    node = None

    def __init__(self, *args, node=None):
        super().__init__(*args)
        if node is not None:
            self.node = node


class GraphError(GraphnetError):
    """A malformed graph: duplicate or unknown names, wrong arity, bad outputs."""


class CycleError(GraphError):
    """The graph has a cycle; the message lists the nodes on it."""


class ShapeError(GraphnetError):
    """Shapes that do not fit an op, found by shape inference."""


class UnknownNameError(GraphnetError):
    """An op, activation, optimizer, schedule, initializer or dataset name nobody registered."""


UnknownOpError = UnknownNameError
"""The name of UnknownNameError in graphnet 0.1, kept so that ``except UnknownOpError`` works."""


class SchemaError(GraphnetError):
    """A model file or dict that does not follow the graphnet JSON form."""


class PluginError(GraphnetError):
    """A plugin that clashes with another, fails to load, returns the wrong kind, or
    raises while it runs (an op's forward or backward, an optimizer's update, ...)."""


class FeedError(GraphnetError):
    """Arrays fed to a model that are missing, unknown, or of the wrong shape or dtype."""


class CheckpointError(GraphnetError):
    """A checkpoint file that is missing, truncated, corrupted or does not fit."""


class DataError(GraphnetError):
    """A dataset or data file that cannot be used as asked."""


class TrainingError(GraphnetError):
    """Training that cannot go on, e.g. a loss or gradient that went non-finite."""


class Terminated(KeyboardInterrupt):
    """SIGTERM asked graphnet to stop. Raised like Ctrl-C, so that every cleanup runs (a
    half-written checkpoint is removed, the previous one stays whole); exit code 143."""


_pending = []   # interrupts raised by the handlers below, until one is seen to end a command


def _raiser(exc_type):
    def stop(signum, frame):
        _pending.append(exc_type)
        raise exc_type()
    return stop


def on_sigterm():
    """Make SIGTERM raise Terminated in the main thread; return the previous handler."""
    import signal
    return signal.signal(signal.SIGTERM, _raiser(Terminated))


def on_sigint():
    """Make Ctrl-C raise KeyboardInterrupt as Python does, and remember it.

    Python drops an exception raised inside a weakref callback, printing "Exception
    ignored" (the import system's module locks have such a callback), so a Ctrl-C
    that lands there is lost and the command runs on. With this handler the
    interrupt is remembered and ``raise_if_interrupted`` raises it again (fit does
    before each epoch); the dropped one is not printed. For the command line."""
    import signal
    import sys

    default = sys.unraisablehook

    def hook(unraisable):
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            default(unraisable)

    sys.unraisablehook = hook
    return signal.signal(signal.SIGINT, _raiser(KeyboardInterrupt))


def raise_if_interrupted():
    """Raise again an interrupt the handlers above raised where Python dropped it."""
    if _pending:
        exc_type = _pending[-1]
        _pending.clear()
        raise exc_type()


def interrupt_seen():
    """An interrupt ended the command as it should: nothing is left to raise again."""
    _pending.clear()


def did_you_mean(name, choices):
    """Return ' (did you mean 'x'?)' for the closest of choices, or ''."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def one_line(exc):
    """An exception (or a warning) as one line, for a terminal or a table cell: its message
    with each run of whitespace made one space, or its type's name when it says nothing.

    >>> one_line(ValueError("node 'fc1':\\n    units must be >= 1"))
    "node 'fc1': units must be >= 1"
    >>> one_line(KeyError())
    'KeyError'
    """
    return " ".join(str(exc).split()) or type(exc).__name__


def origin(obj):
    """Where a plugin object's code comes from, for error messages: its module and the
    distribution that installed it, e.g. "module graphnet_contrib.ops (distribution
    graphnet-contrib 0.1.0)". Only called on error paths (it reads the installed
    distributions)."""
    plain = inspect.isfunction(obj) or inspect.ismethod(obj) or inspect.isclass(obj)
    module = (obj.__module__ if plain else type(obj).__module__) or "?"
    top = module.split(".")[0]
    try:
        dists = importlib.metadata.packages_distributions().get(top) or []
        found = [f"{d} {importlib.metadata.version(d)}" for d in dists]
    except Exception:   # a broken installation must not hide the error being reported
        found = []
    return f"module {module}" + (f" (distribution {', '.join(found)})" if found else "")
