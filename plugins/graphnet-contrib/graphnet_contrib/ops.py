"""layer_norm: an op with params (gamma, beta) and a hand-written backward."""

import numpy as np

import graphnet as gn


class LayerNorm(gn.Op):
    """Normalize each sample over its last axis, then scale and shift:
    y = gamma * (x - mean) / sqrt(var + eps) + beta (Ba, Kiros and Hinton 2016).

    gamma (ones) and beta (zeros) have the size of the last axis; mean and var
    are taken over that axis alone, the same in training and in inference.
    """

    name = "layer_norm"
    n_inputs = 1
    kind = "layer"
    attrs = {"eps": gn.Attr(1e-5, "float", min=0.0, doc="added to the variance")}

    def infer(self, attrs, shape):
        if len(shape) == 0:
            raise gn.ShapeError("layer_norm normalizes over the last axis and needs at "
                                "least one feature axis, got a scalar per sample")
        return shape

    def params(self, attrs, shape):
        d = shape[-1]
        return {"gamma": gn.Param((d,), "ones", d, d),
                "beta": gn.Param((d,), "zeros", d, d)}

    def forward(self, ctx, x, gamma, beta):
        mean = x.mean(axis=-1, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axis=-1, keepdims=True)
        inv_std = 1 / np.sqrt(var + x.dtype.type(ctx.attrs["eps"]))
        x_hat = centered * inv_std
        ctx.x_hat, ctx.inv_std, ctx.gamma = x_hat, inv_std, gamma
        return x_hat * gamma + beta

    def backward(self, ctx, dy):
        x_hat, inv_std = ctx.x_hat, ctx.inv_std
        need_x, need_gamma, need_beta = ctx.needs_grad
        axes = tuple(range(dy.ndim - 1))  # every axis but the normalized one
        dgamma = (dy * x_hat).sum(axis=axes) if need_gamma else None
        dbeta = dy.sum(axis=axes) if need_beta else None
        dx = None
        if need_x:
            # d x_hat, then through the mean and variance of the last axis:
            # dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat)), g = dy * gamma
            g = dy * ctx.gamma
            dx = inv_std * (g - g.mean(axis=-1, keepdims=True)
                            - x_hat * (g * x_hat).mean(axis=-1, keepdims=True))
        return dx, dgamma, dbeta

    def to_onnx(self, b, x, gamma, beta):
        if b.opset < 17:
            raise gn.GraphnetError(f"node {b.node!r}: layer_norm needs ONNX opset 17 or later "
                                   f"(LayerNormalization), got {b.opset}")
        return b.op("LayerNormalization", x, gamma, beta, axis=-1, epsilon=b.attrs["eps"])


OPS = [LayerNorm]
