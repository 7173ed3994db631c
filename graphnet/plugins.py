"""The plugin manager: builtins first, then the ``graphnet`` entry points.

graphnet's own ops, activations, losses, optimizers, initializers and
datasets are plugin modules listed in ``BUILTIN_PLUGINS`` and registered
exactly like a third-party distribution. Set ``GRAPHNET_DISABLE_PLUGIN_AUTOLOAD=1``
to load the builtins only, and ``GRAPHNET_STRICT_PLUGINS=1`` to make a plugin
that fails to load an error instead of a warning.
"""

import builtins
import importlib
import importlib.metadata
import inspect
import os
import warnings
from dataclasses import dataclass

import pluggy

from . import hookspecs
from .errors import PluginError, UnknownOpError, did_you_mean
from .ops import Activation, Dataset, ElementwiseOp, Initializer, Op

hookimpl = pluggy.HookimplMarker("graphnet")

BUILTIN_PLUGINS = (
    "graphnet.builtin.ops",
    "graphnet.builtin.activations",
    "graphnet.builtin.losses",
    "graphnet.builtin.initializers",
    "graphnet.builtin.optimizers",
    "graphnet.builtin.schedules",
    "graphnet.builtin.datasets",
)

ENTRY_POINT_GROUP = "graphnet"

# kind -> (hook name, what each item must be)
KINDS = {
    "op": "graphnet_ops",
    "activation": "graphnet_activations",
    "optimizer": "graphnet_optimizers",
    "schedule": "graphnet_schedules",
    "initializer": "graphnet_initializers",
    "dataset": "graphnet_datasets",
}


@dataclass(frozen=True)
class Entry:
    """One registered name: what it is, and which plugin and distribution gave it."""

    kind: str
    name: str
    obj: object
    plugin: str
    distribution: str = None
    version: str = None


class PluginWarning(UserWarning):
    """A plugin failed to load; graphnet goes on without it."""


class Registry:
    """Everything the plugins registered, merged by name, with provenance."""

    def __init__(self):
        self.pm = pluggy.PluginManager("graphnet")
        self.pm.add_hookspecs(hookspecs)
        self.dists = {}       # plugin name -> (distribution, version)
        self.failures = []    # (entry point, distribution, message)
        self._tables = None
        self._loaded = False

    # --- loading -------------------------------------------------------
    def load(self):
        """Register the builtins, then (unless disabled) the entry points. Idempotent."""
        if self._loaded:
            return self
        self._loaded = True
        for modname in BUILTIN_PLUGINS:
            self.pm.register(importlib.import_module(modname), name=modname)
            self.dists[modname] = ("graphnet", _version("graphnet"))
        if not os.environ.get("GRAPHNET_DISABLE_PLUGIN_AUTOLOAD"):
            self._load_entry_points()
        return self

    def _load_entry_points(self):
        strict = bool(os.environ.get("GRAPHNET_STRICT_PLUGINS"))
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            dist_version = dist.version if dist is not None else None
            if self.pm.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
            except Exception as exc:  # a broken plugin must not take graphnet down
                message = (f"graphnet plugin {ep.name!r} (entry point {ep.value!r} of "
                           f"distribution {dist_name or '?'}) failed to load: "
                           f"{type(exc).__name__}: {exc}")
                if strict:
                    raise PluginError(message + " (GRAPHNET_STRICT_PLUGINS is set)") from exc
                self.failures.append((ep.name, dist_name, message))
                warnings.warn(message, PluginWarning, stacklevel=3)
                continue
            self.dists[ep.name] = (dist_name, dist_version)

    def register(self, plugin, name=None):
        """Register a module or object with hook functions, at run time."""
        self.load()
        name = name or getattr(plugin, "__name__", None) or f"plugin-{id(plugin)}"
        if self.pm.get_plugin(name) is not None:
            raise PluginError(f"a plugin named {name!r} is already registered; "
                              f"pass another name")
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            raise PluginError(f"plugin {name!r} could not be registered: {exc}") from exc
        self._tables = None
        try:
            self.tables()
        except PluginError:
            self.pm.unregister(name=name)
            self._tables = None
            raise
        return name

    def unregister(self, name):
        """Remove a plugin registered by name."""
        self.pm.unregister(name=name)
        self.dists.pop(name, None)
        self._tables = None

    # --- tables ----------------------------------------------------------
    def tables(self):
        """{kind: {name: Entry}}, built once per change of the registered plugins."""
        if self._tables is None:
            self.load()
            tables = {kind: {} for kind in KINDS}
            for kind, hook in KINDS.items():
                for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
                    for obj in self._call(impl, hook):
                        self._add(tables, kind, obj, impl.plugin_name)
            # activations become elementwise ops of the same name
            for name, entry in tables["activation"].items():
                op = ElementwiseOp(entry.obj)
                self._add(tables, "op", op, entry.plugin, check_name=name)
            self._tables = tables
        return self._tables

    def _call(self, impl, hook):
        try:
            result = impl.function()
        except Exception as exc:
            raise PluginError(f"plugin {impl.plugin_name!r} raised in {hook}(): "
                              f"{type(exc).__name__}: {exc}") from exc
        if result is None:
            return []
        if not isinstance(result, (builtins.list, tuple)):
            raise PluginError(f"plugin {impl.plugin_name!r}: {hook}() must return a list, "
                              f"got {type(result).__name__}")
        return result

    def _add(self, tables, kind, obj, plugin, check_name=None):
        expected = {"op": Op, "activation": Activation, "initializer": Initializer,
                    "dataset": Dataset}.get(kind)
        if kind == "op" and inspect.isclass(obj) and issubclass(obj, Op):
            obj = obj()
        if kind in ("optimizer", "schedule"):  # classes, built with hyperparameters
            from .optim import Optimizer
            from .schedules import Schedule
            base = Optimizer if kind == "optimizer" else Schedule
            ok = inspect.isclass(obj) and issubclass(obj, base)
            what = f"graphnet.{base.__name__} subclasses"
        else:
            ok = isinstance(obj, expected)
            what = f"graphnet.{expected.__name__} objects"
        if not ok:
            raise PluginError(f"plugin {plugin!r}: {KINDS[kind]}() must return {what}, "
                              f"got {obj!r}")
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r}: {KINDS[kind]}() returned {obj!r} "
                              f"without a name")
        if name in tables[kind]:
            other = tables[kind][name].plugin
            raise PluginError(f"{kind} {name!r} is claimed by two plugins: {other!r} and "
                              f"{plugin!r}; uninstall or unregister one of them")
        dist, version = self.dists.get(plugin, (None, None))
        tables[kind][name] = Entry(kind, name, obj, plugin, dist, version)

    def get(self, kind, name):
        """The object registered as ``name`` of this kind, or UnknownOpError."""
        table = self.tables()[kind]
        entry = table.get(name)
        if entry is None:
            known = ", ".join(sorted(table)) or "none"
            raise UnknownOpError(
                f"unknown {kind} {name!r}{did_you_mean(name, table)}; no installed plugin "
                f"provides it. Registered {kind}s: {known}")
        return entry.obj

    def list(self, kind=None):
        """Every registered Entry, sorted by kind and name (or of one kind)."""
        kinds = [kind] if kind else builtins.list(KINDS)
        return [e for k in kinds for _, e in sorted(self.tables()[k].items())]


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


_registry = None


def registry():
    """The process-wide Registry, loaded on first use."""
    global _registry
    if _registry is None:
        _registry = Registry()
    return _registry.load()


def reset():
    """Forget every plugin and load again from scratch (tests, environment changes)."""
    global _registry
    _registry = None


def register(plugin, name=None):
    """Register a module or object with ``@graphnet.hookimpl`` functions now.

    >>> import graphnet as gn
    >>> class Mine:
    ...     @gn.hookimpl
    ...     def graphnet_activations(self):
    ...         return [gn.Activation("cube", lambda x: x**3, lambda x, y: 3 * x**2)]
    >>> gn.plugins.register(Mine(), name="mine")  # doctest: +SKIP
    """
    return registry().register(plugin, name)


def unregister(name):
    """Remove a plugin that ``register`` added."""
    registry().unregister(name)


def list(kind=None):  # noqa: A001 - the public name DESIGN.md asks for
    """Every registered name as an Entry (kind, name, obj, plugin, distribution, version)."""
    return registry().list(kind)


def failures():
    """Plugins that failed to load: (entry point, distribution, message) each."""
    return [*registry().failures]


def get(kind, name):
    """The object registered as ``name`` of ``kind`` ("op", "activation", ...)."""
    return registry().get(kind, name)
