"""Builtin layers beyond dense: convolution, pooling, batch norm, embedding, normalize.

Per-sample layouts are channels-first, as in PyTorch: an image is (C, H, W)
and a conv2d weight is (filters, C, k, k). Convolution is im2col: the
windows of the padded input copied into a matrix and one matrix product;
its backward spreads the window gradients back. Both, and pooling, walk the
k * k kernel offsets, each a strided view of the whole batch: never a
Python loop over output positions.
"""

import numpy as np

from ..errors import FeedError, ShapeError
from ..hookspecs import hookimpl
from ..ops import Attr, Buffer, Op, Param


def _image(op, shape):
    """The (C, H, W) of a per-sample shape, or a ShapeError saying what is needed."""
    if len(shape) != 3:
        raise ShapeError(f"{op} needs images of per-sample shape (C, H, W), got {shape}; "
                         f"reshape the input first (e.g. reshape to (1, 8, 8))")
    return shape


def _out_size(op, size, window, stride, pad=0):
    """(size + 2 pad - window) // stride + 1, or a ShapeError if the window does not fit."""
    if size + 2 * pad < window:
        raise ShapeError(f"{op}: a window of {window} does not fit a side of {size}"
                         + (f" padded by {pad}" if pad else ""))
    return (size + 2 * pad - window) // stride + 1


def _offset(x, i, j, stride, ho, wo):
    """View of the (N, C, Ho, Wo) values at kernel offset (i, j) of every window of x."""
    return x[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]


def _batch_last(dst, x):
    """dst[..., i] = x[i] for each sample i: (N, ...) turned into (..., N).

    Where a sample's size is a multiple of 1 KiB, in blocks of 8 samples: the
    whole transpose at once reads the samples at the same offset a power of
    two apart, which share cache sets and evict each other (about 4x slower)."""
    axes = tuple(range(1, x.ndim)) + (0,)
    step = 8 if x[0].nbytes % 1024 == 0 else len(x)
    for s in range(0, len(x), step):
        np.copyto(dst[..., s:s + step], x[s:s + step].transpose(axes))


def _prepared(ctx, key, shape, dtype, prepare):
    """``ctx.scratch(key, shape, dtype)``, given to ``prepare`` once each time it is made:
    what that sets (a zero border, a row of ones) stays, later steps writing elsewhere."""
    buf = ctx.scratch(key, shape, dtype)
    done = ctx.__dict__.setdefault("prepared", {})
    if done.get(key) is not buf:
        prepare(buf)
        done[key] = buf
    return buf


class Conv2d(Op):
    """2-d convolution (cross-correlation, as torch.nn.Conv2d) of (C, H, W) images.

    im2col with the batch as the last axis: the padded input is kept as (C,
    Hp, Wp, N), so the values at one kernel offset of every window of every
    sample are a strided view whose rows run over whole rows of N-sample
    columns (long contiguous copies even for 4x4 images). The k * k views
    fill a (C k k, Ho Wo N) matrix and one matrix product with the weight
    gives every output; backward adds the window gradients back one kernel
    offset at a time. Only the samples axis is moved, on the way in and out.
    """

    name = "conv2d"
    label_attr = "filters"
    attrs = {"filters": Attr(kind="int", min=1, doc="output channels"),
             "kernel_size": Attr(kind="int", min=1, doc="side of the square kernel"),
             "stride": Attr(1, "int", min=1, doc="step between windows"),
             "padding": Attr(0, "int", min=0, doc="zeros added on each side"),
             "use_bias": Attr(True, "bool", doc="add a bias per filter"),
             "init": Attr("glorot_uniform", "init", doc="initializer of the weight"),
             "bias_init": Attr("zeros", "init", doc="initializer of the bias")}

    def infer(self, attrs, shape):
        _, h, w = _image("conv2d", shape)
        k, s, p = attrs["kernel_size"], attrs["stride"], attrs["padding"]
        return (attrs["filters"], _out_size("conv2d", h, k, s, p),
                _out_size("conv2d", w, k, s, p))

    def params(self, attrs, shape):
        f, c, k = attrs["filters"], shape[0], attrs["kernel_size"]
        fan_in, fan_out = c * k * k, f * k * k
        params = {"weight": Param((f, c, k, k), attrs["init"], fan_in, fan_out)}
        if attrs["use_bias"]:
            params["bias"] = Param((f,), attrs["bias_init"], fan_in, fan_out)
        return params

    def to_onnx(self, b, x, weight, bias=None):
        k, st, p = b.attrs["kernel_size"], b.attrs["stride"], b.attrs["padding"]
        return b.op("Conv", x, weight, *([bias] if bias else []), kernel_shape=[k, k],
                    strides=[st, st], pads=[p, p, p, p])

    @staticmethod
    def _windows(ctx, a):
        """The k * k (i, j, view) of ``a`` (C, Hp, Wp, N) at each kernel offset."""
        k, s = ctx.attrs["kernel_size"], ctx.attrs["stride"]
        _, ho, wo = ctx.output_shape
        for i in range(k):
            for j in range(k):
                yield i, j, a[:, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s]

    def forward(self, ctx, x, weight, bias=None):
        n, c, h, w = x.shape
        f, ho, wo = ctx.output_shape
        k, p = ctx.attrs["kernel_size"], ctx.attrs["padding"]
        r = c * k * k
        xp = _prepared(ctx, "xp", (c, h + 2 * p, w + 2 * p, n), x.dtype, lambda a: a.fill(0))
        _batch_last(xp[:, p:p + h, p:p + w], x)
        # rows (channel, kernel row, kernel col) and a row of ones that meets the bias
        cols = _prepared(ctx, "cols", (r + (bias is not None), ho * wo * n), x.dtype,
                         lambda a: a[r:].fill(1))
        windows = cols[:r].reshape(c, k, k, ho, wo, n)
        for i, j, view in self._windows(ctx, xp):
            np.copyto(windows[:, i, j], view)
        wmat = ctx.scratch("wmat", (f, cols.shape[0]), x.dtype)
        wmat[:, :r] = weight.reshape(f, r)
        if bias is not None:
            wmat[:, r] = bias
        y = np.matmul(wmat, cols, out=ctx.scratch("ymat", (f, ho * wo * n), x.dtype))
        ctx.cols, ctx.wmat, ctx.xshape = cols, wmat, x.shape
        out = ctx.scratch("y", (n, f, ho, wo), x.dtype)
        rows, flat = y.reshape(f * ho * wo, n), out.reshape(n, f * ho * wo)
        for r in range(0, len(rows), 64):       # in blocks, as _batch_last
            np.copyto(flat[:, r:r + 64], rows[r:r + 64].T)
        return out

    def backward(self, ctx, dy):
        n, c, h, w = ctx.xshape
        f, ho, wo = ctx.output_shape
        k, p = ctx.attrs["kernel_size"], ctx.attrs["padding"]
        r = c * k * k
        dyt = ctx.scratch("dyt", (f, ho, wo, n), dy.dtype)
        _batch_last(dyt, dy)
        dymat = dyt.reshape(f, ho * wo * n)
        # (C k k + 1, filters), the last row the bias's: BLAS is faster with the long
        # side of the product as rows
        dwt = np.matmul(ctx.cols, dymat.T, out=ctx.scratch("dwt", (len(ctx.cols), f),
                                                            dy.dtype))
        pg = ctx.param_grads or (None, None)
        grads = [None, pg[0] if pg[0] is not None else np.empty((f, c, k, k), dy.dtype)]
        np.copyto(grads[1].reshape(f, r), dwt[:r].T)
        if len(ctx.needs_grad) == 3:
            grads.append(pg[1] if len(pg) > 1 and pg[1] is not None else np.empty(f, dy.dtype))
            np.copyto(grads[2], dwt[r])
        if ctx.needs_grad[0]:
            dcols = np.matmul(ctx.wmat[:, :r].T, dymat,
                              out=ctx.scratch("dcols", (r, ho * wo * n), dy.dtype))
            dcols = dcols.reshape(c, k, k, ho, wo, n)
            dxp = ctx.scratch("dxp", (c, h + 2 * p, w + 2 * p, n), dy.dtype)
            dxp.fill(0)
            for i, j, view in self._windows(ctx, dxp):   # each window's gradient back
                view += dcols[:, i, j]                    # where its values came from
            dx = ctx.scratch("dx", ctx.xshape, dy.dtype)
            np.copyto(dx, dxp[:, p:p + h, p:p + w].transpose(3, 0, 1, 2))
            grads[0] = dx
        return tuple(grads)


class _Pool2d(Op):
    """Shared shape logic of max_pool2d and avg_pool2d: square windows, no padding."""

    kind = "layer"
    label_attr = "pool_size"
    attrs = {"pool_size": Attr(2, "int", min=1, doc="side of the square window"),
             "stride": Attr(None, "int", min=1, doc="step between windows (default: pool_size)")}

    def infer(self, attrs, shape):
        c, h, w = _image(self.name, shape)
        k, s = self.window(attrs)
        return (c, _out_size(self.name, h, k, s), _out_size(self.name, w, k, s))

    @staticmethod
    def window(attrs):
        k = attrs["pool_size"]
        return k, attrs["stride"] or k

    def fold(self, ctx, x, combine):
        """Each window's k*k offsets combined into the output: one numpy call per offset."""
        k, s = self.window(ctx.attrs)
        shape = (x.shape[0],) + ctx.output_shape
        ho, wo = shape[2:]
        out = ctx.scratch("y", shape, x.dtype)
        np.copyto(out, _offset(x, 0, 0, s, ho, wo))
        for off in range(1, k * k):
            combine(out, _offset(x, off // k, off % k, s, ho, wo), out=out)
        return out

    def to_onnx(self, b, x):
        k, s = self.window(b.attrs)
        return b.op(self.onnx_type, x, kernel_shape=[k, k], strides=[s, s])


class MaxPool2d(_Pool2d):
    """The largest value of each window, per channel (the first one where several tie,
    in row-major order within the window, as PyTorch)."""

    name = "max_pool2d"
    onnx_type = "MaxPool"

    def forward(self, ctx, x):
        k, s = self.window(ctx.attrs)
        ho, wo = ctx.output_shape[1:]
        # each kernel offset's values of every window copied side by side: the maximum
        # and backward's comparisons then run over contiguous arrays, not strided views
        offsets = ctx.scratch("offsets", (k * k, len(x)) + ctx.output_shape, x.dtype)
        for off in range(k * k):
            np.copyto(offsets[off], _offset(x, off // k, off % k, s, ho, wo))
        best = np.maximum.reduce(offsets, axis=0,
                                 out=ctx.scratch("y", offsets.shape[1:], x.dtype))
        ctx.offsets, ctx.y, ctx.xshape = offsets, best, x.shape
        return best

    def backward(self, ctx, dy):
        """dy goes to the first offset that holds each window's maximum."""
        k, s = self.window(ctx.attrs)
        offsets, y, shape = ctx.offsets, ctx.y, ctx.xshape
        ho, wo = dy.shape[2:]
        dx = ctx.scratch("dx", shape, dy.dtype)
        if not (s == k and shape[2] == ho * k and shape[3] == wo * k):
            dx.fill(0)         # windows that leave elements out, or overlap
        hit = ctx.scratch("hit", dy.shape, bool)
        left = ctx.scratch("left", dy.shape, bool)   # windows whose maximum is not found yet
        for off in range(k * k):
            np.equal(offsets[off], y, out=hit)
            if off == 0:
                np.logical_not(hit, out=left)
            else:
                hit &= left
                if off < k * k - 1:
                    left ^= hit
            view = _offset(dx, off // k, off % k, s, ho, wo)
            if s >= k:         # each element in one window at most
                np.multiply(dy, hit, out=view)
            else:
                view += dy * hit
        return (dx,)


class AvgPool2d(_Pool2d):
    """The mean of each window, per channel."""

    name = "avg_pool2d"
    onnx_type = "AveragePool"

    def forward(self, ctx, x):
        k, _ = self.window(ctx.attrs)
        total = self.fold(ctx, x, np.add)
        total *= x.dtype.type(1 / (k * k))
        ctx.xshape = x.shape
        return total

    def backward(self, ctx, dy):
        k, s = self.window(ctx.attrs)
        ho, wo = dy.shape[2:]
        share = dy * dy.dtype.type(1 / (k * k))
        dx = ctx.scratch("dx", ctx.xshape, dy.dtype)
        dx.fill(0)
        for off in range(k * k):
            _offset(dx, off // k, off % k, s, ho, wo)[...] += share
        return (dx,)


class GlobalAvgPool2d(Op):
    """The mean of each channel over the whole image: (C, H, W) -> (C,)."""

    name = "global_avg_pool2d"
    kind = "layer"

    def infer(self, attrs, shape):
        return _image("global_avg_pool2d", shape)[:1]

    def forward(self, ctx, x):
        ctx.xshape = x.shape
        return x.mean(axis=(2, 3), dtype=x.dtype)

    def to_onnx(self, b, x):
        if b.opset >= 18:            # axes became an input
            return b.op("ReduceMean", x, b.const([2, 3]), keepdims=0)
        return b.op("ReduceMean", x, axes=[2, 3], keepdims=0)

    def backward(self, ctx, dy):
        h, w = ctx.xshape[2:]
        return (np.broadcast_to((dy / dy.dtype.type(h * w))[:, :, None, None], ctx.xshape),)


def _feature_axes(ndim):
    """The axes batch_norm and normalize reduce over: the batch and the spatial axes."""
    return (0,) + tuple(range(2, ndim))


def _per_feature(v, ndim):
    """A (C,) vector shaped to broadcast against a (N, C, ...) batch."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _features(op, shape):
    if not shape:
        raise ShapeError(f"{op} needs per-sample features (axis 0 of the per-sample shape: "
                         f"(F,) or (C, H, W)), got a scalar; reshape it to (1,) first")
    return shape[0]


class BatchNorm(Op):
    """Normalise each feature over the batch (and spatial axes), then scale and shift.

    Training: the batch's mean and (biased) variance, and the running
    statistics move towards them: running = momentum * running + (1 -
    momentum) * batch, the variance unbiased there (as PyTorch, whose
    momentum is 1 - this one). Inference: the running statistics.
    """

    name = "batch_norm"
    attrs = {"momentum": Attr(0.9, "float", min=0.0, max=1.0,
                              doc="share of the running statistics kept per batch"),
             "eps": Attr(1e-5, "float", min=0.0, doc="added to the variance")}

    def infer(self, attrs, shape):
        _features("batch_norm", shape)
        return shape

    def params(self, attrs, shape):
        c = _features("batch_norm", shape)
        return {"gamma": Param((c,), "ones", c, c), "beta": Param((c,), "zeros", c, c)}

    def buffers(self, attrs, shape):
        c = _features("batch_norm", shape)
        return {"running_mean": Buffer((c,), 0.0), "running_var": Buffer((c,), 1.0)}

    def forward(self, ctx, x, gamma, beta):
        n, c = x.shape[:2]
        x3 = x.reshape(n, c, -1)        # (N, C, values per sample and feature)
        dt = x.dtype.type
        count = n * x3.shape[2]
        centred = ctx.scratch("centred", x3.shape, x.dtype)
        if ctx.training:                # einsum: one pass per sum, no temporaries
            mean = np.einsum("ncm->c", x3) / dt(count)
            np.subtract(x3, mean[:, None], out=centred)
            var = np.einsum("ncm,ncm->c", centred, centred) / dt(count)
            m = dt(ctx.attrs["momentum"])
            run_mean, run_var = ctx.buffers["running_mean"], ctx.buffers["running_var"]
            run_mean *= m
            run_mean += (1 - m) * mean
            run_var *= m
            run_var += (1 - m) * var * dt(count / max(count - 1, 1))   # unbiased
        else:
            mean, var = ctx.buffers["running_mean"], ctx.buffers["running_var"]
            np.subtract(x3, mean[:, None], out=centred)
        inv = 1 / np.sqrt(var + dt(ctx.attrs["eps"]))
        scale = gamma * inv
        out = np.multiply(centred, scale[:, None], out=ctx.scratch("y", x3.shape, x.dtype))
        out += beta[:, None]
        ctx.centred, ctx.inv, ctx.scale, ctx.batch_stats = centred, inv, scale, ctx.training
        return out.reshape(x.shape)

    def to_onnx(self, b, x, gamma, beta):   # the inference form: running statistics
        return b.op("BatchNormalization", x, gamma, beta, b.buffer("running_mean"),
                    b.buffer("running_var"), epsilon=b.attrs["eps"],
                    momentum=b.attrs["momentum"])

    def backward(self, ctx, dy):
        centred, inv, scale = ctx.centred, ctx.inv, ctx.scale
        dy3 = dy.reshape(centred.shape)
        count = centred.shape[0] * centred.shape[2]
        dbeta = np.einsum("ncm->c", dy3)
        dgamma = np.einsum("ncm,ncm->c", dy3, centred) * inv     # sum of dy * xhat
        dx = None
        if ctx.needs_grad[0]:
            dx = ctx.scratch("dx", centred.shape, dy.dtype)
            if ctx.batch_stats:   # the batch's mean and variance depend on x too:
                # scale * (dy - mean of dy - xhat * mean of dy * xhat), xhat = centred * inv
                np.subtract(dy3, (dbeta / count)[:, None], out=dx)
                dx *= scale[:, None]
                term = np.multiply(centred, (scale * inv * dgamma / count)[:, None],
                                   out=ctx.scratch("term", centred.shape, dy.dtype))
                dx -= term
            else:
                np.multiply(dy3, scale[:, None], out=dx)
            dx = dx.reshape(dy.shape)
        return dx, dgamma, dbeta


class Embedding(Op):
    """Rows of a (vocab, units) table picked by integer ids: (L,) -> (L, units)."""

    name = "embedding"
    label_attr = "units"
    int_inputs = (0,)
    attrs = {"vocab": Attr(kind="int", min=1, doc="number of ids: each lies in [0, vocab)"),
             "units": Attr(kind="int", min=1, doc="length of each row"),
             "init": Attr({"name": "uniform", "limit": 0.05}, "init",
                          doc="initializer of the table")}

    def infer(self, attrs, shape):
        if len(shape) > 1:
            raise ShapeError(f"embedding needs ids of per-sample shape (L,) or (), got {shape}")
        return tuple(shape) + (attrs["units"],)

    def params(self, attrs, shape):
        v, u = attrs["vocab"], attrs["units"]
        return {"weight": Param((v, u), attrs["init"], v, u)}

    def forward(self, ctx, ids, weight):
        if ids.dtype.kind not in "iu":
            raise FeedError(f"node {ctx.node!r} (embedding) needs integer ids, got an array of "
                            f"{ids.dtype}; declare its input with dtype int64")
        vocab = weight.shape[0]
        if ids.size and (ids.min() < 0 or ids.max() >= vocab):
            raise FeedError(f"node {ctx.node!r} (embedding): ids must lie in [0, {vocab}), got "
                            f"values from {ids.min()} to {ids.max()}; raise vocab or map the "
                            f"ids into range")
        ctx.ids = ids
        return weight[ids]

    def to_onnx(self, b, ids, weight):
        return b.op("Gather", weight, ids, axis=0)

    def backward(self, ctx, dy):
        units = dy.shape[-1]
        dw = ctx.param_grads[0] if ctx.param_grads else np.empty(
            (ctx.attrs["vocab"], units), dy.dtype)
        dw.fill(0)
        np.add.at(dw, ctx.ids.reshape(-1), dy.reshape(-1, units))
        return None, dw


class Normalize(Op):
    """(x - mean) / sqrt(variance + eps) per feature, with the data's own statistics.

    Features are axis 0 of the per-sample shape (the columns of tabular data,
    the channels of an image). ``mean`` and ``variance`` are buffers that fit
    (and ``graphnet train``) set from the training data before the first
    epoch, as Keras' Normalization.adapt; ``count`` is the number of values
    per feature they came from (0: not adapted yet, which leaves x as it is).
    """

    name = "normalize"
    kind = "layer"
    attrs = {"eps": Attr(1e-7, "float", min=0.0, doc="added to the variance")}

    def infer(self, attrs, shape):
        _features("normalize", shape)
        return shape

    def buffers(self, attrs, shape):
        c = _features("normalize", shape)
        return {"mean": Buffer((c,), 0.0), "variance": Buffer((c,), 1.0), "count": Buffer((), 0.0)}

    def forward(self, ctx, x):
        b, nd = ctx.buffers, x.ndim
        ctx.inv = _per_feature(1 / np.sqrt(b["variance"] + x.dtype.type(ctx.attrs["eps"])), nd)
        return (x - _per_feature(b["mean"], nd)) * ctx.inv

    def backward(self, ctx, dy):
        return (dy * ctx.inv,)

    def to_onnx(self, b, x):
        """A batch normalization of scale 1 and shift 0 (so it reads back as batch_norm)."""
        c = b.input_shapes[0][0]
        return b.op("BatchNormalization", x, b.const(np.ones(c)), b.const(np.zeros(c)),
                    b.buffer("mean"), b.buffer("variance"), epsilon=b.attrs["eps"])

    def adapted(self, buffers):
        """Whether the statistics were set already (fit adapts only those that were not)."""
        return bool(buffers["count"] > 0)

    def adapt(self, buffers, batches):
        """Set mean and variance from ``batches`` (arrays of this node's input), combining
        per-batch moments in float64 (Chan et al.), so no batch is kept."""
        count, mean, m2 = 0, 0.0, 0.0
        for x in batches:
            axes = _feature_axes(x.ndim)
            k = x.size // x.shape[1]
            if k == 0:
                continue
            bmean = x.mean(axis=axes, dtype=np.float64)
            bm2 = np.square(x - _per_feature(bmean, x.ndim)).sum(axis=axes, dtype=np.float64)
            delta = bmean - mean
            total = count + k
            mean = mean + delta * (k / total)
            m2 = m2 + bm2 + np.square(delta) * (count * k / total)
            count = total
        if count == 0:
            return
        buffers["mean"][...] = mean
        buffers["variance"][...] = m2 / count
        buffers["count"][...] = count


@hookimpl
def graphnet_ops():
    return [Conv2d(), MaxPool2d(), AvgPool2d(), GlobalAvgPool2d(), BatchNorm(), Embedding(),
            Normalize()]
