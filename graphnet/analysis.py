"""The tools behind the lecture's examples: small experiments on graphnet models.

Each function is one measurement the lecture makes (see examples/ and
docs/lecture.md), kept here, tested, so that the scripts only plot:

- building: ``mlp`` (a stack of dense layers with an activation between them);
- linear collapse: ``collapse_dense`` multiplies a stack of dense layers into
  one (W, b) and ``collapse_error`` measures how far the model is from it;
- activations: ``activation_table`` evaluates every registered activation and
  its derivative (plugins' ones included);
- backprop: ``finite_differences``, ``node_gradients`` (each node's output
  gradient from backward next to finite differences), ``chain_rule_dense_grad``
  (the lecture's chain-rule product with explicit matrices) and
  ``layer_grad_norms`` (vanishing gradients);
- optimizers: ``SURFACES`` (Rosenbrock, also as ``rosenbrock`` and
  ``rosenbrock_grad``, a quadratic ravine, a saddle),
  ``trajectory``, ``lr_sweep`` (``lr_sweeps``, cells ``final_losses``), ``best_lr``, ``tolerated_range`` and
  ``path_lr``, stepping the *registered* optimizers on a 2-vector param, so
  the formulas are exactly the ones the engine trains with;
- loss landscapes (Li et al. 2018): ``filter_normalized_direction`` and
  ``loss_surface``;
- double descent: ``regression_task``, ``relu_features``, ``min_norm_lstsq``,
  ``random_features_curve``, ``rise_peak``, ``mlp_double_descent`` (a sweep of
  MLP widths and seeds on the ``digits`` dataset's noisy labels) and
  ``over_seeds``;
- width and depth: ``TARGETS``, ``sawtooth``, ``fit_steps``,
  ``approximation_error`` (cells: ``approximation_cell``) and
  ``approximation_widths`` (a sweep);
- training curves: ``digits_curve`` (a cell of the optimizers example);
- sweeps that are no training runs go through ``map_values`` (the sweep
  executors' ``map_cells``, raising on a failed cell).

>>> import numpy as np, graphnet as gn
>>> from graphnet import analysis
>>> model = gn.Model(analysis.mlp(3, [4, 4], 2, activation=None), seed=0, dtype="float64")
>>> analysis.collapse_error(model, np.ones((5, 3))) < 1e-12
True
"""

from dataclasses import dataclass

import numpy as np

from .datasets import FUNCTIONS, sawtooth  # noqa: F401  (sawtooth: the depth example's target)
from .errors import GraphnetError
from .gradients import _central_difference
from .graph import Graph
from .model import Model
from .plugins import optimizer as make_optimizer, registry


# --- building ------------------------------------------------------------------
def mlp(in_dim, hidden, out_dim, activation="tanh", loss="mse", name="mlp", init=None):
    """A multilayer perceptron graph: x -> [fc_i -> act_i]* -> out -> loss.

    Dense nodes are ``fc1, fc2, ...`` and ``out``; activation nodes ``act1,
    act2, ...`` (none when ``activation`` is None: a purely linear stack).
    Inputs are ``x`` (shape ``(in_dim,)``) and ``y``: float targets of shape
    ``(out_dim,)``, or integer labels for ``loss="softmax_cross_entropy"``.
    ``init`` names the dense weights' initializer (default: dense's own).
    """
    g = Graph(name)
    h = g.input("x", shape=(in_dim,))
    if loss == "softmax_cross_entropy":
        t = g.input("y", shape=(), dtype="int64")
    else:
        t = g.input("y", shape=(out_dim,))
    extra = {"init": init} if init else {}
    for i, width in enumerate(hidden, start=1):
        h = g.add("dense", h, units=int(width), name=f"fc{i}", **extra)
        if activation:
            h = g.add(activation, h, name=f"act{i}")
    y = g.add("dense", h, units=out_dim, name="out", **extra)
    if loss:
        g.add(loss, y, t, name="loss")
    g.output(y)
    return g


def dense_nodes(model):
    """Names of the model's dense nodes, in topological order."""
    return [n for n, node in model.nodes.items() if node.op.name == "dense"]


def map_values(fn, cells, **where):
    """``fn(cell)`` for every cell, on a sweep's executor (``graphnet.sweep.map_cells``:
    ``executor``, ``workers``, ``scheduler``): the values in cell order. A measurement
    with a failed cell is no measurement, so a failure raises, naming the cell's index."""
    from .sweep import map_cells
    outcomes = map_cells(fn, cells, **where)
    for index, outcome in enumerate(outcomes):
        if outcome.error is not None:
            raise GraphnetError(f"{fn.__name__}: cell {index} of {len(cells)} failed: "
                                f"{outcome.error}")
    return [outcome.value for outcome in outcomes]


# --- linear collapse -----------------------------------------------------------
def collapse_dense(model, layers=None):
    """Multiply a chain of dense layers into one: return (W, b) with y = x @ W + b.

    ``layers`` defaults to every dense node in order, which is right for a
    chain with nothing in between. With y_k = y_{k-1} @ W_k + b_k the product
    is W = W_1 @ ... @ W_n and b = (...(b_1 @ W_2 + b_2) @ W_3 ...) + b_n: the
    lecture's w^T (W x) = (w^T W) x, biases included.
    """
    layers = dense_nodes(model) if layers is None else list(layers)
    if not layers:
        raise GraphnetError(f"model {model.name!r} has no dense layers to collapse")
    W = b = None
    for name in layers:
        w = np.asarray(model.params[f"{name}.weight"], dtype=np.float64)
        bias = model.params.get(f"{name}.bias")
        bias = np.zeros(w.shape[1]) if bias is None else np.asarray(bias, dtype=np.float64)
        W = w if W is None else W @ w
        b = bias if b is None else b @ w + bias
    return W, b


def collapse_error(model, x, output=None):
    """Largest |model(x) - (x @ W + b)| with (W, b) from ``collapse_dense``.

    About 1e-15 (float64) for a purely linear stack; of the order of the
    outputs themselves once a nonlinearity sits between the layers.
    """
    output = output or model.outputs[0]
    y = model.predict({"x": x})[output]
    W, b = collapse_dense(model)
    return float(np.max(np.abs(y - (np.asarray(x, dtype=np.float64) @ W + b))))


# --- activations ---------------------------------------------------------------
def activation_table(x, names=None):
    """{name: (f(x), f'(x))} for registered activations, with their default attrs.

    Without ``names`` every registered activation is included, so an
    installed plugin's activations show up next to the builtins.
    """
    x = np.asarray(x, dtype=np.float64)
    table = {}
    for entry in registry().entries("activation"):
        if names is not None and entry.name not in names:
            continue
        act = entry.obj
        y = np.asarray(act.fn(x, **act.defaults()), dtype=np.float64)
        dy = np.asarray(act.derivative(x, y, **act.defaults()), dtype=np.float64)
        table[entry.name] = (y, dy * np.ones_like(x))
    if names is not None:
        order = list(names)
        missing = [n for n in order if n not in table]
        if missing:
            registry().get("activation", missing[0])  # raises UnknownNameError, naming it
        table = {n: table[n] for n in order}
    return table


# --- backprop ------------------------------------------------------------------
def finite_differences(f, array, eps=1e-6):
    """Central differences of the scalar ``f()`` with respect to every entry of
    ``array`` (changed in place and restored): an array of array's shape."""
    grad = np.zeros(array.shape, dtype=np.float64)
    flat, out = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        out[i] = _central_difference(f, flat, i, eps)
    return grad


def tapped(graph, nodes):
    """A copy of ``graph`` where each of ``nodes`` is followed by ``add(node, tap)``.

    ``tap_<node>`` is a new input that is fed zeros: the output stays the
    same, and the gradient of the loss with respect to the tap (an input
    gradient, ``backward(inputs=True)``) is the gradient with respect to the
    node's output. Returns the new graph.
    """
    from .scheduler import Program

    program = Program(graph)
    g = Graph(graph.name + "_tapped")
    rename = {}
    for name, node in program.nodes.items():
        data = graph.node(name)
        ins = [rename.get(i, i) for i in data["inputs"]]
        g._add_node(name, data["op"], ins, data["attrs"])
        if name in nodes:
            tap = g.input(f"tap_{name}", shape=node.shape, dtype="float64")
            rename[name] = g.add("add", name, tap, name=f"{name}_tapped")
    g.output(*[rename.get(o, o) for o in graph.outputs])
    return g


def node_gradients(model, feeds, nodes, eps=1e-6):
    """Each node's output gradient and each param's gradient, from backward and
    from finite differences, in float64: ``{key: (backward, numeric)}``.

    Node outputs are reached with ``tapped``; params are perturbed in place.
    Keys are node names (their outputs) and param keys ("fc1.weight").
    """
    g = tapped(model.graph, nodes)
    m = Model(g, seed=model.seed, dtype="float64")
    for key, value in model.params.items():
        np.copyto(m.params[key], value)
    feeds = {k: (np.array(v, dtype=np.float64) if np.asarray(v).dtype.kind == "f"
                 else np.asarray(v)) for k, v in feeds.items()}
    batch = len(next(iter(feeds.values())))
    for n in nodes:
        feeds[f"tap_{n}"] = np.zeros((batch, *m.nodes[n].shape))
    loss = m.losses[0]

    def value():
        return float(m.forward(feeds, outputs=[loss])[loss])

    value()
    grads = {k: np.array(v) for k, v in m.backward(inputs=True).items()}  # own copies
    out = {}
    for n in nodes:
        out[n] = (grads[f"tap_{n}"], finite_differences(value, feeds[f"tap_{n}"], eps))
    for key in m.params:
        out[key] = (grads[key], finite_differences(value, m.params[key], eps))
    return out


def relative_error(a, b, floor=1e-12):
    """max |a - b| / max(max |a|, max |b|, floor): one number per pair of arrays."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(a), initial=0), np.max(np.abs(b), initial=0), floor)
    return float(np.max(np.abs(a - b), initial=0) / scale)


def chain_rule_dense_grad(model, feeds, first="Dense1", act="Activation1", second="Dense2"):
    """dL/dW of the first dense layer by the lecture's chain rule, with explicit matrices.

    For a chain first -> act -> second -> mse, sample by sample:
    dL/dW = dL/df * dDense2/dActivation1 * dActivation1/dDense1 * dDense1/dW,
    a scalar times a d'-vector times a (d' x d') diagonal matrix times a
    (d' x d x d') tensor: a (d x d') matrix in graphnet's (in, units) layout.
    Backpropagation gets the same numbers without building the diagonal matrix
    or the 3-d tensor; this function builds them, to show the equality.
    Needs a single output unit and the mse loss with mean reduction.
    """
    x = np.asarray(feeds["x"], dtype=np.float64)
    y = np.asarray(feeds["y"], dtype=np.float64)
    W1 = np.asarray(model.params[f"{first}.weight"], dtype=np.float64)
    b1 = np.asarray(model.params.get(f"{first}.bias", 0.0), dtype=np.float64)
    w2 = np.asarray(model.params[f"{second}.weight"], dtype=np.float64)[:, 0]
    b2 = np.asarray(model.params.get(f"{second}.bias", 0.0), dtype=np.float64)
    activation = registry().get("activation", model.graph.node(act)["op"])
    attrs = {**activation.defaults(), **model.graph.node(act)["attrs"]}
    n, d = x.shape
    units = W1.shape[1]
    total = np.zeros_like(W1)
    for i in range(n):
        z = x[i] @ W1 + b1                                   # Dense1, (d',)
        a = activation.fn(z, **attrs)                         # Activation1
        f = a @ w2 + b2                                       # Dense2, a scalar
        dL_df = 2.0 * (float(np.squeeze(f)) - float(y[i, 0])) / n   # mse, mean over N
        dDense2_dAct = w2                                     # (d',)
        dAct_dDense1 = np.diag(activation.derivative(z, a, **attrs))   # (d', d')
        dDense1_dW = np.zeros((units, d, units))              # dz_k / dW_jk' = x_j [k == k']
        for k in range(units):
            dDense1_dW[k, :, k] = x[i]
        total += dL_df * np.einsum("k,kl,ljm->jm", dDense2_dAct, dAct_dDense1, dDense1_dW)
    return total


def layer_grad_norms(model, feeds):
    """{dense node: ||dL/dweight||} after one forward and backward, in layer order.

    In a deep sigmoid stack these shrink towards the input (sigmoid' <= 1/4
    per layer): vanishing gradients.
    """
    model.forward(feeds, training=True)
    grads = model.backward()
    return {n: float(np.linalg.norm(grads[f"{n}.weight"])) for n in dense_nodes(model)}


# --- optimizers on 2-D surfaces ------------------------------------------------
@dataclass(frozen=True)
class Surface:
    """A 2-D test function: value ``f(p)``, gradient ``grad(p)``, a start point,
    the plot window ``extent`` (xmin, xmax, ymin, ymax) and the minimum's value."""

    name: str
    f: object
    grad: object
    start: tuple
    extent: tuple
    minimum: float
    formula: str


def rosenbrock(p):
    """Rosenbrock's curved valley f(x, y) = (1 - x)^2 + 100 (y - x^2)^2, minimum 0 at (1, 1).

    ``p`` is anything with two entries (a 2-vector, a tuple, or two stacked
    grids as ``grid`` passes). The one definition that the lecture's plots,
    ``SURFACES["rosenbrock"]``, the optimizer tests and
    benchmarks/bench_rosenbrock.py all use.

    >>> rosenbrock((1.0, 1.0)), rosenbrock((-1.5, 2.0))
    (0.0, 12.5)
    """
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2


def rosenbrock_grad(p):
    """The gradient of ``rosenbrock`` at ``p``: a 2-vector.

    >>> rosenbrock_grad((-1.5, 2.0))
    array([-155.,  -50.])
    """
    x, y = p[0], p[1]
    return np.array([-2 * (1 - x) - 400 * x * (y - x ** 2), 200 * (y - x ** 2)])


RAVINE_CURVATURE = (1.0, 100.0)


def _ravine(p):
    a, b = RAVINE_CURVATURE
    return 0.5 * (a * p[0] ** 2 + b * p[1] ** 2)


def _ravine_grad(p):
    a, b = RAVINE_CURVATURE
    return np.array([a * p[0], b * p[1]])


def _saddle(p):
    x, y = p[0], p[1]
    return x ** 2 - 0.5 * y ** 2 + 0.25 * y ** 4


def _saddle_grad(p):
    x, y = p[0], p[1]
    return np.array([2 * x, -y + y ** 3])


SURFACES = {
    "rosenbrock": Surface("rosenbrock", rosenbrock, rosenbrock_grad, (-1.2, 1.0),
                          (-2.0, 2.0, -1.0, 3.0), 0.0, "(1-x)^2 + 100 (y-x^2)^2"),
    "ravine": Surface("ravine", _ravine, _ravine_grad, (-9.0, 1.0),
                      (-10.0, 2.0, -1.5, 1.5), 0.0, "(x^2 + 100 y^2) / 2"),
    "saddle": Surface("saddle", _saddle, _saddle_grad, (1.5, 1e-3),
                      (-2.0, 2.0, -1.6, 1.6), -0.25, "x^2 - y^2/2 + y^4/4"),
}
"""The lecture's kinds of terrain: a curved valley, an elongated ravine (condition
number 100) and a saddle point at the origin with minima at (0, +-1)."""


def surface(name):
    """The Surface called ``name`` (one of SURFACES)."""
    try:
        return SURFACES[name]
    except KeyError:
        raise GraphnetError(f"unknown surface {name!r}; choose one of {sorted(SURFACES)}") \
            from None


def trajectory(name, surf, lr, steps, start=None, **hyper):
    """Run the registered optimizer ``name`` on ``surf`` for ``steps`` steps.

    The param is one 2-vector ``{"p": array}`` stepped with
    ``optimizer(name, lr=lr, **hyper).step(params, grads)``: the same code that
    trains models. Returns the (steps + 1, 2) array of points; once a point
    leaves the finite numbers the remaining rows are NaN.
    """
    surf = surface(surf) if isinstance(surf, str) else surf
    opt = make_optimizer(name, lr=lr, **hyper)
    p = np.array(surf.start if start is None else start, dtype=np.float64)
    params = {"p": p}
    path = np.full((steps + 1, 2), np.nan)
    path[0] = p
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, steps + 1):
            opt.step(params, {"p": surf.grad(p)})
            if not np.all(np.isfinite(p)) or np.max(np.abs(p)) > 1e6:
                break
            path[k] = p
    return path


def final_loss(surf, path):
    """f at a trajectory's last point, minus the surface's minimum; inf if it diverged."""
    surf = surface(surf) if isinstance(surf, str) else surf
    last = path[-1]
    if not np.all(np.isfinite(last)):
        return float("inf")
    return float(surf.f(last) - surf.minimum)


def worst_loss(surf, path):
    """The highest f on a trajectory, minus the surface's minimum; inf if it diverged.
    A run whose worst stays at or below its start never climbed: a stable lr."""
    surf = surface(surf) if isinstance(surf, str) else surf
    if not np.all(np.isfinite(path)):
        return float("inf")
    return float(np.max(surf.f(path.T)) - surf.minimum)


def lr_sweep(names, surf, lrs, steps, *, hyper=None, executor=None, workers=None,
             scheduler=None):
    """{optimizer: array of final losses (gap to the minimum), one per lr}; inf = diverged.
    One surface of ``lr_sweeps``."""
    return lr_sweeps(names, [surf], lrs, steps, hyper=hyper, executor=executor,
                     workers=workers, scheduler=scheduler)[0]


def lr_sweeps(names, surfaces, lrs, steps, *, hyper=None, executor=None, workers=None,
              scheduler=None):
    """``lr_sweep`` of every surface: a list of {optimizer: final losses}, one per surface.

    A cell per optimizer and surface (all its lrs: each trajectory takes
    milliseconds), mapped over ``executor`` as a sweep's cells are
    (``graphnet.sweep.map_cells``)."""
    cells = [{"name": name, "surf": surf, "lrs": [float(lr) for lr in lrs], "steps": steps,
              "hyper": dict(hyper or {})} for surf in surfaces for name in names]
    values = iter(map_values(final_losses, cells, executor=executor, workers=workers,
                             scheduler=scheduler))
    return [{name: np.array(next(values)) for name in names} for _ in surfaces]


def final_losses(cell):
    """One lr_sweep cell: the final losses of optimizer ``cell["name"]`` at each lr."""
    return [final_loss(cell["surf"], trajectory(cell["name"], cell["surf"], lr, cell["steps"],
                                                **cell["hyper"])) for lr in cell["lrs"]]


def best_lr(lrs, losses):
    """The lr with the smallest final loss (the first of equals)."""
    return float(np.asarray(lrs)[int(np.argmin(losses))])


def tolerated_range(lrs, losses, threshold):
    """(smallest, largest) lr whose final loss is below ``threshold``, or None."""
    ok = [lr for lr, v in zip(lrs, losses) if v < threshold]
    return (min(ok), max(ok)) if ok else None


def path_lr(lrs, losses, tolerance, slack=10.0):
    """The lr to draw a path with: the smallest one whose final loss is below
    ``tolerance`` or within ``slack`` times the best final loss. Large lrs that
    win by a hair often zigzag; the smallest good lr shows the method's own path."""
    losses = np.asarray(losses, dtype=np.float64)
    good = max(tolerance, slack * float(np.min(losses)))
    return float(min(lr for lr, v in zip(lrs, losses) if v <= good))


def grid(surf, n=200):
    """(X, Y, Z) of f over the surface's extent, for contour plots."""
    surf = surface(surf) if isinstance(surf, str) else surf
    x0, x1, y0, y1 = surf.extent
    X, Y = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    return X, Y, surf.f(np.stack([X, Y]))


# --- loss landscapes (Li et al. 2018) ------------------------------------------
def filter_normalized_direction(params, rng, ignore_bias=True):
    """A Gaussian direction in param space with filter normalization.

    Li, Xu, Taylor, Studer and Goldstein, "Visualizing the Loss Landscape of
    Neural Nets" (NeurIPS 2018): each filter of the direction is rescaled to
    the norm of the same filter of the trained params theta*, so that plots of
    nets with different weight scales compare. For a dense weight of shape
    (in, units) a filter is one unit's column: d[:, j] *= ||theta*[:, j]|| /
    ||d[:, j]||. Params of higher rank take the last axis as units. Biases
    (1-D params) are set to zero, as the paper's reference code does with
    ``ignore='biasbn'``; ``ignore_bias=False`` normalizes each bias entry instead.
    """
    direction = {}
    for key, theta in params.items():
        theta = np.asarray(theta, dtype=np.float64)
        if theta.ndim <= 1:
            if ignore_bias:
                direction[key] = np.zeros_like(theta)
                continue
            d = rng.standard_normal(theta.shape)
            direction[key] = d / np.maximum(np.abs(d), 1e-12) * np.abs(theta)
            continue
        d = rng.standard_normal(theta.shape)
        cols_t = np.linalg.norm(theta.reshape(-1, theta.shape[-1]), axis=0)
        cols_d = np.linalg.norm(d.reshape(-1, d.shape[-1]), axis=0)
        direction[key] = d * (cols_t / np.maximum(cols_d, 1e-12))
    return direction


def loss_surface(model, feeds, d1, d2, alphas, betas, loss=None):
    """L(theta* + a d1 + b d2) for every (a, b): an array of shape (len(betas), len(alphas)).

    Row i, column j holds b = betas[i], a = alphas[j] (as np.meshgrid lays
    them out for contour plots). The params are restored afterwards.
    """
    loss = loss or model.losses[0]
    theta = {k: np.array(v) for k, v in model.params.items()}
    out = np.empty((len(betas), len(alphas)))
    try:
        for i, b in enumerate(betas):
            for j, a in enumerate(alphas):
                for k, t in theta.items():
                    model.params[k][...] = t + a * d1[k] + b * d2[k]
                out[i, j] = float(model.forward(feeds, outputs=[loss])[loss])
    finally:
        for k, t in theta.items():
            model.params[k][...] = t
    return out


def sharpness(surface_values, alphas, betas):
    """Mean rise of the loss over a surface above its centre, a crude flatness number."""
    i, j = int(np.argmin(np.abs(betas))), int(np.argmin(np.abs(alphas)))
    return float(np.mean(surface_values) - surface_values[i, j])


# --- double descent -----------------------------------------------------------
def relu_features(x, weights, bias):
    """Random ReLU features max(0, x @ weights + bias), one column per feature."""
    return np.maximum(x @ weights + bias, 0.0)


def min_norm_lstsq(features, y):
    """The minimum-norm least-squares coefficients (np.linalg.lstsq): the exact
    fit when there are more features than samples, the least squares otherwise."""
    coef, *_ = np.linalg.lstsq(features, y, rcond=None)
    return coef


def regression_task(n_train, n_test, dim=5, noise=0.3, seed=0):
    """A noisy nonlinear regression task: y = sin(x . u) + 0.5 (x . v)^2 / dim + noise.

    Inputs are standard normal in ``dim`` dimensions. Returns x_train,
    y_train, x_test, y_test; the test targets are noisy too.
    """
    rng = np.random.default_rng(seed)
    u, v = rng.standard_normal(dim) / np.sqrt(dim), rng.standard_normal(dim) / np.sqrt(dim)

    def target(x):
        return np.sin(x @ u * 2) + 0.5 * (x @ v) ** 2

    x_tr, x_te = rng.standard_normal((n_train, dim)), rng.standard_normal((n_test, dim))
    y_tr = target(x_tr) + noise * rng.standard_normal(n_train)
    y_te = target(x_te) + noise * rng.standard_normal(n_test)
    return x_tr, y_tr, x_te, y_te


def random_features_curve(x_train, y_train, x_test, y_test, sizes, seeds=5, *, executor=None,
                          workers=None, scheduler=None):
    """Train and test MSE of min-norm least squares on random ReLU features.

    For every number of features p in ``sizes`` and ``seeds`` draws of the
    features (weights N(0, 1/dim), biases N(0, 1)), fit exactly as
    ``min_norm_lstsq``. Returns {"sizes", "train_mse", "test_mse"} with the
    median over the draws. The test error peaks at p = len(x_train): the
    interpolation threshold. A cell per size (``random_features_cell``),
    mapped over ``executor`` (``graphnet.sweep.map_cells``).
    """
    data = (x_train, y_train, x_test, y_test)
    values = map_values(random_features_cell, [(data, int(p), seeds) for p in sizes],
                        executor=executor, workers=workers, scheduler=scheduler)
    return {"sizes": [int(p) for p in sizes], "train_mse": [v[0] for v in values],
            "test_mse": [v[1] for v in values]}


def random_features_cell(cell):
    """(median train MSE, median test MSE) over ``seeds`` draws of ``p`` random ReLU
    features: one cell ``((x_train, y_train, x_test, y_test), p, seeds)``."""
    (x_train, y_train, x_test, y_test), p, seeds = cell
    dim = x_train.shape[1]
    tr, te = [], []
    for s in range(seeds):
        rng = np.random.default_rng([s, p])
        w = rng.standard_normal((dim, p)) / np.sqrt(dim)
        b = rng.standard_normal(p)
        coef = min_norm_lstsq(relu_features(x_train, w, b), y_train)
        tr.append(np.mean((relu_features(x_train, w, b) @ coef - y_train) ** 2))
        te.append(np.mean((relu_features(x_test, w, b) @ coef - y_test) ** 2))
    return float(np.median(tr)), float(np.median(te))


def rise_peak(values):
    """Index of the highest value reached by a rise (values[i] > values[i - 1]), or None.

    A double-descent curve starts high (underfitting), so its global maximum
    is often the first point; the peak at the interpolation threshold is the
    highest point that the curve climbs to.
    """
    rises = [i for i in range(1, len(values)) if values[i] > values[i - 1]]
    return max(rises, key=lambda i: values[i]) if rises else None


def mlp_param_count(in_dim, hidden, out_dim):
    """Params (weights and biases) of ``mlp(in_dim, hidden, out_dim)``."""
    dims = [in_dim, *hidden, out_dim]
    return sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))


def mlp_double_descent(widths, seeds, *, train_size, label_noise, epochs, lr=1e-2,
                       noise_seed=0, out=None, **where):
    """Test error of one-hidden-layer relu MLPs on noisy digits against their size: a sweep.

    One ``graphnet.sweep`` over ``{"fc1.units": widths, "seed": seeds}`` of
    ``mlp(64, [h], 10, "relu", softmax_cross_entropy)`` on the dataset
    ``digits`` with ``train_size`` samples, ``label_noise`` of their labels
    flipped (``noise_seed``), full-batch Adam for ``epochs`` steps; every cell
    a run folder under ``out``. ``where``: the sweep's executor, workers,
    scheduler, progress. The seed draws the initial params; the noisy labels
    are the same in every cell.

    Returns ``{"widths", "params", "seeds", "rows", "test_error",
    "train_error", "test_loss"}`` (each of the last three is ``over_seeds``),
    ``"threshold"`` (``train_size * 10`` params: the interpolation threshold
    of a 10-class net as Belkin et al. 2019 place it), ``"interpolates_from"``
    (the params of the first width at which every seed fits every noisy
    training label, or None), ``"peak"`` (the params where the mean test
    error climbs highest, ``rise_peak``, or None) and ``"loss_peak"`` (the same
    for the mean test loss).
    """
    from .sweep import sweep
    graph = mlp(64, [int(widths[0])], 10, activation="relu", loss="softmax_cross_entropy",
                name="digits_double_descent")
    options = {"train_size": train_size, "label_noise": label_noise, "noise_seed": noise_seed}
    rows = sweep(graph.to_dict(), {"fc1.units": list(widths), "seed": list(seeds)}, out=out,
                 dataset="digits", dataset_options=options, optimizer="adam", lr=lr,
                 epochs=epochs, batch_size=train_size, checkpoint_every=_checkpoints(epochs),
                 figures=False,
                 **where)
    failed = next((r for r in rows if r["error"]), None)
    if failed:
        raise GraphnetError(f"double-descent cell {failed['run']} failed: {failed['error']}")
    for r in rows:
        r["train_error"] = 1.0 - r["train_accuracy"]
        r["test_error"] = 1.0 - r["test_accuracy"]
    params = [mlp_param_count(64, [w], 10) for w in widths]
    result = {"widths": list(widths), "params": params, "seeds": list(seeds), "rows": rows,
              **{m: over_seeds(rows, "fc1.units", m)
                 for m in ("test_error", "train_error", "test_loss")},
              "threshold": train_size * 10}
    fitted = [p for p, worst in zip(params, result["train_error"]["max"]) if worst == 0]
    result["interpolates_from"] = fitted[0] if fitted else None
    for key, metric in (("peak", "test_error"), ("loss_peak", "test_loss")):
        rise = rise_peak(result[metric]["mean"])
        result[key] = params[rise] if rise is not None else None
    return result


def _checkpoints(epochs):
    """checkpoint_every for cells of many one-step epochs: five checkpoints a cell (each
    is fsynced and holds the history so far; an interrupted cell resumes from the last)."""
    return max(1, epochs // 5)


def over_seeds(rows, key, metric):
    """``metric`` of sweep rows summarized over the other keys (the seeds) for each value
    of ``key``, in order: ``{"values", "mean", "std", "min", "max"}`` of lists."""
    groups = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r[metric])
    stats = {"values": list(groups), "mean": [], "std": [], "min": [], "max": []}
    for values in groups.values():
        v = np.asarray(values, dtype=np.float64)
        for name, fn in (("mean", np.mean), ("std", np.std), ("min", np.min),
                         ("max", np.max)):
            stats[name].append(float(fn(v)))
    return stats


# --- width and depth --------------------------------------------------------------
def fit_steps(model, feeds, optimizer="adam", lr=1e-2, steps=1000, **hyper):
    """Full-batch training for ``steps`` steps with a registered optimizer; the losses."""
    opt = make_optimizer(optimizer, lr=lr, **hyper) if isinstance(optimizer, str) else optimizer
    loss = model.losses[0]
    history = np.empty(steps)
    for k in range(steps):
        history[k] = float(model.forward(feeds, outputs=[loss], training=True)[loss])
        opt.step(model.params, model.backward())
    return history


TARGETS = FUNCTIONS
"""The 1-D functions of the universal-approximation example, on [-1, 1] (the dataset
``function``'s choices)."""


def approximation_error(fn, hidden, activation="relu", n_train=200, n_test=1000,
                        steps=2000, lr=1e-2, optimizer="adam", seed=0, restarts=1,
                        return_model=False):
    """Train ``mlp(1, hidden, 1)`` on fn over [-1, 1]; return the test MSE on a fine grid.

    Full-batch training with the registered ``optimizer``: three quarters of
    ``steps`` at ``lr``, the last quarter at lr / 10 (a fresh optimizer). The training points are an
    even grid of ``n_train`` points, the test grid has ``n_test``. With
    ``restarts`` > 1 the best of that many initializations (seeds seed,
    seed + 1, ...) counts: the approximation exists, training may miss it.
    With ``return_model`` also the model.
    """
    x = np.linspace(-1, 1, n_train)[:, None]
    xt = np.linspace(-1, 1, n_test)[:, None]
    feeds = {"x": x, "y": fn(x)}
    best = None
    for s in range(seed, seed + restarts):
        model = Model(mlp(1, hidden, 1, activation=activation), seed=s, dtype="float64")
        fit_steps(model, feeds, optimizer=optimizer, lr=lr, steps=steps - steps // 4)
        fit_steps(model, feeds, optimizer=optimizer, lr=lr / 10, steps=steps // 4)
        err = float(np.mean((model.predict({"x": xt})["out"] - fn(xt)) ** 2))
        if best is None or err < best[0]:
            best = (err, model)
    return best if return_model else best[0]


def approximation_cell(cell):
    """One cell of a width or depth sweep: ``approximation_error`` of the target named
    ``cell["target"]`` (one of TARGETS) with the cell's other keys as its arguments."""
    cell = dict(cell)
    return approximation_error(TARGETS[cell.pop("target")], **cell)


def approximation_widths(targets, widths, *, seeds=(0,), steps=2000, lr=1e-2, n_train=200,
                         n_test=1000, out=None, **where):
    """Test MSE of ``mlp(1, [w], 1)`` (relu, mse) on 1-D targets against the width: a sweep.

    One ``graphnet.sweep`` over ``{"dataset.f": targets, "fc1.units": widths,
    "seed": seeds}`` on the dataset ``function`` (``n_train`` even points on
    [-1, 1], tested on ``n_test``): full-batch Adam for ``steps`` steps, the
    last quarter at lr / 10 (a step schedule), every cell a run folder under
    ``out``. ``where``: the sweep's executor, workers, scheduler, progress.
    Returns ``{target: {"errors": [best test MSE over the seeds, per width],
    "runs": [that cell's run folder, per width]}}``.
    """
    from .sweep import sweep
    graph = mlp(1, [int(widths[0])], 1, activation="relu", name="approximation")
    schedule = {"name": "step", "lr": lr, "step_size": steps - steps // 4, "gamma": 0.1}
    rows = sweep(graph.to_dict(), {"dataset.f": list(targets), "fc1.units": list(widths),
                                   "seed": list(seeds)}, out=out, dataset="function",
                 dataset_options={"n": n_train, "n_test": n_test}, optimizer="adam",
                 lr=schedule, epochs=steps, batch_size=n_train,
                 checkpoint_every=_checkpoints(steps), figures=False, **where)
    failed = next((r for r in rows if r["error"]), None)
    if failed:
        raise GraphnetError(f"approximation cell {failed['run']} failed: {failed['error']}")
    result = {}
    for target in targets:
        best = [min((r for r in rows if r["dataset.f"] == target and r["fc1.units"] == w),
                    key=lambda r: r["test_loss"]) for w in widths]
        result[target] = {"errors": [r["test_loss"] for r in best],
                          "runs": [r["run"] for r in best]}
    return result


def digits_curve(cell):
    """Learning curves of a 64-64-10 relu MLP on the digits trained with ``model.fit``
    (batches of 32, seed 0) by optimizer ``cell["optimizer"]`` at ``cell["lr"]`` for
    ``cell["epochs"]``: ``{"loss", "val_loss", "val_accuracy"}``, one value per epoch."""
    from .datasets import load_digits
    from .plugins import optimizer
    digits = load_digits()
    model = Model(mlp(64, [64], 10, activation="relu", loss="softmax_cross_entropy",
                      name="digits_mlp"), seed=0)
    history = model.fit(digits["train"], optimizer=optimizer(cell["optimizer"], lr=cell["lr"]),
                        epochs=cell["epochs"], batch_size=32, validation=digits["test"],
                        progress=False, seed=0)
    return {k: list(history[k]) for k in ("loss", "val_loss", "val_accuracy")}
