"""graphnet-contrib's ops and activations export to ONNX and read back."""

import pytest

from graphnet.testing import check_onnx

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


@pytest.mark.parametrize("op,opset,round_trip", [
    ("gelu", 20, True), ("gelu", 17, False),        # opset 20 has Gelu; before, the formula
    ("silu", 17, True), ("silu", 13, True),         # x * sigmoid(x) reads back as silu
    ("mish", 18, True), ("mish", 13, False),        # opset 18 has Mish
    ("hard_sigmoid", 13, True), ("hard_sigmoid", 18, True),
])
def test_activation_exports(op, opset, round_trip):
    proto = check_onnx(op, [(2, 5)], opset=opset, round_trip=round_trip)
    assert proto.opset_import[0].version == opset


@pytest.mark.parametrize("opset", [17, 18, 20])
def test_layer_norm_exports_and_reads_back(opset):
    proto = check_onnx("layer_norm", [(3, 6)], {"eps": 1e-3}, opset=opset)
    assert [n.op_type for n in proto.graph.node] == ["LayerNormalization"]


def test_layer_norm_before_opset_17_is_refused():
    import graphnet as gn
    with pytest.raises(gn.GraphnetError, match="layer_norm needs ONNX opset 17"):
        check_onnx("layer_norm", [(6,)], opset=13)
