"""The JSON Schema: generated from the registry, shipped in the package, usable by editors."""

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import graphnet as gn
from graphnet.schema import model_schema, schema_text, shipped_schema
from graphnet.testing import registered

ROOT = Path(__file__).resolve().parents[1]


def test_committed_schema_equals_the_generated_one():
    committed = (ROOT / "graphnet" / "schema" / "model-1.json").read_text()
    assert committed == schema_text(builtins_only=True), (
        "graphnet/schema/model-1.json is stale; regenerate it with\n"
        "  python -c 'from graphnet.schema import write_schema; write_schema()'")


def test_shipped_schema_is_the_committed_file():
    assert shipped_schema() == json.loads((ROOT / "graphnet/schema/model-1.json").read_text())


def test_schema_is_valid_draft_2020_12():
    schema = model_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_declares_each_op_with_its_attrs():
    defs = model_schema(builtins_only=True)["$defs"]
    dense = defs["op_dense"]["properties"]["attrs"]
    assert dense["required"] == ["units"]
    assert dense["properties"]["units"] == {"type": "integer", "description": "output features",
                                            "minimum": 1}
    assert dense["properties"]["use_bias"]["default"] is True
    assert dense["additionalProperties"] is False
    assert defs["op_dropout"]["properties"]["attrs"]["properties"]["rate"]["maximum"] == 0.999
    mse = defs["op_mse"]["properties"]["attrs"]["properties"]
    assert mse["reduction"]["enum"] == ["mean", "sum"]
    assert defs["op_add"]["properties"]["inputs"] == {"minItems": 2, "maxItems": 2}
    assert defs["op_concat"]["properties"]["inputs"] == {"minItems": 1}
    # activations: attrs from Activation.attrs defaults
    assert defs["op_elu"]["properties"]["attrs"]["properties"]["alpha"] == {
        "type": "number", "default": 1.0}
    assert "input" not in defs["node"]["properties"]["op"]["enum"]


def test_schema_covers_initializers_optimizers_and_datasets():
    defs = model_schema(builtins_only=True)["$defs"]
    assert "glorot_uniform" in defs["init"]["then"]["enum"]
    assert "sgd" in defs["optimizer"]["then"]["enum"]
    assert "digits" in defs["training"]["properties"]["dataset"]["enum"]
    normal = [c for c in defs["init"]["else"]["allOf"]
              if c["if"]["properties"]["name"]["const"] == "normal"][0]
    assert normal["then"]["properties"]["std"] == {
        "type": "number", "description": "standard deviation", "default": 0.05, "minimum": 0,
        "maximum": 1e6}


class Scale(gn.Op):
    """y = factor * x (a plugin op with a float attr in a range)."""

    name = "scale_for_schema_test"
    attrs = {"factor": gn.Attr(2.0, "float", min=-10.0, max=10.0, doc="multiplier"),
             "mode": gn.Attr("plain", "str", choices=("plain", "fancy"))}

    def forward(self, ctx, x):
        return x * ctx.attrs["factor"]

    def backward(self, ctx, dy):
        return (dy * ctx.attrs["factor"],)


def test_plugin_ops_are_in_the_schema_and_validated():
    with registered(Scale()):
        schema = model_schema()
        attrs = schema["$defs"]["op_scale_for_schema_test"]["properties"]["attrs"]["properties"]
        assert attrs["factor"] == {"type": "number", "description": "multiplier",
                                   "default": 2.0, "minimum": -10.0, "maximum": 10.0}
        assert "op_scale_for_schema_test" not in model_schema(builtins_only=True)["$defs"]
        d = {"format": "graphnet-model/1", "inputs": [{"name": "x", "shape": [2]}],
             "nodes": [{"name": "s", "op": "scale_for_schema_test", "inputs": ["x"],
                        "attrs": {"factor": 3.0}}], "outputs": ["s"]}
        model = gn.Model(gn.Graph.from_dict(d))
        assert np.allclose(model.predict({"x": np.ones((1, 2))})["s"], 3.0)
        d["nodes"][0]["attrs"] = {"factor": 11.0}
        with pytest.raises(gn.SchemaError, match=r"nodes\[0\]\.attrs\.factor.*<= 10\.0"):
            gn.Graph.from_dict(d)
        d["nodes"][0]["attrs"] = {"mode": "fancyy"}
        with pytest.raises(gn.SchemaError, match=r"nodes\[0\]\.attrs\.mode.*'fancy'"):
            gn.Graph.from_dict(d)
    # once the plugin is gone, the same file names the op and the missing plugin
    with pytest.raises(gn.UnknownOpError, match="scale_for_schema_test.*no installed plugin"):
        gn.Graph.from_dict(d)


def test_plugin_activation_attrs_are_in_the_schema():
    act = gn.Activation("shifted_for_schema_test", fn=lambda x, shift=0.5: x + shift,
                        derivative=lambda x, y, shift=0.5: np.ones_like(x),
                        attrs={"shift": 0.5})
    with registered(act):
        attrs = model_schema()["$defs"]["op_shifted_for_schema_test"]["properties"]["attrs"]
        assert attrs["properties"]["shift"]["default"] == 0.5


def test_example_files_validate_against_the_shipped_schema_with_plain_jsonschema():
    validator = jsonschema.Draft202012Validator(shipped_schema())
    for path in sorted((ROOT / "examples" / "models").glob("*.json")):
        data = json.loads(path.read_text())
        errors = [e.message for e in validator.iter_errors(data)]
        assert not errors, f"{path.name}: {errors}"
        assert (path.parent / data["$schema"]).resolve() == \
            (ROOT / "graphnet" / "schema" / "model-1.json").resolve()


def test_the_schema_catches_what_editors_should_flag():
    validator = jsonschema.Draft202012Validator(shipped_schema())
    bad = {"format": "graphnet-model/1", "inputs": [{"name": "x", "shape": [2]}],
           "nodes": [{"name": "fc", "op": "dense", "inputs": ["x"], "attrs": {"unitz": 3}}]}
    assert any("unitz" in e.message for e in validator.iter_errors(bad))
