"""The op interface: what a node of a graph computes, forward and backward.

An op is stateless and serializable by name. It knows the per-sample shape
of its output and the shapes of its params from its input shapes and attrs;
its ``forward`` computes the output for a batch and saves on ``ctx`` what
``backward`` needs; its ``backward`` turns the output's gradient into one
gradient per input and per param, in order (None where there is none).

Params are passed to ``forward`` after the inputs, in the order ``params``
declares them, so a dense layer is ``forward(ctx, x, weight, bias)`` and its
``backward`` returns ``(dx, dweight, dbias)``.

Buffers are an op's non-trainable arrays (batch_norm's running statistics):
declared by ``buffers`` beside ``params``, kept by the model under the same
``<node>.<name>`` keys, saved in checkpoints, never differentiated nor handed
to an optimizer. ``forward`` reads them as ``ctx.buffers[name]`` and updates
them in place.

An op may also say how it is written in ONNX (``to_onnx``, optional): it
gets a builder and the ONNX names of its inputs then params, in the order
``forward`` gets the arrays, and returns the name of its output.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import GraphError, ShapeError, UnknownNameError, did_you_mean

REQUIRED = object()
"""Default of an attr that every node must set (``dense``'s ``units``)."""


@dataclass(frozen=True)
class Attr:
    """One attr of an op: its default, its kind, its range, and a line of docs.

    kind is one of "int", "float", "bool", "str", "shape" (list of ints),
    "int_list", "init" (an initializer name or {"name": ..., **attrs}) or "any".
    """

    default: object = REQUIRED
    kind: str = "any"
    min: float = None
    max: float = None
    choices: tuple = None
    doc: str = ""

    @property
    def required(self):
        return self.default is REQUIRED


def check_attr(where, key, spec, value, find=None):
    """Check one attr value against its Attr spec; return it normalised.

    ``find(kind, name)`` (the registry's ``get``) checks that an initializer
    name exists; without it only the form of an "init" attr is checked.

    >>> check_attr("node 'fc'", "units", Attr(REQUIRED, "int", min=1), 3.0)
    Traceback (most recent call last):
    graphnet.errors.GraphError: node 'fc': attr 'units' must be an integer, got 3.0
    """
    kind = spec.kind

    def bad(expected):
        return GraphError(f"{where}: attr {key!r} must be {expected}, got {value!r}")

    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise bad("an integer")
        value = int(value)
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise bad("a number")
        value = float(value)
        if not math.isfinite(value):
            raise bad("a finite number")
    elif kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise bad("true or false")
        value = bool(value)
    elif kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
    elif kind in ("shape", "int_list"):
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in value):
            raise bad("a list of integers")
        value = tuple(int(d) for d in value)
        if kind == "shape" and any(d < -1 or d == 0 for d in value):
            raise bad("a shape of positive sizes (one -1 allowed in reshape)")
    elif kind == "init":
        value = check_init(f"{where}: attr {key!r}", value, find)[2]
    if spec.choices is not None and value not in spec.choices:
        raise GraphError(f"{where}: attr {key!r} must be one of {list(spec.choices)}, "
                         f"got {value!r}{did_you_mean(value, spec.choices)}")
    if spec.min is not None and value < spec.min:
        raise GraphError(f"{where}: attr {key!r} must be >= {spec.min}, got {value!r}")
    if spec.max is not None and value > spec.max:
        raise GraphError(f"{where}: attr {key!r} must be <= {spec.max}, got {value!r}")
    return value


def check_init(where, value, find=None):
    """Check an initializer spec, a name or {"name": ..., **attrs}; with ``find`` (the
    registry's ``get``) also its attrs against the initializer's own Attrs.
    Return (initializer or None, checked attrs, normalised spec)."""
    name = value.get("name") if isinstance(value, dict) else value
    if not isinstance(name, str):
        raise GraphError(f'{where} must be an initializer name or {{"name": ..., ...}}, '
                         f'got {value!r}')
    given = {k: v for k, v in value.items() if k != "name"} if isinstance(value, dict) else {}
    if find is None:
        return None, given, value
    try:
        init = find("initializer", name)
    except UnknownNameError as exc:
        raise GraphError(f"{where}: {exc}") from None
    attrs = {}
    for k, v in given.items():
        if k not in init.attrs:
            known = ", ".join(init.attrs) or "none"
            raise GraphError(f"{where}: initializer {name!r} has no attr {k!r}"
                             f"{did_you_mean(k, init.attrs)}; it takes: {known}")
        attrs[k] = check_attr(f"{where}: initializer {name!r}", k, init.attrs[k], v, find)
    missing = [k for k, a in init.attrs.items() if a.required and k not in attrs]
    if missing:
        raise GraphError(f"{where}: initializer {name!r} needs attr {missing[0]!r}")
    return init, attrs, ({"name": name, **attrs} if isinstance(value, dict) else name)


def as_attr(value):
    """``value`` if it is an Attr, else an Attr with that default and the kind its type says.

    Activations and initializers may give plain defaults; ``1.0`` makes a float attr
    (so write ``1.0``, not ``1``, for a real number), ``3`` an int, ``True`` a bool.

    >>> as_attr(1.0).kind, as_attr(3).kind, as_attr(True).kind, as_attr("x").kind
    ('float', 'int', 'bool', 'str')
    """
    if isinstance(value, Attr):
        return value
    for kind, types in (("bool", (bool, np.bool_)), ("int", (int, np.integer)),
                        ("float", (float, np.floating)), ("str", (str,))):
        if isinstance(value, types):
            return Attr(value, kind)
    return Attr(value, "any")


@dataclass(frozen=True)
class Param:
    """A param an op needs: its shape, its initializer and the fans it sees."""

    shape: tuple
    init: object = "glorot_uniform"
    fan_in: int = None
    fan_out: int = None


@dataclass(frozen=True)
class Buffer:
    """A non-trainable array an op keeps from batch to batch: its shape and first value."""

    shape: tuple
    fill: float = 0.0


class Context:
    """Per-node scratch space, made once when a model is compiled.

    The engine sets ``node`` (the node's name), ``attrs`` (defaults filled in),
    ``training``, ``rng`` (the model's numpy Generator), ``needs_grad`` (one
    bool per input and param: backward may return None where it is False),
    ``input_shapes``/``output_shape`` (per sample) and ``buffers`` (the
    node's buffers by their short name, the model's own arrays: an op updates
    them in place, ``ctx.buffers["running_mean"][...] = ...``). Ops save
    their own arrays on it in ``forward`` (``ctx.x = x``) for ``backward``.

    For speed, an op may write its output and gradients into ``ctx.scratch``
    arrays, reused from batch to batch (the engine copies what it hands
    out), and ``backward`` may write the params' gradients straight into
    ``ctx.param_grads`` (one array per param, of its shape; None when the
    engine gives none) and return those very arrays. An op never writes into
    its inputs or ``dy``: they may be another node's arrays or the user's.
    """

    def __init__(self, node, attrs, input_shapes=(), output_shape=()):
        self.node = node
        self.attrs = attrs
        self.input_shapes = input_shapes
        self.output_shape = output_shape
        self.training = False
        self.rng = None
        self.needs_grad = ()
        self.param_grads = None
        self.buffers = {}
        self._scratch = {}

    def scratch(self, key, shape, dtype):
        """This node's scratch array ``key``, made again only when shape or dtype change."""
        buf = self._scratch.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._scratch[key] = np.empty(shape, dtype)
        return buf

    def scratch_like(self, key, x):
        """A scratch array of ``x``'s shape and dtype, its axes in memory in ``x``'s order:
        an elementwise op on a transposed view (as convolutions hand on) then runs over
        contiguous memory on both sides."""
        got = self._scratch.get(("like", key))
        if got is None or got[0] != (x.shape, x.strides, x.dtype):
            got = self._scratch[("like", key)] = ((x.shape, x.strides, x.dtype),
                                                  np.empty_like(x))
        return got[1]


class Op:
    """Base class of every op. Subclass it, set the class attributes, override.

    name: the registered name. n_inputs: how many inputs (None: one or more).
    attrs: ``{name: Attr}``. kind: "layer", "activation", "merge", "shape",
    "loss" or "input" (rendering and summaries use it). int_inputs: positions
    of inputs that may be integer arrays (class labels). label_attr: the attr
    a drawing shows bare after the op's name (``dense 128``), or None.
    """

    name = None
    n_inputs = 1
    attrs = {}
    kind = "layer"
    int_inputs = ()
    label_attr = None
    doc = ""
    to_onnx = None
    """Optional ``to_onnx(self, b, *names) -> name``: write the op in ONNX.

    ``names`` are the ONNX names of the inputs then the params (as ``forward``
    gets them); ``b`` (a ``graphnet.onnx.Builder``) has the node's ``attrs``,
    ``input_shapes``, ``output_shape`` (per sample) and ``opset``, and
    ``b.op("Relu", x, alpha=...)`` adds an ONNX node and returns its output's
    name, ``b.const(array)`` a constant. Return the name of the op's output:

    >>> def to_onnx(self, b, x, weight, bias):    # dense
    ...     return b.op("Add", b.op("MatMul", x, weight), bias)
    """

    def infer(self, attrs, *shapes):
        """Return the per-sample output shape; raise ShapeError if shapes do not fit."""
        return shapes[0]

    def params(self, attrs, *shapes):
        """Return ``{param name: Param}`` in the order forward receives them."""
        return {}

    def buffers(self, attrs, *shapes):
        """Return ``{buffer name: Buffer}``: the non-trainable arrays forward keeps."""
        return {}

    def adapted(self, buffers):
        """Whether the buffers already hold what ``adapt`` learns (fit adapts the others)."""
        return True

    def adapt(self, buffers, batches):
        """Set buffers from the training data before training (``normalize``'s statistics).

        ``batches`` yields the node's first input over the data, batch by batch
        (computed lazily: an op that needs nothing from the data ignores it)."""

    def forward(self, ctx, *arrays):
        """Compute the output for a batch from inputs then params."""
        raise NotImplementedError(f"op {self.name!r} has no forward")

    def backward(self, ctx, dy):
        """Return a tuple with one gradient per input then per param."""
        raise NotImplementedError(f"op {self.name!r} has no backward")

    def __repr__(self):
        return f"<op {self.name}>"


class Activation:
    """An elementwise activation given by f and its derivative.

    ``derivative(x, y)`` is f'(x), given x and y = f(x), so that sigmoid can
    use ``y * (1 - y)``. ``attrs`` maps extra keyword arguments of both
    functions to their defaults (``{"alpha": 1.0}``, whose type gives the
    attr's kind, see ``as_attr``) or to a ``graphnet.Attr`` (a kind, a range,
    choices, a line of docs); every node's values are checked against them.

    Optionally, for speed, ``forward_into(x, out, **attrs)`` writes f(x) into
    ``out`` and ``backward_into(x, y, dy, out, **attrs)`` writes dy * f'(x)
    into ``out``, each returning ``out``: the engine then reuses one buffer
    per node instead of allocating arrays every batch (the builtins do this).

    ``onnx`` (optional) is how ONNX writes it: an ONNX op type taking the
    same attrs (``"Elu"``), or ``onnx(b, x, **attrs) -> name`` building it
    from several ONNX nodes (see ``Op.to_onnx``).

    >>> cube = Activation("cube", fn=lambda x: x**3, derivative=lambda x, y: 3 * x**2,
    ...                   onnx=lambda b, x: b.op("Mul", x, b.op("Mul", x, x)))
    """

    def __init__(self, name, fn, derivative, attrs=None, doc="", forward_into=None,
                 backward_into=None, onnx=None):
        self.name = name
        self.fn = fn
        self.derivative = derivative
        self.attrs = {k: as_attr(v) for k, v in dict(attrs or {}).items()}
        self.doc = doc or (fn.__doc__ or "").strip()
        self.forward_into = forward_into
        self.backward_into = backward_into
        self.onnx = onnx

    def defaults(self):
        """The attrs' defaults, as keyword arguments of ``fn`` and ``derivative``."""
        return {k: a.default for k, a in self.attrs.items() if not a.required}

    def __repr__(self):
        return f"<activation {self.name}>"


class ActivationOp(Op):
    """The op the engine makes of an Activation: y = f(x), dx = dy * f'(x)."""

    kind = "activation"

    def __init__(self, activation):
        self.activation = activation
        self.name = activation.name
        self.doc = activation.doc
        self.attrs = activation.attrs
        if getattr(activation, "forward_into", None) and getattr(activation, "backward_into",
                                                                 None):
            self.forward, self.backward = self._forward_into, self._backward_into
        if getattr(activation, "onnx", None) is not None:
            self.to_onnx = self._to_onnx

    def _to_onnx(self, b, x):
        form = self.activation.onnx
        if isinstance(form, str):
            return b.op(form, x, **b.attrs)
        return form(b, x, **b.attrs)

    def forward(self, ctx, x):
        y = self.activation.fn(x, **ctx.attrs)
        if y.dtype != x.dtype:  # a plugin's fn may promote float32 to float64
            y = y.astype(x.dtype)
        ctx.x, ctx.y = x, y
        return y

    def backward(self, ctx, dy):
        dx = dy * self.activation.derivative(ctx.x, ctx.y, **ctx.attrs)
        return (dx if dx.dtype == dy.dtype else dx.astype(dy.dtype),)

    def _forward_into(self, ctx, x):
        out = ctx.scratch_like("y", x)
        if ctx.attrs:
            y = self.activation.forward_into(x, out, **ctx.attrs)
        else:
            y = self.activation.forward_into(x, out)
        ctx.x, ctx.y = x, y
        return y

    def _backward_into(self, ctx, dy):
        out = ctx.scratch_like("dx", dy)
        if ctx.attrs:
            return (self.activation.backward_into(ctx.x, ctx.y, dy, out, **ctx.attrs),)
        return (self.activation.backward_into(ctx.x, ctx.y, dy, out),)


class Initializer:
    """A named way to fill a new param: ``fn(rng, shape, fan_in, fan_out, **attrs)``.

    ``attrs`` maps each attr to a ``gn.Attr`` (kind, range, default), checked
    like an op's wherever a model names the initializer; a plain value is
    its default. ``iid=True`` says each element is drawn independently, so
    the engine may fill a big param in slices (no full-size float64
    temporary for a float32 model), with the very same values.

    >>> import graphnet as gn
    >>> half = gn.Initializer("half", lambda rng, shape, fan_in, fan_out, scale: scale / 2,
    ...                       {"scale": gn.Attr(1.0, "float", min=0)})
    >>> half.attrs["scale"].min
    0
    """

    def __init__(self, name, fn, attrs=None, doc="", iid=False):
        self.name = name
        self.fn = fn
        self.attrs = {k: as_attr(v) for k, v in dict(attrs or {}).items()}
        self.doc = doc or (fn.__doc__ or "").strip()
        self.iid = iid

    def __call__(self, rng, shape, fan_in, fan_out, **attrs):
        return np.asarray(self.fn(rng, tuple(shape), fan_in, fan_out,
                                  **self._with_defaults(attrs)), dtype=np.float64)

    def fill(self, out, rng, fan_in, fan_out, chunk=1 << 20, **attrs):
        """Write a new value into the array ``out``; iid initializers fill it in slices."""
        if not self.iid or out.size <= chunk:
            self._put(out, self(rng, out.shape, fan_in, fan_out, **attrs))
            return out
        flat = out.reshape(-1)  # out is contiguous: a view
        for start in range(0, flat.size, chunk):
            n = min(chunk, flat.size - start)
            self._put(flat[start:start + n], self(rng, (n,), fan_in, fan_out, **attrs))
        return out

    def _put(self, out, value):
        if value.shape != out.shape:
            raise ShapeError(f"initializer {self.name!r} returned shape {value.shape} for a "
                             f"param of shape {out.shape}")
        out[...] = value

    def _with_defaults(self, attrs):
        return {**{k: a.default for k, a in self.attrs.items() if not a.required}, **attrs}

    def __repr__(self):
        return f"<initializer {self.name}>"


@dataclass
class Dataset:
    """A named dataset: ``load(**options)`` returns ``{"train": {...}, "test": {...}}``.

    Each split maps array names (matched to a graph's input names) to arrays
    with the samples along the first axis.
    """

    name: str
    load: object
    doc: str = ""
    options: dict = field(default_factory=dict)

    def __repr__(self):
        return f"<dataset {self.name}>"
