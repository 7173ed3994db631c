"""Builtin layers beyond dense: convolution, pooling, batch norm, embedding, normalize.

Per-sample layouts are channels-first, as in PyTorch: an image is (C, H, W)
and a conv2d weight is (filters, C, k, k). Convolution is im2col: the
windows of the input copied into a matrix (the padding's zeros set once)
and one matrix product; its backward spreads the window gradients back.
Both, and pooling, walk the k * k kernel offsets, each a strided view of
the whole batch: never a Python loop over output positions. 3x3 convolutions
over many channels of small images run as Winograd's F(2x2, 3x3) instead,
which needs 16 products per 2x2 block of outputs and channel pair, not 36.

Inside, convolution, pooling and batch norm compute on (C, H, W, N) arrays,
the samples axis last, and hand their outputs and input gradients on as
(N, C, H, W) views of them: the next such layer reads them without a copy,
and elementwise ops between (relu) keep the layout (``Context.scratch_like``).
"""

import numpy as np

from ..errors import FeedError, ShapeError
from ..hookspecs import hookimpl
from ..ops import Attr, Buffer, Op, Param
from .ops import ones


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


def _at_offsets(a, k, stride, ho, wo):
    """(i, j, view) for each kernel offset, row-major: the values of ``a`` (C, H, W, N)
    at offset (i, j) of every window, a (C, Ho, Wo, N) view."""
    for i in range(k):
        for j in range(k):
            yield i, j, a[:, i:i + stride * (ho - 1) + 1:stride,
                          j:j + stride * (wo - 1) + 1:stride]


_vecdot = getattr(np, "vecdot", None)     # numpy 2


def _row_dots(a, b):
    """The dot product of each row of ``a`` with the same row of ``b`` (2-d), in one pass
    and no array of their size (a product then a sum would write and read one)."""
    if _vecdot is not None:
        return _vecdot(a, b)
    return np.einsum("ij,ij->i", a, b)


def _batch_last(x):
    """The (C, H, W, N) view of an (N, C, H, W) batch (any number of axes, the samples
    moved last): the layout convolution, pooling and batch norm compute in, and hand on
    (as the view ``_batch_first`` makes)."""
    return x.transpose(tuple(range(1, x.ndim)) + (0,))


def _batch_first(a):
    """The (N, C, H, W) view of a (C, H, W, N) array (any number of axes)."""
    return a.transpose((a.ndim - 1,) + tuple(range(a.ndim - 1)))


class _RowBuffers:
    """Within: numpy's ufunc buffers no longer than a row of ``length`` values.

    numpy 2 runs an op that broadcasts a (C, 1) column over rows shorter than
    its buffer (8192 values) through that buffer, about twice as slow as over
    longer rows (13 against 6 us for 16 rows of 4096 float32 here); with the
    buffer no longer than a row, the rows are read in place. Setting and
    putting back the size costs about 3 us.
    """

    __slots__ = ("size", "old")

    def __init__(self, length):
        self.size = max(16, min(8192, length // 16 * 16))

    def __enter__(self):
        self.old = np.setbufsize(self.size)

    def __exit__(self, *exc):
        np.setbufsize(self.old)


def _contiguous(ctx, key, a):
    """``a`` when C-contiguous (it is, after a layer here), else its copy in scratch ``key``."""
    if a.flags.c_contiguous:
        return a
    out = ctx.scratch(key, a.shape, a.dtype)
    np.copyto(out, a)
    return out


def _prepared(ctx, key, shape, dtype, prepare):
    """``ctx.scratch(key, shape, dtype)``, given to ``prepare`` once each time it is made:
    what that sets (the padding's zeros, a row of ones) stays, later steps writing
    elsewhere."""
    buf = ctx.scratch(key, shape, dtype)
    done = ctx.__dict__.setdefault("prepared", {})
    if done.get(key) is not buf:
        prepare(buf)
        done[key] = buf
    return buf


# Winograd's F(2x2, 3x3) (Lavin and Gray, 2016): each 2x2 block of outputs of a 3x3
# convolution is A^T [(G w G^T) * (B^T d B)] A of the 4x4 input tile d under it, 16
# products per channel pair where the direct sum takes 36: the products over the
# channels become 16 (filters, C) by (C, tiles) matrix products, one per value of the
# transformed tile. With every 4x4 matrix flattened row-major, the two-sided
# transforms are Kronecker matrices; the tiles' 16 values are kept in the order (tile
# row pair, column pair, row, column), so that the four pairs are four block copies
# (a tile's rows 2 and 3 are the next tile's 0 and 1). The transforms' entries are 0,
# +-1/2 and +-1: the results differ from im2col's by a few roundings (about 1e-7
# relative in float32).
# Where it pays (``bench_cnn.py --conv-paths``; docs/performance.md has the numbers):
# the products it saves grow with input channels times filters, its transforms with
# their sum; from 8 input channels and 128 channel pairs (0.53 to 0.98x im2col's time,
# forward and backward; with 4 channels, or 64 channel pairs, 1.04 to 1.30x),
# on outputs of at most 12 x 12 (from 14 x 14, with 16 channels, the two are level)
# with even sides (an odd one would waste a row of tiles).
WINOGRAD_MIN_CHANNELS = 8
WINOGRAD_MIN_CHANNEL_PAIRS = 128
WINOGRAD_MAX_POSITIONS = 144
_TILE_ORDER = [(2 * ag + i) * 4 + 2 * bg + j
               for ag in (0, 1) for bg in (0, 1) for i in (0, 1) for j in (0, 1)]
_B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
_G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])
_A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]])
_WINOGRAD = {"B": np.kron(_B_T, _B_T)[:, _TILE_ORDER],   # (16 values, 16 tile entries)
             "G": np.kron(_G, _G),                       # (16 values, 9 weights)
             "A": np.kron(_A_T, _A_T)}                   # (4 outputs, 16 values)
_winograd_by_dtype = {}


def _winograd_matrices(dtype):
    """The three transforms in ``dtype``, and their transposes ("Bt", ...), C-contiguous."""
    got = _winograd_by_dtype.get(np.dtype(dtype))
    if got is None:
        got = _winograd_by_dtype[np.dtype(dtype)] = {
            **{k: m.astype(dtype) for k, m in _WINOGRAD.items()},
            **{k + "t": np.ascontiguousarray(m.T, dtype) for k, m in _WINOGRAD.items()}}
    return got


def _uses_winograd(attrs, channels, ho, wo):
    """Whether a convolution runs as Winograd's F(2x2, 3x3) rather than im2col: 3x3
    kernels at stride 1, where it pays (above)."""
    return (attrs["kernel_size"] == 3 and attrs["stride"] == 1
            and channels >= WINOGRAD_MIN_CHANNELS
            and channels * attrs["filters"] >= WINOGRAD_MIN_CHANNEL_PAIRS
            and ho * wo <= WINOGRAD_MAX_POSITIONS and ho % 2 == 0 and wo % 2 == 0)


def _matmul_in_blocks(a, b, out, block=2048):
    """a @ b into out, b's columns a block at a time: for the transforms (16 rows or fewer)
    a block that stays in cache runs about twice as fast as the whole product."""
    for i in range(0, b.shape[1], block):
        np.matmul(a, b[:, i:i + block], out=out[:, i:i + block])
    return out


class Conv2d(Op):
    """2-d convolution (cross-correlation, as torch.nn.Conv2d) of (C, H, W) images.

    im2col with the batch as the last axis: read as (C, H, W, N), the values
    at one kernel offset of every window of every sample are a strided view
    whose rows run over whole rows of N-sample columns (long contiguous
    copies even for 4x4 images). The k * k views fill a (C k k, Ho Wo N)
    matrix, whose entries in the padding stay the zeros they were made
    with, and one matrix product with the weight
    gives every output as (filters, Ho, Wo, N). That array is handed on as
    an (N, filters, Ho, Wo) view, which batch norm, pooling and convolution
    here read without a copy (``_batch_last``), so the samples axis moves
    only where a batch enters from elsewhere; backward adds the window
    gradients back one kernel offset at a time. Where ``_uses_winograd``,
    forward and backward run ``_winograd_forward`` and ``_winograd_backward``.
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
    def _regions(ctx, h, w):
        """Per kernel offset (i, j, input rows, input cols, output rows, output cols): the
        windows whose value at that offset lies inside the image (not in the padding),
        and where in the image those values are. Made once per input shape."""
        key = (h, w)
        got = getattr(ctx, "regions", None)
        if got is None or got[0] != key:
            _, ho, wo = ctx.output_shape
            k, s, p = ctx.attrs["kernel_size"], ctx.attrs["stride"], ctx.attrs["padding"]

            def span(i, size, out):
                # output positions o with 0 <= s o + i - p < size, and the inputs they read
                lo = max(0, -(-(p - i) // s))
                hi = min(out, (size - 1 + p - i) // s + 1)
                if hi <= lo:
                    return None     # every window has this offset in the padding
                return (slice(s * lo + i - p, s * (hi - 1) + i - p + 1, s), slice(lo, hi),
                        hi - lo == out)

            regions = []
            for i in range(k):
                rows = span(i, h, ho)
                for j in range(k):
                    cols = span(j, w, wo)
                    if rows and cols:
                        whole = rows[2] and cols[2] and s == 1 and ho == h and wo == w
                        regions.append((i, j, rows[0], cols[0], rows[1], cols[1], whole))
            got = ctx.regions = (key, regions)
        return got[1]

    def forward(self, ctx, x, weight, bias=None):
        n, c, h, w = x.shape
        f, ho, wo = ctx.output_shape
        ctx.winograd = _uses_winograd(ctx.attrs, c, ho, wo)
        if ctx.winograd:
            return self._winograd_forward(ctx, x, weight, bias)
        k = ctx.attrs["kernel_size"]
        r = c * k * k
        # rows (channel, kernel row, kernel col), and a row of ones that meets the bias;
        # the padding's zeros are set once and never written: each kernel offset copies
        # only the windows whose value lies inside the image
        cols = _prepared(ctx, "cols", (r + (bias is not None), ho * wo * n), x.dtype,
                         lambda a: (a[:r].fill(0), a[r:].fill(1)))
        windows = cols[:r].reshape(c, k, k, ho, wo, n)
        # samples last (a view after a layer here; a batch from elsewhere is copied once
        # here rather than gathered sample by sample k * k times below)
        xb = _contiguous(ctx, "xb", _batch_last(x))
        for i, j, ih, iw, oh, ow, _ in self._regions(ctx, h, w):
            np.copyto(windows[:, i, j, oh, ow], xb[:, ih, iw])
        # the weight as (C k k + 1, filters): BLAS runs this product faster than with the
        # (filters, C k k + 1) layout
        wmat = ctx.scratch("wmat", (len(cols), f), x.dtype)
        np.copyto(wmat[:r], weight.reshape(f, r).T)
        if bias is not None:
            wmat[r] = bias
        y = np.matmul(wmat.T, cols, out=ctx.scratch("y", (f, ho * wo * n), x.dtype))
        ctx.cols, ctx.wmat, ctx.xshape = cols, wmat, x.shape
        return _batch_first(y.reshape(f, ho, wo, n))

    def backward(self, ctx, dy):
        if ctx.winograd:
            return self._winograd_backward(ctx, dy)
        n, c, h, w = ctx.xshape
        f, ho, wo = ctx.output_shape
        k = ctx.attrs["kernel_size"]
        r = c * k * k
        dymat = _contiguous(ctx, "dyt", _batch_last(dy)).reshape(f, -1)
        # (C k k + 1, filters), the last row the bias's: BLAS is faster with the long
        # side of the product as rows
        dwt = np.matmul(ctx.cols, dymat.T, out=ctx.scratch("dwt", (len(ctx.cols), f),
                                                            dy.dtype))
        db = dwt[r] if len(dwt) > r else None           # the bias's row
        grads = [None] + self._weight_grads(ctx, dwt[:r].T.reshape(f, c, k, k), db, dy.dtype)
        if ctx.needs_grad[0]:
            # one kernel offset at a time: its (C, filters) slice of the weight times dy,
            # added back where the windows' values came from. Small products whose
            # result is still in cache when added beat one (C k k, Ho Wo N) product
            # written out whole and read back (about 1.5x here). An offset whose windows
            # cover the whole image (the centre of a "same" convolution) writes dx first.
            wt = ctx.scratch("wt", (k * k, c, f), dy.dtype)
            np.copyto(wt.reshape(k, k, c, f), ctx.wmat[:r].reshape(c, k, k, f)
                      .transpose(1, 2, 0, 3))
            dx = ctx.scratch("dx", (c, h, w, n), dy.dtype)
            regions = self._regions(ctx, h, w)
            first = next((reg for reg in regions if reg[6]), None)
            if first is None:
                dx.fill(0)
            else:
                np.matmul(wt[first[0] * k + first[1]], dymat, out=dx.reshape(c, -1))
            part = ctx.scratch("part", (c, dymat.shape[1]), dy.dtype)
            windows = part.reshape(c, ho, wo, n)
            for reg in regions:
                if reg is not first:
                    i, j, ih, iw, oh, ow, _ = reg
                    np.matmul(wt[i * k + j], dymat, out=part)
                    dx[:, ih, iw] += windows[:, oh, ow]
            grads[0] = _batch_first(dx)
        return tuple(grads)

    @staticmethod
    def _tiles(ctx, xshape):
        """(th, tw, tiles per channel) of the Winograd path: 2x2 output blocks, all samples."""
        _, ho, wo = ctx.output_shape
        return ho // 2, wo // 2, ho // 2 * (wo // 2) * xshape[0]

    @staticmethod
    def _tile_blocks(padded, tiles, th, tw):
        """(padded view, tiles view) of each of the four blocks of tile values, both as
        (C, th, 2, tw, 2, N): forward copies the first into the second, backward adds
        the second back into the first. ``padded`` is (C, 2 th + 2, 2 tw + 2, N) and
        ``tiles`` (16, C th tw N), its rows in _TILE_ORDER."""
        c, n = padded.shape[0], padded.shape[-1]
        pairs = padded.reshape(c, th + 1, 2, tw + 1, 2, n)
        blocks = tiles.reshape(2, 2, 2, 2, c, th, tw, n)
        for ag in (0, 1):
            for bg in (0, 1):
                yield (pairs[:, ag:ag + th, :, bg:bg + tw],
                       blocks[ag, bg].transpose(2, 3, 0, 4, 1, 5))

    @staticmethod
    def _weight_grads(ctx, dw, db, dtype):
        """The weight and bias gradients, written into the engine's arrays where given."""
        f, c = dw.shape[:2]
        pg = ctx.param_grads or (None, None)
        grads = [pg[0] if pg[0] is not None else np.empty(dw.shape, dtype)]
        np.copyto(grads[0], dw)
        if len(ctx.needs_grad) == 3:
            grads.append(pg[1] if len(pg) > 1 and pg[1] is not None else np.empty(f, dtype))
            np.copyto(grads[1], db)
        return grads

    def _winograd_forward(self, ctx, x, weight, bias):
        """F(2x2, 3x3) (see _WINOGRAD): the input tiles and the weight transformed, one
        (filters, C) by (C, tiles) product per tile value, the output transform."""
        n, c, h, w = x.shape
        f, ho, wo = ctx.output_shape
        p, dt = ctx.attrs["padding"], x.dtype
        th, tw, t = self._tiles(ctx, x.shape)
        mats = _winograd_matrices(dt)
        xp = _prepared(ctx, "xp", (c, ho + 2, wo + 2, n), dt, lambda a: a.fill(0))
        np.copyto(xp[:, p:p + h, p:p + w], _batch_last(x))
        tiles = ctx.scratch("tiles", (16, c * t), dt)
        for padded, block in self._tile_blocks(xp, tiles, th, tw):
            np.copyto(block, padded)
        v = _matmul_in_blocks(mats["B"], tiles, ctx.scratch("v", (16, c * t), dt))
        u = (mats["G"] @ weight.reshape(f * c, 9).T).reshape(16, f, c)
        m = ctx.scratch("m", (16, f * t), dt)
        np.matmul(u, v.reshape(16, c, t), out=m.reshape(16, f, t))
        out = _matmul_in_blocks(mats["A"], m, ctx.scratch("out", (4, f * t), dt))
        y = ctx.scratch("y", (f, ho, wo, n), dt)
        blocks_out = out.reshape(2, 2, f, th, tw, n).transpose(2, 3, 0, 4, 1, 5)
        if bias is None:
            np.copyto(y.reshape(f, th, 2, tw, 2, n), blocks_out)
        else:
            np.add(blocks_out, bias.reshape(f, 1, 1, 1, 1, 1), out=y.reshape(f, th, 2, tw, 2, n))
        ctx.v, ctx.u, ctx.xshape = v, u, x.shape
        return _batch_first(y)

    def _winograd_backward(self, ctx, dy):
        """The forward's steps transposed, in reverse: output transform, the products
        (for the weight's and the tiles' gradients), input transform, tiles added back."""
        n, c, h, w = ctx.xshape
        f, ho, wo = ctx.output_shape
        p, dt = ctx.attrs["padding"], dy.dtype
        th, tw, t = self._tiles(ctx, ctx.xshape)
        mats = _winograd_matrices(dt)
        # in the forward's scratch arrays where it is done with them (v is kept): the
        # fewer arrays a step touches, the more of them are still in cache
        dout = ctx.scratch("out", (4, f * t), dt)
        np.copyto(dout.reshape(2, 2, f, th, tw, n).transpose(2, 3, 0, 4, 1, 5),
                  _batch_last(dy).reshape(f, th, 2, tw, 2, n))
        dm = _matmul_in_blocks(mats["At"], dout, ctx.scratch("m", (16, f * t), dt))
        dm = dm.reshape(16, f, t)
        du = np.matmul(dm, ctx.v.reshape(16, c, t).transpose(0, 2, 1))
        dw = (mats["Gt"] @ du.reshape(16, f * c)).T.reshape(f, c, 3, 3)
        db = (dout.reshape(4, f, t) @ ones(ctx, t, dt)).sum(axis=0)
        grads = [None] + self._weight_grads(ctx, dw, db, dt)
        if ctx.needs_grad[0]:
            dv = np.matmul(ctx.u.transpose(0, 2, 1), dm, out=ctx.scratch("dv", (16, c, t), dt))
            dtiles = _matmul_in_blocks(mats["Bt"], dv.reshape(16, -1),
                                       ctx.scratch("tiles", (16, c * t), dt))
            dxp = ctx.scratch("dxp", (c, ho + 2, wo + 2, n), dt)
            dxp.fill(0)
            for padded, block in self._tile_blocks(dxp, dtiles, th, tw):
                padded += block
            dx = ctx.scratch("dx", (c, h, w, n), dt)
            np.copyto(dx, dxp[:, p:p + h, p:p + w])
            grads[0] = _batch_first(dx)
        return tuple(grads)


class _Pool2d(Op):
    """Shared logic of max_pool2d and avg_pool2d: square windows, no padding, computed
    as (C, H, W, N) arrays (see Conv2d): each kernel offset's values of every window
    are then a view of rows of whole N-sample columns."""

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

    def offsets(self, ctx, a):
        """The k * k views of ``a`` (C, H, W, N) at each kernel offset, row-major."""
        k, s = self.window(ctx.attrs)
        _, ho, wo = ctx.output_shape
        return [view for _, _, view in _at_offsets(a, k, s, ho, wo)]

    def fold(self, ctx, x, combine):
        """The offset views of batch ``x`` and their values combined window by window
        (``combine(out, view, out=out)``) into the (C, Ho, Wo, N) scratch output."""
        views = self.offsets(ctx, _batch_last(x))
        out = ctx.scratch("y", views[0].shape, x.dtype)
        np.copyto(out, views[0])
        for view in views[1:]:
            combine(out, view, out=out)
        return views, out

    def gradient_buffer(self, ctx, dy):
        """The (C, H, W, N) scratch array backward writes dx into, zero where no window
        writes or where windows overlap (they add)."""
        k, s = self.window(ctx.attrs)
        n, c, h, w = ctx.xshape
        dx = ctx.scratch("dx", (c, h, w, n), dy.dtype)
        if not (s == k and h == dy.shape[2] * k and w == dy.shape[3] * k):
            dx.fill(0)
        return dx

    def to_onnx(self, b, x):
        k, s = self.window(b.attrs)
        return b.op(self.onnx_type, x, kernel_shape=[k, k], strides=[s, s])


class MaxPool2d(_Pool2d):
    """The largest value of each window, per channel (the first one where several tie,
    in row-major order within the window, as PyTorch)."""

    name = "max_pool2d"
    onnx_type = "MaxPool"

    def forward(self, ctx, x):
        views, best = self.fold(ctx, x, np.maximum)
        ctx.views, ctx.y, ctx.xshape = views, best, x.shape
        return _batch_first(best)

    def backward(self, ctx, dy):
        """dy goes to the first offset that holds each window's maximum."""
        k, s = self.window(ctx.attrs)
        # dy as (C, Ho, Wo, N) with the samples contiguous (one copy when it comes from a
        # flatten, samples first), so that each offset's product runs over rows of N
        y, dyb = ctx.y, _contiguous(ctx, "dyb", _batch_last(dy))
        dx = self.gradient_buffer(ctx, dy)
        hit = ctx.scratch("hit", y.shape, bool)
        left = ctx.scratch("left", y.shape, bool)   # windows whose maximum is not found yet
        last = len(ctx.views) - 1
        for off, (view, dxv) in enumerate(zip(ctx.views, self.offsets(ctx, dx))):
            np.equal(view, y, out=hit)
            if off == 0:
                np.logical_not(hit, out=left)
            else:
                hit &= left
                if off < last:
                    left ^= hit
            if s >= k:         # each element in one window at most
                np.multiply(dyb, hit, out=dxv)
            else:
                dxv += dyb * hit
        return (_batch_first(dx),)


class AvgPool2d(_Pool2d):
    """The mean of each window, per channel."""

    name = "avg_pool2d"
    onnx_type = "AveragePool"

    def forward(self, ctx, x):
        views, total = self.fold(ctx, x, np.add)
        total *= x.dtype.type(1 / len(views))
        ctx.xshape = x.shape
        return _batch_first(total)

    def backward(self, ctx, dy):
        k, _ = self.window(ctx.attrs)
        dx = self.gradient_buffer(ctx, dy)
        dx.fill(0)                      # every window adds its share
        share = _batch_last(dy) * dy.dtype.type(1 / (k * k))
        for dxv in self.offsets(ctx, dx):
            dxv += share
        return (_batch_first(dx),)


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

    Computed as one row per feature, the batch last ((C, H W N) for images:
    the layout Conv2d hands on, read without a copy); each sum over a
    feature's values is a matrix-vector product with a vector of ones, which
    BLAS runs faster than numpy's reductions, and each sum of products a row's
    dot product.
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

    @staticmethod
    def _rows(ctx, key, x):
        """x (N, C, ...) as a C-contiguous (C, values per feature) array, the batch last
        (a view of a layer's output here, else a copy in scratch ``key``)."""
        a = _contiguous(ctx, key, _batch_last(x))
        return a.reshape(len(a), -1)

    @staticmethod
    def _back(ctx, rows, n):
        """(C, values) rows back as the (N, C, ...) batch of ``n`` samples, a view."""
        return _batch_first(rows.reshape(ctx.output_shape + (n,)))

    def forward(self, ctx, x, gamma, beta):
        rows = self._rows(ctx, "x", x)
        with _RowBuffers(rows.shape[1]):
            count = rows.shape[1]
            dt = x.dtype.type
            centred = ctx.scratch("centred", rows.shape, x.dtype)
            out = ctx.scratch("y", rows.shape, x.dtype)
            if ctx.training:
                ones_ = ones(ctx, count, x.dtype)
                mean = (rows @ ones_) / dt(count)
                np.subtract(rows, mean[:, None], out=centred)
                var = _row_dots(centred, centred) / dt(count)
                m = dt(ctx.attrs["momentum"])
                run_mean, run_var = ctx.buffers["running_mean"], ctx.buffers["running_var"]
                run_mean *= m
                run_mean += (1 - m) * mean
                run_var *= m
                run_var += (1 - m) * var * dt(count / max(count - 1, 1))   # unbiased
            else:
                mean, var = ctx.buffers["running_mean"], ctx.buffers["running_var"]
                np.subtract(rows, mean[:, None], out=centred)
            inv = 1 / np.sqrt(var + dt(ctx.attrs["eps"]))
            scale = gamma * inv
            np.multiply(centred, scale[:, None], out=out)
            out += beta[:, None]
            ctx.centred, ctx.inv, ctx.scale, ctx.batch_stats = centred, inv, scale, ctx.training
            return self._back(ctx, out, len(x))

    def to_onnx(self, b, x, gamma, beta):   # the inference form: running statistics
        return b.op("BatchNormalization", x, gamma, beta, b.buffer("running_mean"),
                    b.buffer("running_var"), epsilon=b.attrs["eps"],
                    momentum=b.attrs["momentum"])

    def backward(self, ctx, dy):
        centred, inv, scale = ctx.centred, ctx.inv, ctx.scale
        rows = self._rows(ctx, "dy", dy)
        with _RowBuffers(rows.shape[1]):
            count = rows.shape[1]
            ones_ = ones(ctx, count, dy.dtype)
            dbeta = rows @ ones_
            dx = ctx.scratch("dx", centred.shape, dy.dtype)
            dgamma = _row_dots(rows, centred) * inv    # the sum of dy * xhat
            if not ctx.needs_grad[0]:
                return None, dgamma, dbeta
            if ctx.batch_stats:   # the batch's mean and variance depend on x too:
                # scale * (dy - mean of dy - xhat * mean of dy * xhat), xhat = centred * inv,
                # in dx alone (no second array of its size)
                np.multiply(centred, (inv * dgamma / count)[:, None], out=dx)
                np.subtract(rows, dx, out=dx)
                dx -= (dbeta / count)[:, None]
                dx *= scale[:, None]
            else:
                np.multiply(rows, scale[:, None], out=dx)
            return self._back(ctx, dx, len(dy)), dgamma, dbeta


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
