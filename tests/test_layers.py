"""Layers beyond dense: values against direct definitions (and PyTorch where it is
installed), batch_norm's running statistics and modes, buffers in checkpoints and
resumes, normalize's adapt, embedding ids. Gradients: tests/test_ops.py CASES."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

import graphnet as gn
from graphnet.serialize import graph_from_json
from graphnet.testing import check_op


def run(op, x, attrs=None, params=None, dtype="int64", training=False, buffers=None):
    """One node on a batch x; params and buffers set by short name; the model and output."""
    g = gn.Graph()
    xi = g.input("x", x.shape[1:], dtype=dtype if x.dtype.kind in "iu" else "float64")
    g.output(g.add(op, xi, name="node", **(attrs or {})))
    model = gn.Model(g, dtype="float64")
    for k, v in (params or {}).items():
        model.params[f"node.{k}"][...] = v
    for k, v in (buffers or {}).items():
        model.buffers[f"node.{k}"][...] = v
    return model, model.forward({"x": x}, training=training)["node"]


def conv_by_definition(x, w, b, stride, pad):
    """y[n, f, i, j] = b[f] + sum over c, u, v of w[f, c, u, v] * xpad[n, c, i*s + u, j*s + v]."""
    n, c, h, wd = x.shape
    f, _, k, _ = w.shape
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    y = np.zeros((n, f, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            y[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return y


def pool_by_definition(x, k, stride, reduce):
    n, c, h, w = x.shape
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    y = np.zeros((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            y[:, :, i, j] = reduce(x[:, :, i * stride:i * stride + k, j * stride:j * stride + k],
                                   axis=(2, 3))
    return y


# --- values -------------------------------------------------------------------------
def test_conv2d_of_a_hand_computed_case():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    _, y = run("conv2d", x, {"filters": 1, "kernel_size": 2},
               {"weight": np.ones((1, 1, 2, 2)), "bias": [0.5]})
    assert y.tolist() == [[[[8.5, 12.5], [20.5, 24.5]]]]
    _, y = run("conv2d", x, {"filters": 1, "kernel_size": 2, "stride": 2, "padding": 1},
               {"weight": np.ones((1, 1, 2, 2)), "bias": [0.0]})
    assert y.tolist() == [[[[0.0, 3.0], [9.0, 24.0]]]]   # corner windows half in the zeros


@pytest.mark.parametrize("k, stride, pad", [(3, 1, 0), (3, 2, 1), (2, 3, 2), (1, 1, 0),
                                            (2, 4, 3), (3, 1, 4)])
def test_conv2d_matches_its_definition(k, stride, pad):
    """(2, 4, 3): a stride above the kernel, the windows at both ends partly in the
    padding (rows -3, 1, 5); (3, 1, 4): padding wider than the kernel, whole windows
    of zeros."""
    rng = np.random.default_rng(k * 10 + stride)
    x, w, b = rng.normal(size=(2, 3, 7, 6)), rng.normal(size=(4, 3, k, k)), rng.normal(size=4)
    model, y = run("conv2d", x, {"filters": 4, "kernel_size": k, "stride": stride,
                                 "padding": pad}, {"weight": w, "bias": b})
    np.testing.assert_allclose(y, conv_by_definition(x, w, b, stride, pad), atol=1e-12)
    assert y.shape[1:] == model.nodes["node"].shape


def test_conv2d_over_batches_of_other_sizes_in_turn():
    """The column matrix is kept from step to step: a batch of 19, then 3, then 19
    again, each matches the definition (the padding's zeros and the row of ones are
    set again whenever the matrix is made again)."""
    rng = np.random.default_rng(7)
    w, b = rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4)
    for shape in ((2, 8, 8), (2, 5, 4)):
        g = gn.Graph()
        g.output(g.add("conv2d", g.input("x", shape, dtype="float64"), name="node",
                       filters=4, kernel_size=3, padding=1))
        model = gn.Model(g, dtype="float64")
        model.params["node.weight"][...], model.params["node.bias"][...] = w, b
        for n in (19, 3, 19):
            x = rng.normal(size=(n, *shape))
            np.testing.assert_allclose(model.forward({"x": x})["node"],
                                       conv_by_definition(x, w, b, 1, 1), atol=1e-12)


@pytest.mark.parametrize("shape, attrs", [
    ((2, 8, 8), {"filters": 2, "kernel_size": 3, "padding": 1}),
    ((2, 8, 8), {"filters": 2, "kernel_size": 2, "stride": 2}),
    ((2, 5, 5), {"filters": 3, "kernel_size": 3, "padding": 1}),
    ((2, 5, 5), {"filters": 2, "kernel_size": 3, "stride": 2, "padding": 1,
                 "use_bias": False}),
    ((2, 2, 3), {"filters": 2, "kernel_size": 2, "stride": 3, "padding": 2}),
    ((1, 3, 3), {"filters": 2, "kernel_size": 3, "padding": 3})])
def test_conv2d_gradcheck_over_several_blocks_of_samples(shape, attrs):
    """Batches of 11, with and without bias, padding and stride; (2, 2, 3) with a kernel
    row in the padding for every window (rows at -2 and 1: offset 1 reads -1 and 2);
    padding wider than the kernel."""
    report = check_op("conv2d", [shape], attrs, batch=11)
    assert report.ok and report.max_error < 1e-6, str(report)


def winograd_taken(model):
    """Whether the last forward ran a convolution through the Winograd path."""
    return any(getattr(ctx, "winograd", False) for ctx in model._last[0].contexts)


@pytest.mark.parametrize("shape, pad, bias, filters, winograd", [
    ((16, 4, 4), 1, True, 16, True), ((16, 6, 4), 0, False, 8, True),
    ((17, 4, 6), 2, True, 8, True), ((8, 4, 4), 1, True, 16, True),
    ((16, 9, 7), 0, True, 8, False), ((16, 14, 12), 1, True, 8, False),
    ((4, 4, 4), 1, True, 32, False), ((8, 4, 4), 1, True, 8, False)])
def test_conv2d_winograd_matches_its_definition(shape, pad, bias, filters, winograd):
    """3x3 stride-1 kernels on 8 channels or more, 128 channel pairs (channels times
    filters) or more and an even output of at most 144 positions run Winograd's
    F(2x2, 3x3); the values are the definition's, in float64 and (to float32's
    rounding) in float32. Odd (7 x 5), large (14 x 12) outputs, 4 channels and 64
    channel pairs take the im2col path."""
    rng = np.random.default_rng(sum(shape) + pad)
    x, w = rng.normal(size=(5, *shape)), rng.normal(size=(filters, shape[0], 3, 3))
    b = rng.normal(size=filters) if bias else np.zeros(filters)
    ref = conv_by_definition(x, w, b, 1, pad)
    for dtype, tol in (("float64", 1e-12), ("float32", 1e-5)):
        g = gn.Graph()
        g.output(g.add("conv2d", g.input("x", shape), name="node", filters=filters,
                       kernel_size=3, padding=pad, use_bias=bias))
        model = gn.Model(g, dtype=dtype)
        model.params["node.weight"][...] = w
        if bias:
            model.params["node.bias"][...] = b
        y = model.forward({"x": x})["node"]
        assert winograd_taken(model) == winograd
        np.testing.assert_allclose(y, ref, atol=tol * np.abs(ref).max())


@pytest.mark.parametrize("shape, attrs", [
    ((16, 4, 4), {"filters": 8, "kernel_size": 3, "padding": 1}),
    ((16, 4, 6), {"filters": 8, "kernel_size": 3, "use_bias": False}),
    ((16, 2, 2), {"filters": 8, "kernel_size": 3, "padding": 2})])
def test_conv2d_winograd_gradcheck(shape, attrs):
    """The Winograd path's gradients (inputs, weight, bias) against finite differences:
    tiles overlapping, no padding, padding wider than the image."""
    from graphnet.builtin import layers
    c, h, w = shape
    side = [n + 2 * attrs.get("padding", 0) - 2 for n in (h, w)]
    assert layers._uses_winograd({"stride": 1, **attrs}, c, *side)
    report = check_op("conv2d", [shape], attrs, batch=3)
    assert report.ok and report.max_error < 1e-6, str(report)


def test_conv2d_winograd_over_batches_of_other_sizes_in_turn(monkeypatch):
    """The padded copy is kept from step to step and its zeros set again when it is made
    again: batches of 7, 2, 7 each match the definition, every entry of every
    gradient matches the im2col path's (tested against finite differences and
    PyTorch above), and a second backward of the same forward gives the same."""
    from graphnet.builtin import layers
    rng = np.random.default_rng(8)
    w, b = rng.normal(size=(8, 16, 3, 3)), rng.normal(size=8)

    def model():
        g = gn.Graph()
        c = g.add("conv2d", g.input("x", (16, 4, 4), dtype="float64"), name="node",
                  filters=8, kernel_size=3, padding=1)
        g.add("mse", c, g.input("t", (8, 4, 4), dtype="float64"), name="loss", reduction="sum")
        m = gn.Model(g, dtype="float64")
        m.params["node.weight"][...], m.params["node.bias"][...] = w, b
        return m

    def step(m, feeds):
        y = m.forward(feeds, outputs=("node", "loss"), training=True)["node"]
        return y, m.backward(inputs=True), winograd_taken(m)

    fast, direct = model(), model()
    for n in (7, 2, 7):
        feeds = {"x": rng.normal(size=(n, 16, 4, 4)), "t": rng.normal(size=(n, 8, 4, 4))}
        y, grads, taken = step(fast, feeds)
        with monkeypatch.context() as patch:
            patch.setattr(layers, "WINOGRAD_MIN_CHANNELS", 17)
            y_direct, grads_direct, taken_direct = step(direct, feeds)
        assert taken and not taken_direct
        np.testing.assert_allclose(y, conv_by_definition(feeds["x"], w, b, 1, 1), atol=1e-12)
        again = fast.backward(inputs=True)     # a second backward of the same forward
        for key in ("x", "node.weight", "node.bias"):
            np.testing.assert_allclose(grads[key], grads_direct[key], rtol=1e-12, atol=1e-12)
            np.testing.assert_array_equal(again[key], grads[key])


def cnn(stride=1):
    """conv -> batch_norm -> relu -> max pool -> conv -> relu -> avg pool -> dense."""
    g = gn.Graph("cnn")
    x, y = g.input("x", (2, 8, 8)), g.input("y", (), dtype="int64")
    h = g.add("conv2d", x, filters=4, kernel_size=3, padding=1, stride=stride, name="conv1")
    h = g.add("relu", g.add("batch_norm", h, name="bn"), name="relu1")
    h = g.add("max_pool2d", h, name="pool1")
    h = g.add("relu", g.add("conv2d", h, filters=3, kernel_size=2, padding=1,
                                   name="conv2"), name="relu2")
    h = g.add("avg_pool2d", h, pool_size=2, stride=1, name="pool2")
    out = g.add("dense", g.add("flatten", h, name="flat"), units=3, name="out")
    g.add("softmax_cross_entropy", out, y, name="loss")
    g.output(out)
    return g


def test_image_layers_hand_on_batch_last_views_that_relu_keeps():
    """conv2d, batch_norm and the poolings hand on (N, C, H, W) views of arrays with the
    samples last, which relu keeps; each node's value is what its op gives for a
    plain C-contiguous copy of its input, and gradients pass finite differences."""
    model = gn.Model(cnn(), seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    feeds = {"x": rng.normal(size=(5, 2, 8, 8)), "y": rng.integers(0, 3, 5)}
    model.forward(feeds, outputs=["loss"], training=True)
    plan, vals = model._last
    for name in ("conv1", "bn", "relu1", "pool1", "conv2", "relu2", "pool2"):
        value = vals[plan.slot[name]]
        assert value.strides[0] == value.itemsize, name       # samples the fastest axis
        node = model.nodes[name]
        if node.op.name == "relu":
            continue
        given = np.ascontiguousarray(vals[plan.slot[node.inputs[0]]])
        params = {k.split(".")[1]: v for k, v in model.params.items()
                  if k.startswith(name + ".")}
        attrs = {k: v for k, v in node.attrs.items() if v is not None}
        _, want = run(node.op.name, given, attrs, params, training=True)
        np.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-12)
    grads = model.backward(inputs=True)
    assert grads["x"].shape == (5, 2, 8, 8)
    for stride in (1, 2):
        assert gn.gradcheck(gn.Model(cnn(stride), seed=1), feeds, inputs=True,
                            training=True).ok


def test_scratch_like_follows_the_layout_of_its_model():
    from graphnet.ops import Context
    ctx = Context("node", {})
    a = np.zeros((3, 4, 5, 6), np.float32).transpose(3, 0, 1, 2)
    buf = ctx.scratch_like("y", a)
    assert buf.shape == a.shape and buf.strides == a.strides and buf.dtype == a.dtype
    assert ctx.scratch_like("y", a) is buf                       # kept from call to call
    c = np.zeros((6, 3, 4, 5), np.float32)
    assert ctx.scratch_like("y", c).flags.c_contiguous          # made again for another layout
    padded = np.zeros((3, 6, 7, 6))[:, 1:5, 1:6].transpose(3, 0, 1, 2)  # not dense
    got = ctx.scratch_like("y", padded)
    assert got.shape == padded.shape and ctx.scratch_like("y", padded) is got


@pytest.mark.parametrize("op, reduce", [("max_pool2d", np.max), ("avg_pool2d", np.mean)])
@pytest.mark.parametrize("k, stride", [(2, None), (3, 1), (2, 3)])
def test_pooling_matches_its_definition(op, reduce, k, stride):
    x = np.random.default_rng(k).normal(size=(2, 3, 7, 6))
    _, y = run(op, x, {"pool_size": k, **({"stride": stride} if stride else {})})
    np.testing.assert_allclose(y, pool_by_definition(x, k, stride or k, reduce), atol=1e-12)


@pytest.mark.parametrize("shape, attrs", [
    ((3, 4, 6), {}),                                # windows tile the image: dx not zeroed
    ((3, 5, 5), {}),                                # the last row and column in no window
    ((2, 5, 5), {"pool_size": 3, "stride": 2}),     # overlapping windows: summed back
    ((2, 6, 6), {"pool_size": 2, "stride": 3})])    # gaps between windows
def test_max_pool2d_gradcheck_of_each_window_layout(shape, attrs):
    report = check_op("max_pool2d", [shape], attrs, batch=11)
    assert report.ok and report.max_error < 1e-6, str(report)


def test_max_pool2d_sends_the_gradient_to_the_largest_value():
    x = np.array([[[[1.0, 5.0], [2.0, 3.0]]]])
    model, y = run("max_pool2d", x)
    assert y.tolist() == [[[[5.0]]]]
    g = gn.Graph()
    xi = g.input("x", (1, 2, 2), dtype="float64")
    g.add("mse", g.add("max_pool2d", xi), g.input("t", (1, 1, 1), dtype="float64"), name="loss")
    m = gn.Model(g, dtype="float64")
    m.forward({"x": x, "t": np.zeros((1, 1, 1, 1))}, training=True)
    assert m.backward(inputs=True)["x"].tolist() == [[[[0.0, 10.0], [0.0, 0.0]]]]  # 2 * 5


@pytest.mark.parametrize("stride", [2, 1])
def test_max_pool2d_gives_a_tie_to_its_first_value_only(stride):
    """As PyTorch: the first maximum in row-major order within the window."""
    g = gn.Graph()
    xi = g.input("x", (1, 2, 3), dtype="float64")
    p = g.add("max_pool2d", xi, stride=stride, name="p")
    g.add("mse", p, g.input("t", (1, 1, 3 - stride), dtype="float64"), name="loss",
          reduction="sum")
    m = gn.Model(g, dtype="float64")
    x = np.array([[[[7.0, 7.0, 7.0], [7.0, 7.0, 1.0]]]])
    m.forward({"x": x, "t": np.zeros((1, 1, 1, 3 - stride))}, training=True)
    want = [[14.0, 0, 0], [0, 0, 0]] if stride == 2 else [[14.0, 14.0, 0], [0, 0, 0]]
    assert m.backward(inputs=True)["x"][0, 0].tolist() == want


def test_global_avg_pool2d_is_the_channel_mean():
    x = np.random.default_rng(0).normal(size=(3, 2, 4, 5))
    model, y = run("global_avg_pool2d", x)
    assert model.nodes["node"].shape == (2,)
    np.testing.assert_allclose(y, x.mean(axis=(2, 3)))


def test_embedding_picks_rows():
    table = np.arange(12.0).reshape(4, 3)
    _, y = run("embedding", np.array([[0, 3], [2, 2]]), {"vocab": 4, "units": 3},
               {"weight": table})
    assert y.tolist() == [[table[0].tolist(), table[3].tolist()],
                          [table[2].tolist(), table[2].tolist()]]


@pytest.mark.parametrize("ids", [[[0, 4]], [[-1, 0]]])
def test_embedding_id_out_of_range_is_a_feed_error_naming_the_node(ids):
    with pytest.raises(gn.FeedError, match=r"node 'node' \(embedding\).*\[0, 4\)"):
        run("embedding", np.array(ids), {"vocab": 4, "units": 2})


def test_embedding_gradient_sums_repeated_ids():
    g = gn.Graph()
    ids = g.input("ids", (3,), dtype="int64")
    e = g.add("embedding", ids, vocab=4, units=2, name="emb")
    g.add("mse", e, g.input("t", (3, 2), dtype="float64"), name="loss", reduction="sum")
    m = gn.Model(g, dtype="float64")
    m.params["emb.weight"][...] = 0
    m.forward({"ids": np.array([[1, 1, 3]]), "t": -np.ones((1, 3, 2))}, training=True)
    # d/dw of sum (w[id] + 1)^2 = 2 (w[id] + 1) = 2 per use: id 1 twice, id 3 once
    assert m.backward()["emb.weight"].tolist() == [[0, 0], [4, 4], [0, 0], [2, 2]]


# --- batch_norm ---------------------------------------------------------------------
def test_batch_norm_training_uses_the_batch_and_moves_the_running_statistics():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(8, 2, 3, 3))
    gamma, beta = np.array([1.5, 0.5]), np.array([0.1, -0.2])
    model, y = run("batch_norm", x, {"momentum": 0.8, "eps": 1e-3},
                   {"gamma": gamma, "beta": beta}, training=True,
                   buffers={"running_mean": [1.0, -1.0], "running_var": [2.0, 0.5]})
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    want = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-3)
    np.testing.assert_allclose(y, want * gamma[:, None, None] + beta[:, None, None], atol=1e-12)
    count = 8 * 3 * 3
    np.testing.assert_allclose(model.buffers["node.running_mean"],
                               0.8 * np.array([1.0, -1.0]) + 0.2 * mean)
    np.testing.assert_allclose(model.buffers["node.running_var"],
                               0.8 * np.array([2.0, 0.5]) + 0.2 * var * count / (count - 1))


def test_batch_norm_inference_uses_the_running_statistics_and_leaves_them():
    x = np.random.default_rng(1).normal(size=(5, 3))
    model, y = run("batch_norm", x, params={"gamma": [1, 2, 3], "beta": [0, 0, 1]},
                   buffers={"running_mean": [0.5, 0, -1], "running_var": [4, 1, 0.25]})
    want = (x - [0.5, 0, -1]) / np.sqrt(np.array([4, 1, 0.25]) + 1e-5) * [1, 2, 3] + [0, 0, 1]
    np.testing.assert_allclose(y, want, atol=1e-12)
    assert model.buffers["node.running_mean"].tolist() == [0.5, 0, -1]


def test_batch_norm_gradcheck_in_training_mode():
    for shapes, attrs in (([(4,)], {}), ([(2, 3, 3)], {"momentum": 0.5})):
        report = check_op("batch_norm", shapes, attrs, batch=5, training=True)
        assert report.ok and "node.running_mean" in report.buffers, str(report)


def test_batch_norm_on_numpy_without_vecdot(monkeypatch):
    """numpy before 2.0 has no vecdot: batch norm's row dot products fall back to einsum,
    with the same values and gradients."""
    from graphnet.builtin import layers
    assert layers._vecdot is not None      # this numpy has it: the fallback is switched in
    monkeypatch.setattr(layers, "_vecdot", None)
    report = check_op("batch_norm", [(2, 3, 3)], {}, batch=5, training=True)
    assert report.ok, str(report)
    rows = np.random.default_rng(0).normal(size=(3, 7))
    np.testing.assert_allclose(layers._row_dots(rows, rows), (rows * rows).sum(axis=1))


@pytest.mark.parametrize("shape", [(3, 4, 4), (2,)])
def test_batch_norm_leaves_numpys_buffer_size_as_it_was(shape, monkeypatch):
    """Batch norm shortens numpy's ufunc buffers to its rows while it runs (16 values
    for rows of 6) and puts back the caller's size after forward and backward, and
    when it fails."""
    from graphnet.builtin import layers
    g = gn.Graph()
    bn = g.add("batch_norm", g.input("x", shape, dtype="float64"), name="bn")
    g.add("mse", bn, g.input("t", shape, dtype="float64"), name="loss")
    model = gn.Model(g, dtype="float64")
    rng = np.random.default_rng(1)
    feeds = {"x": rng.normal(size=(6, *shape)), "t": rng.normal(size=(6, *shape))}
    old = np.setbufsize(4096)
    try:
        x = feeds["x"]
        y = model.forward(feeds, outputs=("bn", "loss"), training=True)["bn"]
        assert np.getbufsize() == 4096
        axes = (0,) + tuple(range(2, x.ndim))
        ref = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(
            x.var(axis=axes, keepdims=True) + 1e-5)
        np.testing.assert_allclose(y, ref, atol=1e-12)
        model.backward()
        assert np.getbufsize() == 4096

        inside = []

        def broken(a, b):
            inside.append(np.getbufsize())
            raise ValueError("broken")
        monkeypatch.setattr(layers, "_row_dots", broken)
        with pytest.raises(gn.GraphnetError, match="broken"):
            model.forward(feeds, training=True)
        assert inside == [16 if x.ndim == 2 else 96]       # rows of 6 and of 6 * 4 * 4
        assert np.getbufsize() == 4096
    finally:
        np.setbufsize(old)


# --- PyTorch as an independent reference, where it is installed ---------------------------
def test_against_pytorch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(3)
    x, w, b = rng.normal(size=(2, 3, 9, 8)), rng.normal(size=(5, 3, 3, 3)), rng.normal(size=5)
    _, y = run("conv2d", x, {"filters": 5, "kernel_size": 3, "stride": 2, "padding": 1},
               {"weight": w, "bias": b})
    ref = F.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=2, padding=1)
    np.testing.assert_allclose(y, ref.numpy(), atol=1e-10)
    _, y = run("max_pool2d", x, {"pool_size": 3, "stride": 2})
    np.testing.assert_allclose(y, F.max_pool2d(torch.tensor(x), 3, 2).numpy())
    _, y = run("avg_pool2d", x, {"pool_size": 2})
    np.testing.assert_allclose(y, F.avg_pool2d(torch.tensor(x), 2).numpy(), atol=1e-12)
    bn = torch.nn.BatchNorm2d(3, momentum=0.1, eps=1e-5).double()
    model, y = run("batch_norm", x, {"momentum": 0.9}, training=True)
    np.testing.assert_allclose(y, bn(torch.tensor(x)).detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(model.buffers["node.running_mean"], bn.running_mean.numpy())
    np.testing.assert_allclose(model.buffers["node.running_var"], bn.running_var.numpy())


@pytest.mark.parametrize("channels, stride", [(2, 2), (16, 1)])   # im2col, Winograd
def test_conv2d_gradients_against_pytorch(channels, stride):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x, w = rng.normal(size=(2, channels, 6, 8)), rng.normal(size=(8, channels, 3, 3))
    b = rng.normal(size=8)
    g = gn.Graph()
    xi = g.input("x", (channels, 6, 8), dtype="float64")
    c = g.add("conv2d", xi, filters=8, kernel_size=3, stride=stride, padding=1, name="c")
    ho, wo = (6 + 2 - 3) // stride + 1, (8 + 2 - 3) // stride + 1
    g.add("mse", c, g.input("t", (8, ho, wo), dtype="float64"), name="loss", reduction="sum")
    m = gn.Model(g, dtype="float64")
    m.params["c.weight"][...], m.params["c.bias"][...] = w, b
    t = rng.normal(size=(2, 8, ho, wo))
    m.forward({"x": x, "t": t}, training=True)
    assert winograd_taken(m) == (channels == 16)
    grads = m.backward(inputs=True)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ((torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=1) - torch.tensor(t)) ** 2
     ).sum().backward()
    for mine, ref in ((grads["x"], tx), (grads["c.weight"], tw), (grads["c.bias"], tb)):
        np.testing.assert_allclose(mine, ref.grad.numpy(), atol=1e-10)


# --- buffers: model, optimizer, checkpoint, resume, summary, render -------------------------
def cnn_graph():
    g = gn.Graph("tiny_cnn")
    x = g.input("x", shape=(1, 6, 6))
    y = g.input("y", shape=(), dtype="int64")
    h = g.add("conv2d", x, filters=3, kernel_size=3, padding=1, name="conv")
    h = g.add("batch_norm", h, name="bn")
    h = g.add("relu", h)
    h = g.add("max_pool2d", h)
    h = g.add("dropout", g.add("flatten", h), rate=0.2)
    out = g.add("dense", h, units=2, name="out")
    g.add("softmax_cross_entropy", out, y, name="loss")
    g.output(out)
    return g


def winograd_cnn_graph():
    """cnn_graph with a second convolution over 8 channels: the Winograd path."""
    g = gn.Graph("tiny_winograd_cnn")
    x = g.input("x", shape=(1, 6, 6))
    y = g.input("y", shape=(), dtype="int64")
    h = g.add("conv2d", x, filters=8, kernel_size=3, padding=1, name="conv")
    h = g.add("relu", g.add("batch_norm", h, name="bn"))
    h = g.add("conv2d", h, filters=16, kernel_size=3, padding=1, name="conv_w")
    h = g.add("dropout", g.add("flatten", g.add("max_pool2d", h)), rate=0.2)
    out = g.add("dense", h, units=2, name="out")
    g.add("softmax_cross_entropy", out, y, name="loss")
    g.output(out)
    return g


def cnn_data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1, 6, 6)).astype(np.float32)
    return {"x": x + 0.5, "y": (x[:, 0, :3].sum(axis=(1, 2)) > 0).astype(np.int64)}


def test_buffers_are_apart_from_params_and_no_optimizer_sees_them():
    model = gn.Model(cnn_graph(), seed=0)
    assert list(model.buffers) == ["bn.running_mean", "bn.running_var"]
    assert not set(model.buffers) & set(model.params)
    assert model.buffers["bn.running_var"].tolist() == [1, 1, 1]
    assert model.buffers["bn.running_var"].dtype == np.float32
    model.fit(cnn_data(), optimizer="sgd", epochs=1, batch_size=8, progress=False)
    opt = gn.optimizer("adam", lr=0.01)
    model.forward(cnn_data(8), training=True)
    before = {k: v.copy() for k, v in model.buffers.items()}
    opt.step(model.params, model.backward())
    assert set(opt.state_dict()["state"]) == set(model.params)
    assert all(np.array_equal(before[k], v) for k, v in model.buffers.items())
    assert model.buffers["bn.running_var"].tolist() != [1, 1, 1]   # training moved them


def test_checkpoint_round_trip_with_batch_norm_is_bit_identical(tmp_path):
    model = gn.Model(cnn_graph(), seed=0)
    model.fit(cnn_data(), epochs=2, batch_size=8, progress=False)
    gn.save(model, tmp_path / "m.npz")
    again = gn.load(tmp_path / "m.npz")
    for key, value in model.buffers.items():
        assert again.buffers[key].dtype == value.dtype
        assert np.array_equal(again.buffers[key], value), key
    feeds = cnn_data(10, seed=1)
    assert np.array_equal(again.predict(feeds)["out"], model.predict(feeds)["out"])


class Interrupt(gn.Callback):
    def on_epoch_begin(self, run):
        if run.epoch == 3:
            raise KeyboardInterrupt


@pytest.mark.parametrize("make_graph", [cnn_graph, winograd_cnn_graph])
def test_kill_and_resume_with_batch_norm_is_bit_identical(tmp_path, make_graph):
    data, path = cnn_data(), tmp_path / "run.npz"
    kw = dict(epochs=4, batch_size=5, progress=False)
    whole = gn.Model(make_graph(), seed=0)
    full = whole.fit(data, **kw)
    if make_graph is winograd_cnn_graph:
        assert winograd_taken(whole)
    with pytest.raises(KeyboardInterrupt):
        gn.Model(make_graph(), seed=0).fit(data, checkpoint=path, callbacks=[Interrupt()], **kw)
    resumed = gn.Model(make_graph(), seed=7)
    history = resumed.fit(data, resume=path, **kw)
    assert history["loss"] == full["loss"]
    for store in ("params", "buffers"):
        for key, value in getattr(whole, store).items():
            assert np.array_equal(getattr(resumed, store)[key], value), key


def checkpoint_entries(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def test_checkpoint_with_a_missing_or_misshapen_buffer_is_refused(tmp_path):
    path = tmp_path / "c.npz"
    gn.save(gn.Model(cnn_graph()), path)
    arrays = checkpoint_entries(path)
    meta = json.loads(arrays["meta"].tobytes())
    assert meta["buffers"] == ["bn.running_mean", "bn.running_var"]
    bad = dict(arrays, buffer_1=np.ones(4, np.float32))
    np.savez(path, **bad)
    with pytest.raises(gn.CheckpointError, match=r"buffer 'bn.running_var' has shape \(4,\)"):
        gn.load(path)
    meta["buffers"] = meta["buffers"][:1]
    short = {k: v for k, v in arrays.items() if k != "buffer_1"}
    short["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **short)
    with pytest.raises(gn.CheckpointError, match=r"buffers missing for \['bn.running_var'\]"):
        gn.load(path)


def test_summary_counts_trainable_and_non_trainable_apart():
    model = gn.Model(cnn_graph())
    text = model.summary()
    trainable = model.param_count()
    assert trainable == 3 * 9 + 3 + 3 + 3 + 27 * 2 + 2
    assert model.buffer_count() == 6
    assert f"Total params: {trainable + 6:,}" in text
    assert f"Trainable params: {trainable:,}" in text and "Non-trainable params: 6" in text
    bn_row = next(line for line in text.splitlines() if line.startswith("bn "))
    assert bn_row.split()[-1] == "12"                    # gamma, beta and the 2 buffers


def test_render_shows_channel_shapes_and_buffers():
    dot = gn.render(gn.Model(cnn_graph()))
    src = dot.source
    assert "(N, 3, 6, 6)" in src and "(N, 3, 3, 3)" in src
    assert "6 non-trainable" in src


ROOT = Path(__file__).parents[1]


def test_render_of_the_digits_cnn_shows_image_shapes_layer_labels_and_buffers():
    model = gn.Model(gn.Graph.from_json(ROOT / "examples/models/digits_cnn.json"))
    src = gn.render(model).source
    label = {name: text for name, text in re.findall(r'^\s*(\w+) \[label="([^"]*)"', src, re.M)}
    assert label["conv1"].split("\\n")[1:] == ["conv2d 16 kernel_size=3 padding=1",
                                                "(N, 16, 8, 8)", "160 params"]
    assert label["bn2"].split("\\n")[1:] == ["batch_norm", "(N, 32, 4, 4)", "64 params",
                                              "64 non-trainable"]
    assert label["pool1"].split("\\n")[1:] == ["max_pool2d 2", "(N, 16, 4, 4)"]
    assert 'pool2 -> flat [label=" (N, 32, 2, 2)"]' in src


def test_graphnet_train_of_the_digits_cnn_reaches_98_5_percent(tmp_path):
    """The shipped example as a user trains it: `graphnet train`, its own training block
    (15 epochs of the digits dataset), scored on the held-out test split."""
    from test_cli import graphnet
    done = graphnet("train", ROOT / "examples/models/digits_cnn.json", "--out", tmp_path)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs"] == 15 and metrics["test"]["accuracy"] >= 0.985, metrics["test"]


def test_docs_show_the_layers_and_the_digits_cnn_picture():
    """model-files.md's layer table names every op of graphnet.builtin.layers, its JSON
    example is the shipped digits_cnn.json, and rendering.md's picture of it exists and
    holds its (C, H, W) shapes and buffers."""
    text = (ROOT / "docs/model-files.md").read_text()
    section = text[text.index("## Layers beyond dense"):text.index("## Checkpoints")]
    from graphnet.builtin import layers
    for op in layers.graphnet_ops():
        assert f"| `{op.name}` |" in section, op.name
    block = re.search(r"```json\n(.*?)```", section, re.S).group(1)
    example = ROOT / "examples/models/digits_cnn.json"
    assert json.loads(block) == json.loads(example.read_text())
    rendering = (ROOT / "docs/rendering.md").read_text()
    assert "](images/digits_cnn.svg)" in rendering
    svg = (ROOT / "docs/images/digits_cnn.svg").read_text()
    assert "(N, 16, 8, 8)" in svg and "64 non&#45;trainable" in svg


def test_an_op_declaring_a_bad_buffer_is_named():
    class Bad(gn.Op):
        name = "bad_buffer_op"

        def buffers(self, attrs, shape):
            return {"state": (3,)}

    from graphnet.testing import registered
    with registered(Bad()):
        g = gn.Graph()
        g.output(g.add("bad_buffer_op", g.input("x", (3,)), name="b"))
        with pytest.raises(gn.GraphnetError, match=r"node 'b'.*buffer 'state'.*graphnet.Buffer"):
            gn.Model(g)


# --- normalize ------------------------------------------------------------------------
def tabular_graph():
    g = gn.Graph("tab")
    x = g.input("x", shape=(3,))
    y = g.input("y", shape=(), dtype="int64")
    h = g.add("normalize", x, name="norm")
    out = g.add("dense", h, units=2, name="out")
    g.add("softmax_cross_entropy", out, y, name="loss")
    g.output(out)
    return g


def tabular_data(n=50):
    rng = np.random.default_rng(2)
    x = rng.normal([100.0, -5.0, 0.0], [50.0, 0.1, 1.0], size=(n, 3))
    return {"x": x, "y": (x[:, 0] > 100).astype(np.int64)}


def test_fit_adapts_normalize_once_from_the_training_data():
    data = tabular_data()
    model = gn.Model(tabular_graph(), dtype="float64")
    model.fit(data, epochs=1, batch_size=7, progress=False)
    np.testing.assert_allclose(model.buffers["norm.mean"], data["x"].mean(axis=0))
    np.testing.assert_allclose(model.buffers["norm.variance"], data["x"].var(axis=0))
    assert model.buffers["norm.count"] == 50
    out = model.forward({"x": data["x"]}, outputs="norm")["norm"]
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-4)  # eps=1e-7 in the root
    model.fit({"x": data["x"][:5] * 10, "y": data["y"][:5]}, epochs=1, progress=False)
    np.testing.assert_allclose(model.buffers["norm.mean"], data["x"].mean(axis=0))  # kept
    model.adapt({"x": data["x"][:5]})                   # asked for: adapts again
    np.testing.assert_allclose(model.buffers["norm.mean"], data["x"][:5].mean(axis=0))


def test_normalize_adapts_to_the_wine_training_split():
    train = gn.datasets.load("wine")["train"]
    g = graph_from_json(Path(__file__).parents[1] / "examples/models/wine_normalize.json")
    model = gn.Model(g, dtype="float64")
    model.fit({"x": train["x"], "label": train["y"]}, epochs=1, batch_size=16, progress=False)
    np.testing.assert_allclose(model.buffers["norm.mean"], train["x"].mean(axis=0, dtype=np.float64))
    np.testing.assert_allclose(model.buffers["norm.variance"], train["x"].var(axis=0, dtype=np.float64))
    assert model.buffers["norm.count"] == len(train["x"])


def test_adapt_combines_batches_exactly():
    x = np.random.default_rng(5).normal(3.0, 2.0, size=(37, 2, 2, 2))
    g = gn.Graph()
    g.output(g.add("normalize", g.input("x", (2, 2, 2)), name="n"))
    model = gn.Model(g, dtype="float64")
    model.adapt({"x": x}, batch_size=5)
    np.testing.assert_allclose(model.buffers["n.mean"], x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(model.buffers["n.variance"], x.var(axis=(0, 2, 3)), rtol=1e-12)
