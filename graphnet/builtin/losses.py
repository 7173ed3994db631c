"""Losses: ops with a scalar output, reduced by the mean (default) or the sum.

mse averages over every element (batch and features, as torch's MSELoss);
the cross-entropies sum over a sample's classes or outputs and average over
the batch. ``reduction="sum"`` gives the lecture's sum over the batch.
"""

import math

import numpy as np

from ..errors import FeedError, ShapeError
from ..ops import Attr, Op
from ..hookspecs import hookimpl
from .ops import ones, product

REDUCTION = Attr("mean", "str", choices=("mean", "sum"), doc="mean (default) or sum")


class Loss(Op):
    """Shared parts of the losses: two inputs, a scalar output, a reduction."""

    kind = "loss"
    n_inputs = 2
    attrs = {"reduction": REDUCTION}

    def infer(self, attrs, pred, target):
        if pred != target:
            raise ShapeError(f"{self.name} needs predictions and targets of one shape, "
                             f"got {pred} and {target}")
        return ()


class MSE(Loss):
    """Mean squared error: mean((pred - target)^2)."""

    name = "mse"

    def forward(self, ctx, pred, target):
        diff = np.subtract(pred, target, out=ctx.scratch("diff", pred.shape, pred.dtype))
        ctx.diff = diff
        flat = diff.reshape(-1)
        total = np.dot(flat, flat)
        ctx.scale = 1.0 / diff.size if ctx.attrs["reduction"] == "mean" else 1.0
        return np.asarray(total * ctx.scale, dtype=pred.dtype)

    def backward(self, ctx, dy):
        g = np.multiply(ctx.diff, 2 * ctx.scale * float(dy),  # a float: the array's dtype
                        out=ctx.scratch("dpred", ctx.diff.shape, ctx.diff.dtype))
        return g, (-g if ctx.needs_grad[1] else None)


class SoftmaxCrossEntropy(Loss):
    """Cross-entropy of softmax(logits) against integer labels (or probabilities).

    Uses log-sum-exp, so any finite logits give a finite loss; the backward is
    the fused (softmax - onehot) / N.
    """

    name = "softmax_cross_entropy"
    int_inputs = (1,)

    def infer(self, attrs, logits, labels):
        if len(logits) != 1:
            raise ShapeError(f"softmax_cross_entropy needs logits of shape (classes,) per "
                             f"sample, got {logits}")
        if labels not in ((), logits):
            raise ShapeError(f"softmax_cross_entropy needs integer labels of shape () or "
                             f"probabilities of shape {logits} per sample, got {labels}")
        return ()

    def forward(self, ctx, logits, labels):
        n, classes = logits.shape
        ctx.logits, ctx.top = logits, row_max(ctx, logits)   # kept for accuracy()
        shifted = np.subtract(logits, ctx.top,
                              out=ctx.scratch("probs", logits.shape, logits.dtype))
        if labels.ndim == 1:
            if labels.dtype.kind not in "iu":
                raise FeedError(f"softmax_cross_entropy in node {ctx.node!r} needs integer "
                                f"class labels, got {labels.dtype}")
            unsigned = labels.view(labels.dtype.str.replace("i", "u"))  # negatives: huge
            if n and unsigned.max() >= classes:                         # one pass checks both
                raise FeedError(f"node {ctx.node!r}: labels must lie in [0, {classes}), got "
                                f"values from {labels.min()} to {labels.max()}")
            rows = getattr(ctx, "rows", None)
            if rows is None or len(rows) != n:
                rows = ctx.rows = np.arange(n)
            ctx.picked = shifted[rows, labels]   # 0 where the label's logit is the row's max
            picked = ctx.picked_sum = ctx.picked.sum()
            exp = np.exp(shifted, out=shifted)   # the buffer now holds exp, then probs
            sums = row_sum(ctx, exp)
            total = np.log(sums).sum() - picked
        else:
            ctx.picked = None
            exp = np.exp(shifted)
            sums = row_sum(ctx, exp)
            ctx.log_probs = shifted - np.log(sums)   # backward's gradient for the targets
            total = -(labels * ctx.log_probs).sum()
        exp /= sums
        ctx.probs = exp
        ctx.labels = labels
        ctx.scale = 1.0 / n if ctx.attrs["reduction"] == "mean" else 1.0
        return np.asarray(total * ctx.scale, dtype=logits.dtype)

    def accuracy(self, ctx):
        """The last forward's fraction of labels that argmax(logits) gets right, from the
        values forward computed, so that fit's accuracy needs no argmax pass: a label is
        right where its shifted logit is 0, the row's maximum, unless a row ties two
        classes for it. None (ask argmax) for ties, non-finite values, probabilities."""
        picked = ctx.picked
        if picked is None or not len(picked) or not math.isfinite(ctx.picked_sum):
            return None            # a finite sum: no NaN or infinity holds any row's maximum
        n = len(picked)
        if np.count_nonzero(ctx.logits == ctx.top) != n:
            return None            # some row has two maxima: argmax takes the first
        return (n - np.count_nonzero(picked)) / n

    def backward(self, ctx, dy):
        """(softmax - onehot) * scale, in one buffer (backward may run twice on one forward)."""
        probs, labels = ctx.probs, ctx.labels
        scale = ctx.scale * float(dy)   # a Python float keeps probs' dtype, and costs less
        g = np.multiply(probs, scale, out=ctx.scratch("dlogits", probs.shape, probs.dtype))
        if labels.ndim == 1:
            g[ctx.rows, labels] -= scale
        else:
            g -= labels * scale
        dlabels = None
        if ctx.needs_grad[1] and labels.ndim != 1:
            dlabels = -ctx.log_probs * scale
        return g, dlabels


def row_max(ctx, x):
    """max over each row of 2-d ``x``, shape (n, 1). numpy reduces a short last axis one
    row at a time; with few columns, the maximum over the rows of the transposed copy
    runs vectorised along the batch, several times faster."""
    n, c = x.shape
    out = ctx.scratch("row_max", (n, 1), x.dtype)
    if c > 64 or n < 2 * c:
        return np.maximum.reduce(x, axis=1, keepdims=True, out=out)
    xt = ctx.scratch("transposed", (c, n), x.dtype)
    np.copyto(xt, x.T)
    np.maximum.reduce(xt, axis=0, out=out.reshape(n))
    return out


def row_sum(ctx, x):
    """The sum of each row of 2-d ``x``, shape (n, 1), as ``x @ ones`` (BLAS is faster
    than add.reduce over a short last axis)."""
    n, c = x.shape
    out = ctx.scratch("row_sum", (n, 1), x.dtype)
    product(x, ones(ctx, c, x.dtype), out.reshape(n))
    return out


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy on logits: -t log sigmoid(z) - (1 - t) log(1 - sigmoid(z)).

    Computed as max(z, 0) - z t + log(1 + e^-|z|), finite for any z. Sums over
    a sample's outputs and averages over the batch.
    """

    name = "binary_cross_entropy"

    def forward(self, ctx, z, t):
        loss = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
        ctx.z, ctx.t = z, t
        ctx.scale = 1.0 / z.shape[0] if ctx.attrs["reduction"] == "mean" else 1.0
        return np.asarray(loss.sum() * ctx.scale, dtype=z.dtype)

    def backward(self, ctx, dy):
        z, t = ctx.z, ctx.t
        e = np.exp(-np.abs(z))
        sig = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
        scale = ctx.scale * float(dy)
        dz = ((sig - t) * scale).astype(z.dtype, copy=False)
        dt = (-z * scale).astype(z.dtype, copy=False) if ctx.needs_grad[1] else None
        return dz, dt


@hookimpl
def graphnet_ops():
    return [MSE(), SoftmaxCrossEntropy(), BinaryCrossEntropy()]
