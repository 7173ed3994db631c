"""Builtin ops: input, dense, merges (add, sub, mul, concat), shapes, dropout, softmax."""

import math

import numpy as np

from ..errors import ShapeError
from ..ops import Attr, Op, Param
from ..hookspecs import hookimpl


def onnx_axis(axis):
    """A per-sample axis as ONNX counts it, with the batch axis first (negative: the same)."""
    return axis if axis < 0 else axis + 1


class Input(Op):
    """A named array fed at run time; the engine fills it from the feeds."""

    name = "input"
    n_inputs = 0
    kind = "input"
    attrs = {"shape": Attr(kind="shape", doc="per-sample shape, no batch dimension"),
             "dtype": Attr("float32", "str", choices=("float32", "float64", "int64", "int32"),
                           doc="float32 or float64 for data, int64 for class labels")}

    def infer(self, attrs):
        return tuple(attrs["shape"])


class Dense(Op):
    """y = x @ weight + bias over the last axis; weight is (in, units)."""

    name = "dense"
    label_attr = "units"
    attrs = {"units": Attr(kind="int", min=1, doc="output features"),
             "use_bias": Attr(True, "bool", doc="add a bias vector"),
             "init": Attr("glorot_uniform", "init", doc="initializer of the weight"),
             "bias_init": Attr("zeros", "init", doc="initializer of the bias")}

    def infer(self, attrs, shape):
        if len(shape) == 0:
            raise ShapeError("dense needs an input with at least one feature axis, got a "
                             "scalar per sample; reshape it to (1,) first")
        return shape[:-1] + (attrs["units"],)

    def params(self, attrs, shape):
        fan_in, units = shape[-1], attrs["units"]
        params = {"weight": Param((fan_in, units), attrs["init"], fan_in, units)}
        if attrs["use_bias"]:
            params["bias"] = Param((units,), attrs["bias_init"], fan_in, units)
        return params

    def forward(self, ctx, x, weight, bias=None):
        ctx.x, ctx.weight = x, weight
        dtype = x.dtype if x.dtype == weight.dtype else np.result_type(x, weight)
        y = ctx.scratch("y", x.shape[:-1] + weight.shape[1:], dtype)
        y = product(x, weight, y) if x.ndim == 2 else np.matmul(x, weight, out=y)
        if bias is not None:
            y += bias
        return y

    def backward(self, ctx, dy):
        x, w = ctx.x, ctx.weight
        out_w = out_b = None
        if ctx.param_grads:  # write the param gradients where the engine wants them
            out_w = ctx.param_grads[0]
            out_b = ctx.param_grads[1] if len(ctx.param_grads) > 1 else None
        if x.ndim != 2:
            x, dy = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
        dw = product(x.T, dy, out_w)
        db = None
        if len(ctx.needs_grad) == 3:   # ones @ dy: BLAS sums the batch faster than add.reduce
            db = product(ones(ctx, dy.shape[0], dy.dtype), dy, out_b)
        dx = None
        if ctx.needs_grad[0]:  # not for a first layer, whose input is data
            dx = product(dy, w.T, ctx.scratch("dx", x.shape, dw.dtype))
            dx = dx.reshape(ctx.x.shape)
        return (dx, dw, db) if len(ctx.needs_grad) == 3 else (dx, dw)

    def fuse(self, op):
        """This dense and the activation ``op`` reading it as one plan step (see
        DenseActivation), when the activation writes into buffers; else None."""
        act = getattr(op, "activation", None)
        if act is None or act.forward_into is None or act.backward_into is None:
            return None
        return DenseActivation(self, act)

    def to_onnx(self, b, x, weight, bias=None):
        if len(b.input_shapes[0]) == 1:  # (N, in): one Gemm, as PyTorch writes nn.Linear
            return b.op("Gemm", x, weight, *([bias] if bias else []))
        y = b.op("MatMul", x, weight)
        return b.op("Add", y, bias) if bias else y


class DenseActivation:
    """A dense node and the activation that alone reads it, run as one step of a plan.

    The forward is one matmul into the dense's buffer, the bias added in place,
    and the activation written into a second buffer; the backward writes the
    activation's gradient into a buffer and runs the dense backward on it. The
    numbers are those of the two nodes run apart; the plan saves a call per
    node and direction. ``ctx`` is the dense node's, with ``act_attrs`` (the
    activation node's attrs) set by the plan; ``ctx.z`` and ``ctx.dz`` keep the
    dense's output and its gradient, which the plan puts in the dense's slots.
    """

    def __init__(self, dense, activation):
        self.dense, self.activation = dense, activation
        self.name = f"{dense.name}+{activation.name}"

    def forward(self, ctx, x, weight, bias=None):
        z = self.dense.forward(ctx, x, weight, bias)
        y = ctx.scratch("act", z.shape, z.dtype)
        if ctx.act_attrs:
            y = self.activation.forward_into(z, y, **ctx.act_attrs)
        else:
            y = self.activation.forward_into(z, y)
        ctx.z, ctx.y = z, y
        return y

    def backward(self, ctx, dy):
        dz = ctx.scratch("dz", dy.shape, dy.dtype)
        if ctx.act_attrs:
            dz = self.activation.backward_into(ctx.z, ctx.y, dy, dz, **ctx.act_attrs)
        else:
            dz = self.activation.backward_into(ctx.z, ctx.y, dy, dz)
        ctx.dz = dz
        return self.dense.backward(ctx, dz)


def product(a, b, out=None):
    """The matrix product of 1-d or 2-d ``a`` and 2-d ``b``, into ``out`` if given.

    np.dot costs about 0.5 us less a call than np.matmul on small arrays (and much
    less for an inner size of 1); it takes ``out`` only when it is C-contiguous and
    of the product's dtype, so np.matmul, which casts, does the other cases."""
    try:
        return np.dot(a, b, out=out)
    except ValueError:
        return np.matmul(a, b, out=out)


def ones(ctx, n, dtype):
    """A vector of n ones kept on ``ctx`` (``ones @ dy`` sums dy over its rows)."""
    got = getattr(ctx, "ones", None)
    if got is None or got.shape[0] != n or got.dtype != dtype:
        got = ctx.ones = np.ones(n, dtype)
    return got


class BroadcastMerge(Op):
    """Shared logic of add, sub and mul: per-sample numpy broadcasting."""

    kind = "merge"
    n_inputs = 2
    onnx_type = None   # "Add", "Sub", "Mul"

    def infer(self, attrs, a, b):
        try:
            return tuple(np.broadcast_shapes(a, b))
        except ValueError:
            raise ShapeError(f"{self.name} needs per-sample shapes that are equal or "
                             f"broadcast (numpy rules), got {a} and {b}") from None

    @staticmethod
    def aligned(ctx, a, b):
        """Pad the lower-rank input with axes after the batch axis, so that
        broadcasting never pairs the batch axis with a feature axis."""
        ra, rb = a.ndim, b.ndim
        if ra < rb:
            a = a.reshape(a.shape[:1] + (1,) * (rb - ra) + a.shape[1:])
        elif rb < ra:
            b = b.reshape(b.shape[:1] + (1,) * (ra - rb) + b.shape[1:])
        return a, b

    @staticmethod
    def unbroadcast(g, shape):
        """Sum g (batch + out shape) down to batch + the per-sample ``shape``."""
        if g.shape[1:] == tuple(shape):
            return g
        pad = g.ndim - 1 - len(shape)
        full = (1,) * pad + tuple(shape)
        axes = tuple(i + 1 for i, s in enumerate(full) if s == 1 and g.shape[i + 1] != 1)
        return g.sum(axis=axes, keepdims=True).reshape(g.shape[:1] + tuple(shape))

    def to_onnx(self, b, x, y):
        # ONNX broadcasts from the last axis; graphnet pads after the batch axis (aligned)
        ra, rb = (len(s) for s in b.input_shapes)
        if ra < rb:
            x = b.op("Unsqueeze", x, b.const(np.arange(1, 1 + rb - ra)))
        elif rb < ra:
            y = b.op("Unsqueeze", y, b.const(np.arange(1, 1 + ra - rb)))
        return b.op(self.onnx_type, x, y)


class Add(BroadcastMerge):
    """a + b (a residual or skip connection)."""

    name = "add"
    onnx_type = "Add"

    def forward(self, ctx, a, b):
        a, b = self.aligned(ctx, a, b)
        return a + b

    def backward(self, ctx, dy):
        sa, sb = ctx.input_shapes
        return self.unbroadcast(dy, sa), self.unbroadcast(dy, sb)


class Sub(BroadcastMerge):
    """a - b."""

    name = "sub"
    onnx_type = "Sub"

    def forward(self, ctx, a, b):
        a, b = self.aligned(ctx, a, b)
        return a - b

    def backward(self, ctx, dy):
        sa, sb = ctx.input_shapes
        return self.unbroadcast(dy, sa), self.unbroadcast(-dy, sb)


class Mul(BroadcastMerge):
    """a * b, elementwise (a gate, or a square with the same input twice)."""

    name = "mul"
    onnx_type = "Mul"

    def forward(self, ctx, a, b):
        ctx.a, ctx.b = a, b
        a, b = self.aligned(ctx, a, b)
        return a * b

    def backward(self, ctx, dy):
        sa, sb = ctx.input_shapes
        a, b = self.aligned(ctx, ctx.a, ctx.b)
        da = self.unbroadcast(dy * b, sa) if ctx.needs_grad[0] else None
        db = self.unbroadcast(dy * a, sb) if ctx.needs_grad[1] else None
        return da, db


class Concat(Op):
    """Join inputs along a per-sample axis (default the last one)."""

    name = "concat"
    n_inputs = None
    kind = "merge"
    attrs = {"axis": Attr(-1, "int", doc="per-sample axis; negative counts from the end")}

    def infer(self, attrs, *shapes):
        rank = len(shapes[0])
        if rank == 0:
            raise ShapeError("concat needs inputs with at least one axis, got scalars")
        axis = attrs["axis"]
        if not -rank <= axis < rank:
            raise ShapeError(f"concat axis {axis} is out of range for per-sample rank {rank}")
        axis %= rank
        for s in shapes:
            if len(s) != rank or s[:axis] + s[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:]:
                raise ShapeError(f"concat along axis {axis} needs equal shapes elsewhere, "
                                 f"got {list(shapes)}")
        return shapes[0][:axis] + (sum(s[axis] for s in shapes),) + shapes[0][axis + 1:]

    def forward(self, ctx, *xs):
        axis = ctx.attrs["axis"] % len(ctx.output_shape) + 1
        ctx.axis = axis
        ctx.splits = np.cumsum([x.shape[axis] for x in xs])[:-1]
        return np.concatenate(xs, axis=axis)

    def backward(self, ctx, dy):
        return tuple(np.split(dy, ctx.splits, axis=ctx.axis))

    def to_onnx(self, b, *xs):
        return b.op("Concat", *xs, axis=onnx_axis(b.attrs["axis"]))


class Flatten(Op):
    """Flatten each sample to one axis."""

    name = "flatten"
    kind = "shape"

    def infer(self, attrs, shape):
        return (math.prod(shape),)

    def forward(self, ctx, x):
        ctx.shape = x.shape
        return x.reshape((x.shape[0],) + ctx.output_shape)  # not -1: a batch may be empty

    def backward(self, ctx, dy):
        return (dy.reshape(ctx.shape),)

    def to_onnx(self, b, x):
        return b.op("Flatten", x, axis=1)


class Reshape(Op):
    """Give each sample a new shape with the same number of elements (one -1 allowed)."""

    name = "reshape"
    label_attr = "shape"
    kind = "shape"
    attrs = {"shape": Attr(kind="shape", doc="new per-sample shape; one entry may be -1")}

    def infer(self, attrs, shape):
        target = list(attrs["shape"])
        size = math.prod(shape)
        if target.count(-1) > 1:
            raise ShapeError(f"reshape allows one -1, got {tuple(target)}")
        known = math.prod(d for d in target if d != -1)
        if -1 in target:
            if known == 0 or size % known:
                raise ShapeError(f"cannot reshape per-sample shape {shape} ({size} elements) "
                                 f"to {tuple(target)}")
            target[target.index(-1)] = size // known
        if math.prod(target) != size:
            raise ShapeError(f"cannot reshape per-sample shape {shape} ({size} elements) to "
                             f"{tuple(target)} ({math.prod(target)} elements)")
        return tuple(target)

    def forward(self, ctx, x):
        return x.reshape((x.shape[0],) + ctx.output_shape)

    def backward(self, ctx, dy):
        return (dy.reshape((dy.shape[0],) + ctx.input_shapes[0]),)

    def to_onnx(self, b, x):
        return b.op("Reshape", x, b.const([0, *b.attrs["shape"]]))  # 0: keep the batch


class Dropout(Op):
    """Zero each element with probability rate while training, scale the rest by 1/(1-rate)."""

    name = "dropout"
    label_attr = "rate"
    kind = "layer"
    attrs = {"rate": Attr(0.5, "float", min=0.0, max=0.999, doc="probability of dropping")}

    def forward(self, ctx, x):
        rate = ctx.attrs["rate"]
        if not ctx.training or rate == 0:
            ctx.mask = None
            return x
        # uniforms of the model's dtype (a float32 model draws half the bits), turned
        # in place into the mask: 1 / (1 - rate) where kept, 0 where dropped
        mask = ctx.rng.random(x.shape, dtype=x.dtype, out=ctx.scratch("mask", x.shape, x.dtype))
        np.greater_equal(mask, rate, out=mask)
        ctx.mask = np.divide(mask, 1 - rate, out=mask)
        return np.multiply(x, mask, out=ctx.scratch("y", x.shape, x.dtype))

    def backward(self, ctx, dy):
        if ctx.mask is None:
            return (dy,)
        return (np.multiply(dy, ctx.mask, out=ctx.scratch("dx", dy.shape, dy.dtype)),)

    def to_onnx(self, b, x):  # the identity at inference, kept so that rate survives
        return b.op("Dropout", x, b.const(np.array(b.attrs["rate"], b.dtype)))


class Softmax(Op):
    """exp(x) / sum(exp(x)) along a per-sample axis (default the last)."""

    name = "softmax"
    kind = "activation"
    attrs = {"axis": Attr(-1, "int", doc="per-sample axis")}

    def infer(self, attrs, shape):
        if not shape:
            raise ShapeError("softmax needs at least one axis per sample, got a scalar")
        if not -len(shape) <= attrs["axis"] < len(shape):
            raise ShapeError(f"softmax axis {attrs['axis']} is out of range for shape {shape}")
        return shape

    def forward(self, ctx, x):
        axis = ctx.attrs["axis"] % len(ctx.output_shape) + 1
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        e /= e.sum(axis=axis, keepdims=True)
        ctx.y, ctx.axis = e, axis
        return e

    def backward(self, ctx, dy):
        y = ctx.y
        return (y * (dy - (dy * y).sum(axis=ctx.axis, keepdims=True)),)

    def to_onnx(self, b, x):
        return b.op("Softmax", x, axis=onnx_axis(b.attrs["axis"]))


class Identity(Op):
    """y = x: a named tap on a tensor."""

    name = "identity"
    kind = "shape"

    def forward(self, ctx, x):
        return x

    def backward(self, ctx, dy):
        return (dy,)

    def to_onnx(self, b, x):
        return b.op("Identity", x)


@hookimpl
def graphnet_ops():
    return [Input(), Dense(), Add(), Sub(), Mul(), Concat(), Flatten(), Reshape(),
            Dropout(), Softmax(), Identity()]
