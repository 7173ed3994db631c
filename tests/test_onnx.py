"""ONNX: every builtin op exported, checked and run by onnxruntime; round trips; imports."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphnet as gn
from graphnet.onnx import OnnxError
from graphnet.plugins import registry
from graphnet.testing import check_onnx

RTOL, ATOL = 1e-4, 1e-6


def one_op(op, shapes, **attrs):
    """A graph of one node of ``op`` over inputs of the given per-sample shapes."""
    g = gn.Graph(f"only_{op}")
    xs = [g.input(f"x{i}", shape=s) for i, s in enumerate(shapes)]
    g.output(g.add(op, *xs, name="y", **attrs))
    return g


# op name -> (per-sample input shapes, attrs); ops with several forms have several cases
CASES = {
    "dense": [([(4,)], {"units": 3}), ([(2, 4)], {"units": 3}),
              ([(4,)], {"units": 2, "use_bias": False}),
              ([(2, 4)], {"units": 2, "use_bias": False})],
    "add": [([(3,), (3,)], {}), ([(3,), (2, 3)], {}), ([(2, 1), (3,)], {})],
    "sub": [([(2, 3), (3,)], {}), ([(3,), (3,)], {})],
    "mul": [([(3,), (3,)], {}), ([(2, 3), (2, 1)], {})],
    "concat": [([(3,), (2,)], {}), ([(2, 3), (4, 3)], {"axis": 0})],
    "flatten": [([(2, 3)], {})],
    "reshape": [([(2, 3)], {"shape": [3, 2]}), ([(6,)], {"shape": [-1, 2]})],
    "dropout": [([(5,)], {"rate": 0.25})],
    "softmax": [([(5,)], {}), ([(3, 4)], {"axis": 0})],
    "identity": [([(3,)], {})],
    "relu": [([(5,)], {})], "elu": [([(5,)], {"alpha": 0.5})], "softplus": [([(5,)], {})],
    "sigmoid": [([(5,)], {})], "tanh": [([(5,)], {})],
    "leaky_relu": [([(2, 5)], {"alpha": 0.2})],
    "conv2d": [([(2, 6, 5)], {"filters": 3, "kernel_size": 3, "stride": 2, "padding": 1}),
               ([(1, 5, 5)], {"filters": 2, "kernel_size": 2, "use_bias": False})],
    "max_pool2d": [([(2, 5, 6)], {}), ([(2, 5, 5)], {"pool_size": 3, "stride": 1})],
    "avg_pool2d": [([(2, 5, 6)], {}), ([(2, 5, 5)], {"pool_size": 3, "stride": 1})],
    "global_avg_pool2d": [([(3, 4, 5)], {})],
    "batch_norm": [([(3, 4, 4)], {}), ([(4,)], {"eps": 1e-3})],
    # integer ids, and an op that reads back as another: their own tests below
    "embedding": [], "normalize": [],
}
PARAMS = [pytest.param(op, shapes, attrs, id=f"{op}-{k}")
          for op, cases in CASES.items() for k, (shapes, attrs) in enumerate(cases)]


def builtin_ops():
    return sorted(name for name, e in registry().tables()["op"].items()
                  if e.plugin.startswith("graphnet.builtin") and e.obj.kind not in ("input", "loss"))


def run_ort(proto, feeds):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    feeds = {i.name: feeds[i.name] for i in sess.get_inputs()}
    return dict(zip(names, sess.run(None, feeds)))


def feeds_for(model, batch, seed=0):
    rng = np.random.default_rng(seed)
    return {n: rng.normal(size=(batch,) + model.nodes[n].shape).astype(np.float32)
            for n in model.inputs}


def test_every_builtin_op_has_a_case():
    """A builtin op without a case here would go unexported by the tests below."""
    assert builtin_ops() == sorted(CASES)


@pytest.mark.parametrize("op,shapes,attrs", PARAMS)
def test_export_matches_predict_and_round_trips(op, shapes, attrs):
    proto = check_onnx(op, shapes, attrs)
    assert [i.name for i in proto.graph.input] == [f"x{i}" for i in range(len(shapes))]
    assert [o.name for o in proto.graph.output] == ["y"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"


def test_written_file_checks_and_reads_back(tmp_path):
    model = gn.Model(one_op("dense", [(4,)], units=3))
    gn.to_onnx(model, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(tmp_path / "m.onnx"), full_check=True)
    back = gn.from_onnx(tmp_path / "m.onnx")
    np.testing.assert_array_equal(back.params["y.weight"], model.params["y.weight"])


def mlp_with_loss():
    g = gn.Graph("mlp")
    x, t = g.input("x", shape=(4,)), g.input("label", shape=(), dtype="int64")
    h = g.add("tanh", g.add("dense", x, units=8, name="fc1"), name="act1")
    h = g.add("dropout", h, rate=0.1, name="drop")
    skip = g.add("concat", h, x, name="skip")
    y = g.add("dense", skip, units=3, name="logits")
    g.add("softmax_cross_entropy", y, t, name="loss")
    g.output(y, g.add("softmax", y, name="probs"))
    return gn.Model(g, seed=0)


def test_export_leaves_out_losses_and_targets_and_runs_float64(tmp_path):
    model = mlp_with_loss()
    proto = gn.to_onnx(model, tmp_path / "mlp.onnx")
    assert [i.name for i in proto.graph.input] == ["x"]
    assert [o.name for o in proto.graph.output] == ["logits", "probs"]
    assert {n.name for n in proto.graph.node} >= {"fc1", "act1", "drop", "skip", "logits"}
    assert {t.name for t in proto.graph.initializer} >= set(model.params)
    feeds = feeds_for(model, 6)
    got = run_ort(proto, feeds)
    want = model.predict(feeds)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=RTOL, atol=ATOL)
    m64 = gn.Model(model.graph, seed=0, dtype="float64")
    proto64 = gn.to_onnx(m64, None)
    feeds64 = {"x": feeds["x"].astype(np.float64)}
    got64 = run_ort(proto64, feeds64)
    np.testing.assert_allclose(got64["probs"], m64.predict(feeds64)["probs"], rtol=1e-12)
    assert gn.from_onnx(proto64).dtype == np.float64


@pytest.mark.parametrize("opset", [13, 17, 20])
def test_opsets(opset):
    model = mlp_with_loss()
    proto = gn.to_onnx(model, None, opset=opset)
    assert proto.opset_import[0].version == opset
    feeds = feeds_for(model, 3)
    np.testing.assert_allclose(run_ort(proto, feeds)["probs"], model.predict(feeds)["probs"],
                               rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("opset", [12, 99, "18", True])
def test_bad_opset(opset):
    with pytest.raises(OnnxError, match="opset must be an integer"):
        gn.to_onnx(mlp_with_loss(), None, opset=opset)


def test_imported_model_trains_further_once_a_loss_is_added():
    model = mlp_with_loss()
    back = gn.from_onnx(gn.to_onnx(model, None))
    trainable = gn.onnx.with_loss(back, "softmax_cross_entropy", output="logits",
                                  target="label")
    assert trainable.nodes["label"].dtype == "int64" and trainable.losses == ["loss"]
    for key, value in back.params.items():
        np.testing.assert_array_equal(trainable.params[key], value)
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(64, 4)).astype(np.float32),
            "label": rng.integers(0, 3, size=64)}
    before = float(trainable.forward(data)["loss"])
    trainable.fit(data, optimizer=gn.optimizer("adam", lr=0.05), epochs=20, batch_size=16,
                  progress=False)
    assert float(trainable.forward(data)["loss"]) < before
    assert gn.render(back).source.count("->") >= 5


# --- op without an ONNX form, failing forms -------------------------------------------

class Cube(gn.Op):
    name = "cube_no_onnx"

    def forward(self, ctx, x):
        return x ** 3


class BadForm(gn.Op):
    name = "bad_onnx_form"

    def forward(self, ctx, x):
        return x

    def to_onnx(self, b, x):
        return 42


def test_op_without_onnx_form_names_node_op_and_plugin():
    gn.plugins.register(Cube(), name="cube_plugin")
    try:
        model = gn.Model(one_op("cube_no_onnx", [(3,)]))
        with pytest.raises(OnnxError) as err:
            gn.to_onnx(model, None)
        msg = str(err.value)
        assert "'y'" in msg and "'cube_no_onnx'" in msg and "'cube_plugin'" in msg
        assert "to_onnx" in msg
    finally:
        gn.plugins.unregister("cube_plugin")


def test_activation_without_onnx_form_is_refused():
    act = gn.Activation("cube_act", lambda x: x ** 3, lambda x, y: 3 * x ** 2)
    gn.plugins.register(act, name="cube_act_plugin")
    try:
        with pytest.raises(OnnxError, match="cube_act.*no ONNX form"):
            gn.to_onnx(gn.Model(one_op("cube_act", [(3,)])), None)
    finally:
        gn.plugins.unregister("cube_act_plugin")


def test_activation_with_onnx_form_exports():
    act = gn.Activation("cube_ok", lambda x: x ** 3, lambda x, y: 3 * x ** 2,
                        onnx=lambda b, x: b.op("Mul", x, b.op("Mul", x, x)))
    gn.plugins.register(act, name="cube_ok_plugin")
    try:
        model = gn.Model(one_op("cube_ok", [(3,)]))
        feeds = feeds_for(model, 5)
        np.testing.assert_allclose(run_ort(gn.to_onnx(model, None), feeds)["y"],
                                   feeds["x0"] ** 3, rtol=RTOL)
    finally:
        gn.plugins.unregister("cube_ok_plugin")


def test_bad_onnx_form_is_an_error_not_a_traceback(tmp_path):
    gn.plugins.register(BadForm(), name="bad_form_plugin")
    try:
        with pytest.raises(OnnxError, match="bad_onnx_form.*returned 42"):
            gn.to_onnx(gn.Model(one_op("bad_onnx_form", [(3,)])), tmp_path / "x.onnx")
        assert not (tmp_path / "x.onnx").exists()
    finally:
        gn.plugins.unregister("bad_form_plugin")


# --- import of graphs shaped as PyTorch's exporters write them ----------------------------

def f32(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def make(nodes, inputs, outputs, inits, opset=17, name="net"):
    graph = helper.make_graph(nodes, name, inputs, outputs,
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def vinfo(name, *dims, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, list(dims))


def torch_like_mlp():
    """nn.Sequential(Linear(4, 8), ReLU(), Linear(8, 3)) as torch.onnx.export names it."""
    inits = {"0.weight": f32(8, 4), "0.bias": f32(8, seed=1), "2.weight": f32(3, 8, seed=2),
             "2.bias": f32(3, seed=3)}
    nodes = [helper.make_node("Gemm", ["input", "0.weight", "0.bias"], ["/0/Gemm_output_0"],
                              name="/0/Gemm", alpha=1.0, beta=1.0, transB=1),
             helper.make_node("Relu", ["/0/Gemm_output_0"], ["/1/Relu_output_0"], name="/1/Relu"),
             helper.make_node("Gemm", ["/1/Relu_output_0", "2.weight", "2.bias"], ["output"],
                              name="/2/Gemm", alpha=1.0, beta=1.0, transB=1)]
    return make(nodes, [vinfo("input", "batch", 4)], [vinfo("output", "batch", 3)], inits)


def check_against_ort(proto, model, feeds):
    got = run_ort(proto, feeds)
    want = model.predict({gn_name: v for gn_name, v in feeds.items()})
    for k, v in got.items():
        np.testing.assert_allclose(want[k], v, rtol=RTOL, atol=1e-5)


def test_import_torch_style_gemm_mlp():
    proto = torch_like_mlp()
    model = gn.from_onnx(proto)
    assert [(n, m.op.name) for n, m in model.nodes.items()] == [
        ("input", "input"), ("_0/Gemm", "dense"), ("_1/Relu", "relu"), ("output", "dense")]
    np.testing.assert_array_equal(model.params["_0/Gemm.weight"], f32(8, 4).T)
    check_against_ort(proto, model, {"input": f32(5, 4, seed=9)})


def test_import_matmul_add_and_merges_and_constants():
    """What the dynamo exporter writes: MatMul + Add, Constant nodes, tensor merges."""
    w1, b1, w2 = f32(4, 6), f32(6, seed=1), f32(6, 6, seed=2)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["mm"], name="node_mm"),
        helper.make_node("Constant", [], ["b1"], value=numpy_helper.from_array(b1, "b1")),
        helper.make_node("Add", ["mm", "b1"], ["h"], name="node_add"),
        helper.make_node("Sigmoid", ["h"], ["s"], name="sig"),
        helper.make_node("Mul", ["h", "s"], ["silu_out"], name="silu_mul"),
        helper.make_node("MatMul", ["silu_out", "w2"], ["h2"], name="fc2"),
        helper.make_node("Sub", ["h2", "h"], ["d"], name="diff"),
        helper.make_node("Mul", ["d", "d"], ["sq"], name="square"),
        helper.make_node("Identity", ["sq"], ["idn"], name="tap"),
        helper.make_node("Dropout", ["idn", "ratio"], ["dr"], name="drop"),
        helper.make_node("Concat", ["dr", "h"], ["cat"], name="cat", axis=1),
        helper.make_node("Elu", ["cat"], ["e"], name="elu", alpha=0.7),
        helper.make_node("LeakyRelu", ["e"], ["lr"], name="lrelu", alpha=0.1),
        helper.make_node("Softplus", ["lr"], ["sp"], name="softplus"),
        helper.make_node("Tanh", ["sp"], ["th"], name="tanh"),
        helper.make_node("Softmax", ["th"], ["out"], name="softmax", axis=-1),
    ]
    proto = make(nodes, [vinfo("x", "N", 4)], [vinfo("out", "N", 12)],
                 {"w1": w1, "w2": w2, "ratio": np.array(0.3, np.float32)}, opset=18)
    model = gn.from_onnx(proto)
    ops = {n: m.op.name for n, m in model.nodes.items()}
    assert ops["node_add"] == "dense" and "node_mm" not in ops      # MatMul + Add: one dense
    assert ops["silu_mul"] == "silu" and "sig" not in ops           # x * sigmoid(x): silu
    assert ops["fc2"] == "dense" and model.nodes["fc2"].params.keys() == {"weight"}
    assert (ops["diff"], ops["square"], ops["tap"], ops["drop"], ops["cat"]) == \
        ("sub", "mul", "identity", "dropout", "concat")
    assert model.nodes["drop"].attrs["rate"] == pytest.approx(0.3)
    assert model.nodes["elu"].attrs["alpha"] == pytest.approx(0.7)
    np.testing.assert_array_equal(model.params["node_add.bias"], b1)
    check_against_ort(proto, model, {"x": f32(3, 4, seed=5)})


def test_import_flatten_reshape_and_unsqueeze():
    nodes = [
        helper.make_node("Flatten", ["img"], ["flat"], name="flat", axis=1),
        helper.make_node("Reshape", ["flat", "shape"], ["r"], name="r"),
        helper.make_node("Reshape", ["r", "shape2"], ["r2"], name="r2"),
        helper.make_node("Unsqueeze", ["v", "axes"], ["vu"], name="vu"),
        helper.make_node("Add", ["r2", "vu"], ["sum"], name="sum"),
        helper.make_node("Unsqueeze", ["v", "axes"], ["vu2"], name="vu2"),
        helper.make_node("Relu", ["vu2"], ["out2"], name="out2"),
    ]
    inits = {"shape": np.array([-1, 3, 4], np.int64), "shape2": np.array([0, 0, 4], np.int64),
             "axes": np.array([1], np.int64)}
    proto = make(nodes, [vinfo("img", "N", 2, 2, 3), vinfo("v", "N", 4)],
                 [vinfo("sum", "N", 3, 4), vinfo("out2", "N", 1, 4)], inits)
    model = gn.from_onnx(proto)
    ops = {n: m.op.name for n, m in model.nodes.items()}
    assert (ops["flat"], ops["r"], ops["r2"], ops["sum"], ops["vu2"]) == \
        ("flatten", "reshape", "reshape", "add", "reshape")
    assert "vu" not in ops                        # add pads after the batch axis itself
    check_against_ort(proto, model, {"img": f32(4, 2, 2, 3), "v": f32(4, 4, seed=1)})


def test_import_global_average_pool_then_flatten():
    """What torch writes for AdaptiveAvgPool2d(1) followed by flatten."""
    nodes = [helper.make_node("GlobalAveragePool", ["img"], ["/pool/GlobalAveragePool_output_0"],
                              name="/pool/GlobalAveragePool"),
             helper.make_node("Flatten", ["/pool/GlobalAveragePool_output_0"], ["out"],
                              name="/flat/Flatten", axis=1)]
    proto = make(nodes, [vinfo("img", "N", 3, 4, 5)], [vinfo("out", "N", 3)], {})
    model = gn.from_onnx(proto)
    assert [m.op.name for m in model.nodes.values() if m.op.name != "input"] == \
        ["global_avg_pool2d", "reshape", "flatten"]
    img = f32(6, 3, 4, 5)
    check_against_ort(proto, model, {"img": img})
    np.testing.assert_allclose(model.predict({"img": img})["out"], img.mean(axis=(2, 3)),
                               rtol=1e-5)


def test_import_contrib_ops():
    gamma, beta = f32(5) + 1, f32(5, seed=1)
    nodes = [
        helper.make_node("LayerNormalization", ["x", "g", "b"], ["ln"], name="norm",
                         axis=-1, epsilon=1e-3),
        helper.make_node("Gelu", ["ln"], ["ge"], name="gelu", approximate="tanh"),
        helper.make_node("Mish", ["ge"], ["mi"], name="mish"),
        helper.make_node("HardSigmoid", ["mi"], ["out"], name="hs", alpha=1 / 6, beta=0.5),
    ]
    proto = make(nodes, [vinfo("x", "N", 5)], [vinfo("out", "N", 5)], {"g": gamma, "b": beta},
                 opset=20)
    model = gn.from_onnx(proto)
    assert [m.op.name for m in model.nodes.values()] == [
        "input", "layer_norm", "gelu", "mish", "hard_sigmoid"]
    assert model.nodes["norm"].attrs["eps"] == pytest.approx(1e-3)
    check_against_ort(proto, model, {"x": f32(6, 5, seed=3)})


DATA = Path(__file__).resolve().parent / "data"
TORCH_OPS = ["input", "dense", "tanh", "dense", "silu", "add", "sigmoid", "elu", "mul", "sub",
             "leaky_relu", "concat", "dense", "softplus", "relu", "dense", "softmax"]


@pytest.mark.parametrize("exporter,first", [("legacy", "flatten"), ("dynamo", "reshape")])
def test_import_what_torch_onnx_export_wrote(exporter, first):
    """tests/data/make_onnx_fixtures.py wrote these with torch.onnx.export(dynamo=...)."""
    path = DATA / f"torch_mlp_{exporter}.onnx"
    model = gn.from_onnx(path)
    ops = [m.op.name for m in model.nodes.values()]
    assert ops == TORCH_OPS[:1] + [first] + TORCH_OPS[1:]
    saved = np.load(DATA / f"torch_mlp_{exporter}.npz")
    np.testing.assert_allclose(model.predict({"x": saved["x"]})["probs"], saved["probs"],
                               rtol=RTOL, atol=ATOL)
    x = f32(9, 3, 4, seed=4)                    # another batch size than the export's
    check_against_ort(onnx.load(path), model, {"x": x})
    again = gn.to_onnx(model, None)             # and out again, for onnxruntime
    np.testing.assert_allclose(run_ort(again, {"x": x})["probs"],
                               model.predict({"x": x})["probs"], rtol=RTOL, atol=ATOL)


def test_import_a_reshape_computed_from_the_batch_size():
    """x.view(x.size(0), -1) through the legacy exporter: Shape, Gather, Unsqueeze, Concat."""
    path = DATA / "torch_view_legacy.onnx"
    assert {n.op_type for n in onnx.load(path).graph.node} >= {"Shape", "Gather", "Concat"}
    model = gn.from_onnx(path)
    assert [m.op.name for m in model.nodes.values()] == ["input", "reshape", "dense"]
    saved = np.load(DATA / "torch_view_legacy.npz")
    np.testing.assert_allclose(model.predict({"x": saved["x"]})["y"], saved["y"], rtol=RTOL,
                               atol=ATOL)
    check_against_ort(onnx.load(path), model, {"x": f32(6, 3, 4)})


def test_names_become_valid_graphnet_names():
    proto = torch_like_mlp()
    proto.graph.input[0].name = "input.1"
    proto.graph.node[0].input[0] = "input.1"
    proto.graph.node[1].name = ""
    proto.graph.node[1].output[0] = "onnx::Gemm_7"
    proto.graph.node[2].input[0] = "onnx::Gemm_7"
    model = gn.from_onnx(proto)
    assert model.inputs == ["input_1"]
    assert "onnx__Gemm_7" in model.nodes
    assert model.predict({"input_1": f32(2, 4)})["output"].shape == (2, 3)


# --- what cannot be imported -------------------------------------------------------------

def test_unsupported_op_names_op_type_and_node():
    nodes = [helper.make_node("Cos", ["x"], ["y"], name="my_cos")]
    proto = make(nodes, [vinfo("x", "N", 3)], [vinfo("y", "N", 3)], {})
    with pytest.raises(gn.UnknownOpError, match="'my_cos'.*'Cos'.*no graphnet counterpart"):
        gn.from_onnx(proto)


@pytest.mark.parametrize("node,inits,match", [
    (helper.make_node("Gemm", ["x", "w"], ["y"], name="g", transA=1), {"w": f32(3, 3)},
     "transA"),
    (helper.make_node("MatMul", ["x", "x"], ["y"], name="mm"), {}, "must be a constant"),
    (helper.make_node("Add", ["x", "c"], ["y"], name="addc"), {"c": f32(3)},
     "reads constant 'c'"),
    (helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=0), {}, "batch axis"),
    (helper.make_node("Gelu", ["x"], ["y"], name="erf_gelu"), {}, "approximate='none'"),
    (helper.make_node("Greater", ["x", "c"], ["y"], name="gt"), {"c": f32(3)},
     "'gt'.*'Greater' has no graphnet counterpart"),
])
def test_import_refusals_name_the_node(node, inits, match):
    proto = make([node], [vinfo("x", "N", 3)], [vinfo("y", "N", 3)], inits, opset=20)
    with pytest.raises(gn.GraphnetError, match=match):
        gn.from_onnx(proto)


def test_input_with_symbolic_feature_axis_is_refused():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    proto = make(nodes, [vinfo("x", "N", "F")], [vinfo("y", "N", "F")], {})
    with pytest.raises(OnnxError, match="graph input 'x'.*fixed sizes"):
        gn.from_onnx(proto)


@pytest.mark.parametrize("data", [b"", b"not an onnx file at all \x00\xff", b"\x08\x07\x12"])
def test_malformed_files_are_clear_errors(tmp_path, data):
    path = tmp_path / "bad.onnx"
    path.write_bytes(data)
    with pytest.raises(OnnxError, match="bad.onnx"):
        gn.from_onnx(path)


def test_truncated_file_and_missing_file(tmp_path):
    data = gn.to_onnx(mlp_with_loss(), None).SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxError, match="cut.onnx"):
        gn.from_onnx(path)
    with pytest.raises(OnnxError, match="cannot read"):
        gn.from_onnx(tmp_path / "missing.onnx")


def test_invalid_graph_is_a_clear_error():
    nodes = [helper.make_node("Relu", ["nowhere"], ["y"], name="r")]
    proto = make(nodes, [vinfo("x", "N", 3)], [vinfo("y", "N", 3)], {})
    with pytest.raises(OnnxError, match="not a valid ONNX model"):
        gn.from_onnx(proto)


# --- the command line ------------------------------------------------------------------

def cli(capsys, *argv):
    from graphnet.cli import main
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_export_and_onnx_wherever_a_model_goes(tmp_path, capsys):
    model = mlp_with_loss()
    gn.save(model, tmp_path / "m.npz")
    code, out, _ = cli(capsys, "export", tmp_path / "m.npz", "-o", tmp_path / "m.onnx")
    assert code == 0 and "wrote" in out and "outputs logits, probs" in out
    onnx_file = tmp_path / "m.onnx"
    code, out, _ = cli(capsys, "summary", onnx_file)
    assert code == 0 and "fc1" in out and "Losses: -" in out
    assert cli(capsys, "render", onnx_file, "-o", tmp_path / "m.dot")[0] == 0
    assert "fc1" in (tmp_path / "m.dot").read_text()
    x = feeds_for(model, 5)["x"]
    np.savez(tmp_path / "x.npz", x=x)
    assert cli(capsys, "predict", onnx_file, "--data", tmp_path / "x.npz", "-o",
               tmp_path / "p.npz")[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "p.npz")["logits"],
                                  model.predict({"x": x})["logits"])
    code, out, err = cli(capsys, "gradcheck", onnx_file)
    assert code == 0 and "OK" in out, err
    y = np.random.default_rng(1).integers(0, 3, size=5)
    np.savez(tmp_path / "xy.npz", x=x, y=y)
    from_npz = cli(capsys, "evaluate", tmp_path / "m.npz", "--data", tmp_path / "xy.npz")
    from_onnx = cli(capsys, "evaluate", onnx_file, "--data", tmp_path / "xy.npz")
    assert from_onnx[0] == 0 and from_onnx[1] == from_npz[1]   # same loss, same accuracy


@pytest.mark.parametrize("argv,match", [
    (["export", "MODEL", "-o", "out.txt"], "must end in .onnx"),
    (["summary", "BAD"], "is not an ONNX model"),
    (["summary", "missing.onnx"], "does not exist"),
    (["export", "MODEL", "-o", "out.onnx", "--opset", "7"], "opset must be an integer"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, argv, match):
    gn.save(mlp_with_loss(), tmp_path / "m.npz")
    (tmp_path / "bad.onnx").write_bytes(b"\x00junk")
    paths = {"MODEL": tmp_path / "m.npz", "BAD": tmp_path / "bad.onnx"}
    argv = [paths.get(a, tmp_path / a if a.endswith((".txt", ".onnx")) else a) for a in argv]
    code, _, err = cli(capsys, *argv)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # torch's legacy exporter says it
def test_docs_onnx_examples_run(tmp_path, monkeypatch):
    """The Python blocks of docs/onnx.md run in order (the PyTorch one where torch is)."""
    import importlib.util
    import re
    text = (Path(__file__).resolve().parents[1] / "docs" / "onnx.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 5
    monkeypatch.chdir(tmp_path)
    scope = {"__name__": "docs_onnx"}
    for block in blocks:
        if "import torch" in block and importlib.util.find_spec("torch") is None:
            continue        # torch is on some machines only; the fixtures cover its files
        exec(compile(block, "docs/onnx.md", "exec"), scope)
    assert (tmp_path / "classifier.onnx").exists()


def test_the_core_never_imports_onnx(tmp_path):
    """Building, training and saving a model leave onnx and onnxruntime unimported."""
    import subprocess
    import sys
    code = ("import sys, numpy as np, graphnet as gn\n"
            "g = gn.Graph(); y = g.add('dense', g.input('x', shape=(2,)), units=1)\n"
            "g.add('mse', y, g.input('t', shape=(1,))); g.output(y)\n"
            "m = gn.Model(g); m.fit({'x': np.ones((4, 2)), 't': np.ones((4, 1))}, epochs=1,\n"
            "      progress=False); gn.save(m, sys.argv[1])\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('onnx', 'onnxruntime')))")
    out = subprocess.run([sys.executable, "-c", code, "m.npz"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --- layers with buffers or integer inputs ------------------------------------------------
def with_buffers(op, shape, **attrs):
    """A one-node model of ``op`` whose buffers hold something other than their start."""
    model = gn.Model(one_op(op, [shape], **attrs), seed=0)
    rng = np.random.default_rng(1)
    for key, value in model.buffers.items():
        value[...] = rng.uniform(0.5, 2.0, size=value.shape)
    for key, value in model.params.items():
        value[...] = rng.normal(size=value.shape)
    return model


@pytest.mark.parametrize("shape", [(3, 4, 4), (5,)])
def test_batch_norm_exports_its_running_statistics(shape):
    model = with_buffers("batch_norm", shape, eps=1e-3)
    proto = gn.to_onnx(model, None)
    assert {"y.running_mean", "y.running_var"} <= {t.name for t in proto.graph.initializer}
    feeds = feeds_for(model, 4)
    np.testing.assert_allclose(run_ort(proto, feeds)["y"], model.predict(feeds)["y"],
                               rtol=RTOL, atol=ATOL)
    back = gn.from_onnx(proto)
    assert back.nodes["y"].op.name == "batch_norm" and back.nodes["y"].attrs["eps"] == 1e-3
    for key, value in model.buffers.items():
        np.testing.assert_array_equal(back.buffers[key], value)
    np.testing.assert_array_equal(back.predict(feeds)["y"], model.predict(feeds)["y"])


def test_normalize_exports_as_a_batch_normalization_and_reads_back_as_batch_norm():
    model = with_buffers("normalize", (2, 3, 3))
    proto = gn.to_onnx(model, None)
    assert [n.op_type for n in proto.graph.node] == ["BatchNormalization"]
    feeds = feeds_for(model, 5)
    np.testing.assert_allclose(run_ort(proto, feeds)["y"], model.predict(feeds)["y"],
                               rtol=RTOL, atol=ATOL)
    back = gn.from_onnx(proto)
    assert back.nodes["y"].op.name == "batch_norm"
    np.testing.assert_allclose(back.predict(feeds)["y"], model.predict(feeds)["y"],
                               rtol=1e-6, atol=1e-6)


def test_embedding_exports_as_gather_of_integer_ids():
    g = gn.Graph("emb")
    ids = g.input("ids", shape=(4,), dtype="int64")
    g.output(g.add("embedding", ids, vocab=6, units=3, name="y"))
    model = gn.Model(g, seed=0)
    proto = gn.to_onnx(model, None)
    feeds = {"ids": np.random.default_rng(0).integers(0, 6, size=(5, 4))}
    np.testing.assert_array_equal(run_ort(proto, feeds)["y"], model.predict(feeds)["y"])
    back = gn.from_onnx(proto)
    assert back.nodes["y"].op.name == "embedding" and back.nodes["y"].attrs["vocab"] == 6
    np.testing.assert_array_equal(back.params["y.weight"], model.params["y.weight"])
