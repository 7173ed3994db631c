"""The plugin API: one hook per kind of thing a plugin can add to graphnet.

Every builtin op, activation, loss, optimizer, schedule, initializer and dataset comes
through these hooks, registered exactly like a third-party plugin. A plugin is
any module or object with functions named after these hooks and marked with
``graphnet.hookimpl``. A distribution makes itself known through the
``graphnet`` entry-point group in its ``pyproject.toml``::

    [project.entry-points.graphnet]
    myplugin = "my_package.plugin"

Each hook takes no arguments and returns a list. graphnet calls the hook of
every registered plugin separately and merges the lists by name: two plugins
that claim the same name raise ``PluginError`` naming both (a builtin is never
silently replaced; ops and activations share one namespace). A plugin that
has nothing of a kind simply does not implement that hook.

A hook must return its own objects and nothing else: one that raises, returns
something other than a list of its declared kind, or looks names up in the
registry while graphnet is collecting them, raises ``PluginError`` naming the
plugin and the hook. A marked function whose name is not one of the hooks
below is refused too (pluggy alone would quietly ignore the typo).
docs/plugins.md is the plugin author's guide.
"""

import pluggy

hookspec = pluggy.HookspecMarker("graphnet")

hookimpl = pluggy.HookimplMarker("graphnet")
"""Marks a plugin's hook functions: ``@graphnet.hookimpl def graphnet_ops(): ...``."""


@hookspec
def graphnet_ops():
    """Return a list of ``graphnet.Op`` subclasses (or instances) to register.

    A subclass is instantiated without arguments.

    Ops are the nodes of a graph: layers with params (``dense``), merges
    (``add``, ``concat``), reshapes, and losses (an op whose output shape is
    ``()``). The op's ``name`` is what ``Graph.add`` and model files use.

    Example::

        @graphnet.hookimpl
        def graphnet_ops():
            return [Square()]
    """


@hookspec
def graphnet_activations():
    """Return a list of ``graphnet.Activation`` objects to register.

    An activation gives only ``fn(x)`` and ``derivative(x, y)`` (the
    derivative f'(x), given x and y = f(x)); graphnet wraps it into an
    elementwise op of the same name. Keyword attrs (``alpha``) are declared in
    ``attrs`` with their defaults and passed to both functions.

    Example::

        @graphnet.hookimpl
        def graphnet_activations():
            return [graphnet.Activation("cube", fn=lambda x: x**3,
                                        derivative=lambda x, y: 3 * x**2)]
    """


@hookspec
def graphnet_optimizers():
    """Return a list of ``graphnet.Optimizer`` subclasses (the classes, not instances).

    Each class has a ``name`` and takes its hyperparameters as keyword
    arguments; ``graphnet.optimizer(name, **hyper)`` builds one.

    Example::

        @graphnet.hookimpl
        def graphnet_optimizers():
            return [SignSGD]
    """


@hookspec
def graphnet_schedules():
    """Return a list of ``graphnet.Schedule`` subclasses to register.

    A schedule maps the update number ``t`` (0 for the first) to a learning
    rate; each class has a ``name`` and takes its settings as keyword
    arguments. ``graphnet.schedule(name, **settings)`` builds one, and any
    optimizer takes it (or its dict form ``{"name": ..., ...}``) as ``lr``.

    Example::

        @graphnet.hookimpl
        def graphnet_schedules():
            return [Halving]
    """


@hookspec
def graphnet_initializers():
    """Return a list of ``graphnet.Initializer`` objects to register.

    An initializer turns ``(rng, shape, fan_in, fan_out, **attrs)`` into a
    float64 array; ops name them in their ``init`` attrs (``"he_normal"``).

    Example::

        @graphnet.hookimpl
        def graphnet_initializers():
            return [graphnet.Initializer("halves", lambda rng, shape, fan_in, fan_out:
                                         np.full(shape, 0.5))]
    """


@hookspec
def graphnet_datasets():
    """Return a list of ``graphnet.Dataset`` objects to register.

    A dataset loads named arrays for training and testing; ``graphnet train
    --dataset NAME`` and model files' ``training.dataset`` use them.
    """
