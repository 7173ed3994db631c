"""The plugin manager: builtins first, then the ``graphnet`` entry points.

graphnet's own ops, activations, losses, optimizers, schedules, initializers and
datasets are plugin modules listed in ``BUILTIN_PLUGINS`` and registered
exactly like a third-party distribution, which plugs in through the
``graphnet`` entry-point group of its ``pyproject.toml``.

The rules, so that no plugin can break graphnet behind a user's back:

- builtins load first, in the order of ``BUILTIN_PLUGINS``; entry points
  after, sorted by distribution and entry-point name (a stable order);
- ``GRAPHNET_DISABLE_PLUGIN_AUTOLOAD=1`` loads the builtins only;
- an entry point that fails to import gives one ``PluginWarning`` naming the
  entry point, its distribution and the exception, is kept in
  ``failures()``, and everything else keeps working;
  ``GRAPHNET_STRICT_PLUGINS=1`` makes that a ``PluginError`` instead;
- an installed plugin whose hook raises (even SystemExit), returns anything
  but a list of the declared kind, or claims a builtin's name gives a
  ``PluginWarning`` naming it and its distribution, and graphnet goes on
  without that hook's or that entry's contribution (``failures()`` lists it);
- two installed plugins that claim one name (an activation and an op share
  one namespace): everything else works, and using that name is a
  ``PluginError`` naming both; a builtin is never replaced;
- ``GRAPHNET_STRICT_PLUGINS=1`` makes each of these a ``PluginError``, and so
  is any of them for a plugin registered at run time with ``register()``.
"""

import importlib
import importlib.metadata
import inspect
import numbers
import os
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import pluggy

from . import hookspecs
from .errors import GraphnetError, PluginError, UnknownNameError, did_you_mean
from .hookspecs import hookimpl
from .ops import Activation, ActivationOp, Attr, Dataset, Initializer, Op
from .optim import Optimizer
from .lr_schedules import Schedule

BUILTIN_PLUGINS = (
    "graphnet.builtin.ops",
    "graphnet.builtin.layers",
    "graphnet.builtin.activations",
    "graphnet.builtin.losses",
    "graphnet.builtin.initializers",
    "graphnet.builtin.optimizers",
    "graphnet.builtin.lr_schedules",
    "graphnet.builtin.datasets",
)

ENTRY_POINT_GROUP = "graphnet"

# kind -> the hook that returns things of that kind
KINDS = {
    "op": "graphnet_ops",
    "activation": "graphnet_activations",
    "optimizer": "graphnet_optimizers",
    "schedule": "graphnet_schedules",
    "initializer": "graphnet_initializers",
    "dataset": "graphnet_datasets",
}

OP_KINDS = ("layer", "activation", "merge", "shape", "loss", "input")

_FALSE = ("", "0", "false", "no", "off")


def _flag(name):
    """True when the environment variable is set to anything but 0/false/no/off."""
    return os.environ.get(name, "").strip().lower() not in _FALSE


@dataclass(frozen=True)
class Entry:
    """One registered name: what it is, and which plugin and distribution gave it."""

    kind: str
    name: str
    obj: object
    plugin: str
    distribution: str = None
    version: str = None

    @property
    def doc(self):
        """The first line of the object's documentation, or ''."""
        doc = getattr(self.obj, "doc", "") or inspect.getdoc(self.obj) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    def to_dict(self):
        """Plain data for ``graphnet plugins --json``."""
        return {"kind": self.kind, "name": self.name, "plugin": self.plugin,
                "distribution": self.distribution, "version": self.version, "doc": self.doc}


class Failure(NamedTuple):
    """An entry point that failed to load: its name, its distribution, the warning text."""

    entry_point: str
    distribution: str
    message: str


class PluginWarning(UserWarning):
    """A plugin failed to load; graphnet goes on without it."""


def _describe(plugin, dists):
    """'name' or 'name (distribution version)', for error messages."""
    dist, version = dists.get(plugin, (None, None))
    if dist is None:
        return repr(plugin)
    return f"{plugin!r} (distribution {dist}{' ' + version if version else ''})"


class Registry:
    """Everything the plugins registered, merged by name, with provenance."""

    def __init__(self):
        self.pm = pluggy.PluginManager("graphnet")
        self.pm.add_hookspecs(hookspecs)
        self.dists = {}       # plugin name -> (distribution, version)
        self.failures = []    # Failure per entry point that did not load, or hook refused
        self.installed = set()  # plugin names that came from entry points
        self.clashes = {}     # (kind, name) -> plugins that all claim it
        self._load_failures = 0
        self._tables = None
        self._building = None  # the plugin whose hook is being called, while tables build
        self._loaded = False

    # --- loading -------------------------------------------------------
    def load(self, entry_points=True):
        """Register the builtins, then (unless disabled) the entry points. Idempotent.

        ``entry_points=False`` loads the builtins alone, whatever is installed (the
        committed schema is generated so).

        Raises PluginError in strict mode; the registry is then left unloaded,
        so that the next use raises again instead of running half-loaded.
        """
        if self._loaded:
            return self
        version = None   # graphnet's, read once (each read parses its metadata file)
        for modname in BUILTIN_PLUGINS:
            if self.pm.get_plugin(modname) is None:
                self.pm.register(importlib.import_module(modname), name=modname)
                version = version or _version("graphnet")
                self.dists[modname] = ("graphnet", version)
        if entry_points and not _flag("GRAPHNET_DISABLE_PLUGIN_AUTOLOAD"):
            self._load_entry_points()
        self._load_failures = len(self.failures)
        self._loaded = True
        return self

    def _load_entry_points(self):
        strict = _flag("GRAPHNET_STRICT_PLUGINS")
        seen = {}  # entry-point name -> distribution that registered it
        for ep in _entry_points():
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            dist_version = dist.version if dist is not None else None
            where = (f"graphnet plugin {ep.name!r} (entry point '{ep.name} = {ep.value}' of "
                     f"distribution {dist_name or '?'}{' ' + dist_version if dist_version else ''})")
            try:
                if ep.name in seen or ep.name in BUILTIN_PLUGINS:
                    owner = ("graphnet itself" if ep.name in BUILTIN_PLUGINS
                             else f"distribution {seen[ep.name]}")
                    raise PluginError(f"it uses the plugin name {ep.name!r}, which {owner} "
                                      f"already uses; rename one of the two entry points")
                plugin = ep.load()
                if self.pm.is_registered(plugin):
                    raise PluginError(f"it names the same object as plugin "
                                      f"{self.pm.get_name(plugin)!r}")
                self.pm.register(plugin, name=ep.name)
                _check_hooks(self.pm, ep.name)
            except BaseException as exc:  # a broken plugin must not take graphnet down
                if isinstance(exc, KeyboardInterrupt):
                    raise
                if self.pm.get_plugin(ep.name) is not None and ep.name not in seen:
                    self.pm.unregister(name=ep.name)
                self._skip(ep.name, dist_name, f"{where} failed to load: "
                           f"{type(exc).__name__}: {exc}", exc, strict=strict)
                continue
            seen[ep.name] = dist_name
            self.dists[ep.name] = (dist_name, dist_version)
            self.installed.add(ep.name)

    def _skip(self, plugin, dist_name, message, cause=None, strict=None):
        """An installed plugin's failure: a PluginError in strict mode, else one warning
        and a Failure, and graphnet goes on without the part that failed."""
        if strict is None:
            strict = _flag("GRAPHNET_STRICT_PLUGINS")
        if strict:
            raise PluginError(message + " (GRAPHNET_STRICT_PLUGINS is set; unset it "
                              "to go on without this plugin)") from cause
        self.failures.append(Failure(plugin, dist_name, message))
        warnings.warn(message + "; graphnet goes on without it "
                      "(GRAPHNET_STRICT_PLUGINS=1 makes this an error)",
                      PluginWarning, stacklevel=3)

    def _tolerated(self, plugin):
        """True for an installed (entry-point) plugin outside strict mode: its failures are
        warnings; a builtin's or a register()ed plugin's are errors."""
        return plugin in self.installed and not _flag("GRAPHNET_STRICT_PLUGINS")

    def register(self, plugin, name=None):
        """Register a module or object with hook functions (or Ops, Activations,
        Optimizer classes, Initializers, Datasets directly), at run time.

        Everything the plugin adds is checked at once: a clash or a bad hook
        raises PluginError and leaves the registry as it was. Returns the name.
        """
        self.load()
        plugin, default = _as_plugin(plugin)
        name = name or default
        if self.pm.get_plugin(name) is not None:
            raise PluginError(f"a plugin named {name!r} is already registered; pass another "
                              f"name, or unregister({name!r}) first")
        if self.pm.is_registered(plugin):
            raise PluginError(f"this plugin is already registered as "
                              f"{self.pm.get_name(plugin)!r}")
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            hint = (" (pass an instance or a module, not a class)"
                    if inspect.isclass(plugin) else "")
            raise PluginError(f"plugin {name!r} could not be registered: {exc}{hint}") from exc
        try:
            _check_hooks(self.pm, name)
            self._tables = None
            self.tables()
        except PluginError:
            self.pm.unregister(name=name)
            self._tables = None
            raise
        return name

    def unregister(self, name):
        """Remove a plugin registered by name (builtins stay: they are graphnet)."""
        if name in BUILTIN_PLUGINS:
            raise PluginError(f"{name!r} is one of graphnet's builtins and cannot be "
                              f"unregistered; set GRAPHNET_DISABLE_PLUGIN_AUTOLOAD=1 to run "
                              f"without third-party plugins instead")
        if self.pm.get_plugin(name) is None:
            known = [n for n, _ in self.pm.list_name_plugin() if n not in BUILTIN_PLUGINS]
            raise PluginError(f"no plugin named {name!r} is registered"
                              f"{did_you_mean(name, known)}; registered: "
                              f"{', '.join(known) or 'only the builtins'}")
        self.pm.unregister(name=name)
        self.dists.pop(name, None)
        self._tables = None

    # --- tables ----------------------------------------------------------
    def tables(self):
        """{kind: {name: Entry}}, built once per change of the registered plugins.

        Activations also appear in the "op" table, wrapped into elementwise
        ops: ops and activations share one namespace.
        """
        if self._tables is None:
            self.load()
            if self._building:
                raise PluginError(f"plugin {self._building!r} looked up a registered name "
                                  f"inside a hook; a hook must only return its own objects")
            try:
                self._tables = self._build()
            except PluginError as exc:
                if any(name not in BUILTIN_PLUGINS for name in self.dists):
                    # an installed plugin may be at fault: say how to get going again
                    raise PluginError(f"{exc} (GRAPHNET_DISABLE_PLUGIN_AUTOLOAD=1 runs graphnet "
                                      f"with its builtins only)") from exc
                raise
            finally:
                self._building = None
        return self._tables

    def _build(self):
        """Call every hook, check what it returns, merge by name."""
        tables = {kind: {} for kind in KINDS}
        self.clashes = {}
        del self.failures[self._load_failures:]  # hooks' failures are found again below
        for kind, hook in KINDS.items():
            # registration order: builtins first, so a clash names the builtin first
            for impl in getattr(self.pm.hook, hook).get_hookimpls():
                plugin = impl.plugin_name
                try:
                    result = self._call(impl, hook)
                except PluginError as exc:
                    self._refuse(plugin, exc)
                    continue
                for obj in result:
                    try:
                        obj = _check(kind, obj, _describe(plugin, self.dists), hook)
                        self._add(tables, kind, obj, plugin)
                    except PluginError as exc:
                        self._refuse(plugin, exc)
        for name, entry in list(tables["activation"].items()):
            other = tables["op"].get(name)
            if other is not None and self._tolerated(other.plugin) and not self._tolerated(
                    entry.plugin):  # an installed op claims a builtin activation's name
                self._refuse(other.plugin, PluginError(
                    f"op {name!r} of {_describe(other.plugin, self.dists)} claims the name "
                    f"of the activation from {_describe(entry.plugin, self.dists)}"))
                tables["op"].pop(name)
            if other is not None and name in tables["op"] or ("op", name) in self.clashes:
                first = other.plugin if other is not None else entry.plugin
                try:
                    self._clash("op", name, first, entry.plugin, tables,
                                f"op from {_describe(first, self.dists)} and activation "
                                f"from {_describe(entry.plugin, self.dists)}; ops and "
                                f"activations share one namespace")
                except PluginError as exc:
                    self._refuse(entry.plugin, exc)
                tables["activation"].pop(name, None)
                continue
            tables["op"][name] = Entry("op", name, ActivationOp(entry.obj), entry.plugin,
                                       entry.distribution, entry.version)
        return tables

    def _refuse(self, plugin, exc):
        """A hook's contribution refused: raise, unless the plugin's failures are tolerated."""
        if plugin not in self.installed:
            raise exc
        self._skip(plugin, self.dists.get(plugin, (None,))[0], str(exc), exc)

    def _clash(self, kind, name, other, plugin, tables, both):
        """Two plugins claim one name. Between two installed plugins the name is set aside
        (using it is an error naming both); against a builtin or a register()ed plugin the
        newcomer is refused."""
        message = (f"{kind} {name!r} is claimed by two plugins: {both}; uninstall or "
                   f"unregister one of them")
        if not (self._tolerated(other) and self._tolerated(plugin)):
            raise PluginError(message)
        claimants = self.clashes.setdefault((kind, name), [other])
        if plugin not in claimants:
            claimants.append(plugin)
        tables[kind].pop(name, None)
        if len(claimants) == 2:
            warnings.warn(message + f"; graphnet goes on, but {name!r} cannot be used",
                          PluginWarning, stacklevel=4)

    def _call(self, impl, hook):
        self._building = impl.plugin_name
        try:
            result = impl.function()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit too: a hook must not end graphnet
            raise PluginError(f"plugin {_describe(impl.plugin_name, self.dists)} raised in "
                              f"{hook}(): {type(exc).__name__}: {exc}") from exc
        if result is None:
            return []
        if not isinstance(result, (list, tuple)):
            raise PluginError(f"plugin {_describe(impl.plugin_name, self.dists)}: {hook}() "
                              f"must return a list, got {type(result).__name__}")
        return result

    def _add(self, tables, kind, obj, plugin):
        name = obj.name
        if name in tables[kind] or (kind, name) in self.clashes:
            other = tables[kind][name].plugin if name in tables[kind] else plugin
            self._clash(kind, name, other, plugin, tables,
                        f"{_describe(other, self.dists)} and {_describe(plugin, self.dists)}")
            return
        dist, version = self.dists.get(plugin, (None, None))
        tables[kind][name] = Entry(kind, name, obj, plugin, dist, version)

    def get(self, kind, name):
        """The object registered as ``name`` of this kind, or UnknownNameError."""
        table = self.tables()[_kind(kind)]
        entry = table.get(name)
        claimants = self.clashes.get((kind, name)) or (self.clashes.get(
            ("activation" if kind == "op" else "op", name)) if kind in ("op", "activation")
            else None)
        if entry is None and claimants:
            raise PluginError(f"{kind} {name!r} is claimed by several installed plugins: "
                              f"{' and '.join(_describe(p, self.dists) for p in claimants)}; "
                              f"uninstall one of them to use it")
        if entry is None:
            known = ", ".join(sorted(table)) or "none"
            raise UnknownNameError(
                f"unknown {kind} {name!r}{did_you_mean(name, table)}; no installed plugin "
                f"provides it (install the plugin that does, or see `graphnet plugins`). "
                f"Registered {kind}s: {known}")
        return entry.obj

    def entries(self, kind=None):
        """Every registered Entry, sorted by kind and name (or of one kind).

        Activations are listed once, as activations, although ``get("op", name)``
        also finds their elementwise op.
        """
        tables = self.tables()
        kinds = [_kind(kind)] if kind else list(KINDS)
        out = []
        for k in kinds:
            for name, entry in sorted(tables[k].items()):
                if k == "op" and kind is None and name in tables["activation"]:
                    continue
                out.append(entry)
        return out


def _kind(kind):
    if kind not in KINDS:
        raise PluginError(f"unknown plugin kind {kind!r}{did_you_mean(kind, KINDS)}; kinds "
                          f"are: {', '.join(KINDS)}")
    return kind


def _entry_points():
    """The ``graphnet`` entry points, in a stable order (distribution, then name)."""
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)

    def key(ep):
        dist = getattr(ep, "dist", None)
        return ((dist.metadata["Name"] or "").lower() if dist is not None else "", ep.name)

    return sorted(eps, key=key)


def _check_hooks(pm, name):
    """A plugin must implement at least one hook, and only real ones: pluggy alone
    would quietly keep a typo such as ``graphnet_activation`` as a hook nobody
    calls, and register a module whose functions lack ``@graphnet.hookimpl``."""
    callers = pm.get_hookcallers(pm.get_plugin(name)) or ()
    hooks = ", ".join(KINDS.values())
    for caller in callers:
        if caller.spec is None:
            raise PluginError(f"plugin {name!r} implements {caller.name}(), which is not a "
                              f"graphnet hook{did_you_mean(caller.name, KINDS.values())}; the "
                              f"hooks are: {hooks}")
    if not callers:
        raise PluginError(f"plugin {name!r} implements no graphnet hook; mark its functions "
                          f"with @graphnet.hookimpl and name them after a hook: {hooks}")


def _check(kind, obj, who, hook):
    """Check one thing a hook returned against its declared kind; return it ready to use.
    ``who`` describes the plugin (name and distribution) for the message."""
    bad = f"plugin {who}: {hook}() returned {obj!r}"
    if kind == "op":
        if inspect.isclass(obj) and issubclass(obj, Op):
            try:
                obj = obj()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                raise PluginError(f"{bad}, which cannot be instantiated without arguments: "
                                  f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(obj, Op):
            hint = (" (an Activation belongs in graphnet_activations())"
                    if isinstance(obj, Activation) else "")
            raise PluginError(f"{bad}; it must return graphnet.Op subclasses or instances"
                              f"{hint}")
        _check_name(obj, bad)
        if obj.n_inputs is not None and not (isinstance(obj.n_inputs, int)
                                             and obj.n_inputs >= 0):
            raise PluginError(f"{bad}: n_inputs must be a count or None, got {obj.n_inputs!r}")
        if not isinstance(obj.attrs, dict) or not all(
                isinstance(a, Attr) for a in obj.attrs.values()):
            raise PluginError(f"{bad}: attrs must be a dict of graphnet.Attr")
        if obj.kind not in OP_KINDS:
            raise PluginError(f"{bad}: kind must be one of {', '.join(OP_KINDS)}, got "
                              f"{obj.kind!r}")
        label = getattr(obj, "label_attr", None)
        if label is not None and label not in obj.attrs:
            raise PluginError(f"{bad}: label_attr {label!r} is not one of its attrs "
                              f"({', '.join(obj.attrs) or 'none'}); name one or leave it None")
        return obj
    if kind == "activation":
        if not isinstance(obj, Activation):
            raise PluginError(f"{bad}; it must return graphnet.Activation objects")
        _check_name(obj, bad)
        if not (callable(obj.fn) and callable(obj.derivative)):
            raise PluginError(f"{bad}: fn and derivative must be callables")
        return obj
    if kind in ("optimizer", "schedule"):
        base = {"optimizer": Optimizer, "schedule": Schedule}[kind]
        if not (inspect.isclass(obj) and issubclass(obj, base)):
            hint = " (return the class, not an instance)" if isinstance(obj, base) else ""
            raise PluginError(f"{bad}; it must return graphnet.{base.__name__} subclasses{hint}")
        _check_name(obj, bad)
        return obj
    expected = {"initializer": Initializer, "dataset": Dataset}[kind]
    if not isinstance(obj, expected):
        raise PluginError(f"{bad}; it must return graphnet.{expected.__name__} objects")
    _check_name(obj, bad)
    return obj


def _check_name(obj, bad):
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise PluginError(f"{bad}, whose name is {name!r}; give it a non-empty name "
                          f"without surrounding spaces")


def _as_plugin(obj):
    """(plugin, default name) for register(): modules and hook objects as they are;
    an Op, Activation, Optimizer or Schedule class, Initializer or Dataset (or a list of them)
    wrapped into a plugin object with the right hooks."""
    items = obj if isinstance(obj, (list, tuple)) else [obj]
    kinds = [kind_of(item) for item in items]
    if items and all(kinds):
        class RuntimePlugin:
            """Hooks returning what was passed to graphnet.plugins.register()."""

        for kind in dict.fromkeys(kinds):
            things = [item for item, k in zip(items, kinds) if k == kind]
            setattr(RuntimePlugin, KINDS[kind],
                    staticmethod(hookimpl(lambda things=things: list(things))))
        names = ",".join(str(getattr(item, "name", "?")) for item in items)
        return RuntimePlugin(), f"runtime:{names}"
    default = getattr(obj, "__name__", None) or type(obj).__name__
    return obj, default


def kind_of(obj):
    """The registry kind of a thing a hook may return ("op", "optimizer", ...), or None."""
    if isinstance(obj, Activation):
        return "activation"
    if isinstance(obj, Op) or (inspect.isclass(obj) and issubclass(obj, Op)):
        return "op"
    if inspect.isclass(obj) and issubclass(obj, Optimizer):
        return "optimizer"
    if inspect.isclass(obj) and issubclass(obj, Schedule):
        return "schedule"
    if isinstance(obj, Initializer):
        return "initializer"
    if isinstance(obj, Dataset):
        return "dataset"
    return None


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
        reg = Registry().load()  # may raise in strict mode: then nothing is kept
        _registry = reg
    return _registry


def reset():
    """Forget every plugin and load again from scratch on next use (tests, and after
    installing a distribution or changing GRAPHNET_* variables in a running process)."""
    global _registry
    _registry = None


def register(plugin, name=None):
    """Register plugins at run time (a notebook, a script): returns the plugin's name.

    ``plugin`` is a module or object with ``@graphnet.hookimpl`` functions, or
    directly an Activation, an Op (class or instance), an Optimizer subclass,
    an Initializer, a Dataset, or a list of them. A clash with a registered
    name raises PluginError and registers nothing.

    >>> import graphnet as gn
    >>> gn.plugins.register(gn.Activation("cube", lambda x: x**3, lambda x, y: 3 * x**2))
    'runtime:cube'
    >>> gn.plugins.unregister("runtime:cube")
    """
    return registry().register(plugin, name)


def unregister(name):
    """Remove a plugin that ``register`` (or an entry point) added."""
    registry().unregister(name)


def entries(kind=None):
    """Every registered name as an Entry (kind, name, obj, plugin, distribution, version).

    >>> [e.distribution for e in entries("activation") if e.name == "tanh"]
    ['graphnet']
    """
    return registry().entries(kind)


def failures():
    """Entry points that failed to load, as Failure(entry_point, distribution, message)."""
    return [*registry().failures]


def get(kind, name):
    """The object registered as ``name`` of ``kind`` ("op", "activation", ...)."""
    return registry().get(kind, name)


# --- building optimizers and schedules by name ---------------------------------

def optimizer(name, **hyper):
    """Build a registered optimizer by name: ``optimizer("adam", lr=1e-3)``.

    Unknown hyperparameter names are refused with a did-you-mean.
    ``clip_norm`` works for every optimizer, builtin or not, and ``lr`` may be
    a schedule's dict form (``{"name": "cosine", "lr": 0.1, "steps": 100}``).

    >>> optimizer("momentum", lr=0.1, beta=0.9)
    Momentum(lr=0.1, beta=0.9, nesterov=False)
    """
    cls = get("optimizer", name)
    clip_norm = hyper.pop("clip_norm", None)
    check_names(f"optimizer {name!r}", cls, hyper)
    if isinstance(hyper.get("lr"), dict):
        hyper["lr"] = as_schedule(hyper["lr"], where=f"optimizer {name!r}: lr")
    opt = cls(**hyper)
    if clip_norm is not None:
        opt.set_clip_norm(clip_norm)
    return opt


def schedule(name, **config):
    """Build a registered schedule by name: ``schedule("cosine", lr=0.1, steps=1000)``.

    Unknown settings are refused with a did-you-mean.
    """
    cls = get("schedule", name)
    check_names(f"schedule {name!r}", cls, config)
    return cls(**config)


def as_schedule(value, where="lr"):
    """A Schedule from a Schedule, its dict form ``{"name": ..., ...}`` or a constant number."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, dict):
        config = dict(value)
        name = config.pop("name", None)
        if not isinstance(name, str):
            raise GraphnetError(f"{where}: a schedule given as a dict needs a 'name' (one of "
                                f"the registered schedules, e.g. 'cosine'), got {value!r}")
        return schedule(name, **config)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return schedule("constant", lr=value)
    raise GraphnetError(f"{where}: expected a number, a graphnet.Schedule or a schedule dict, "
                        f"got {value!r}")


def check_names(what, cls, given):
    """Refuse keyword names that ``cls.__init__`` does not take, with a did-you-mean."""
    sig = inspect.signature(cls.__init__)
    params = [p for p in list(sig.parameters.values())[1:]
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    known = [p.name for p in params]
    for key in given:
        if key not in known:
            raise GraphnetError(f"{what} has no hyperparameter {key!r}"
                                f"{did_you_mean(key, known)}; it takes {', '.join(known)}")
