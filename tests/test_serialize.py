"""The JSON form: exact round trips, Python == JSON, and one test per error kind."""

import copy
import json

import numpy as np
import pytest

import graphnet as gn
from graphnet.serialize import FORMAT


def residual_python():
    """The residual MLP of DESIGN.md (as shipped: sized for the digits), declared in Python."""
    g = gn.Graph("residual_mlp")
    x = g.input("x", shape=(64,))
    label = g.input("label", shape=(), dtype="int64")
    h = g.add("dense", x, units=64, name="fc1")
    h = g.add("elu", h, alpha=1.0, name="act1")
    h = g.add("add", x, h, name="skip")
    logits = g.add("dense", h, units=10, name="logits")
    g.add("softmax_cross_entropy", logits, label, name="loss")
    g.output(logits)
    return g


RESIDUAL_JSON = """
{
  "format": "graphnet-model/1",
  "name": "residual_mlp",
  "inputs": [
    {"name": "x", "shape": [64]},
    {"name": "label", "shape": [], "dtype": "int64"}
  ],
  "nodes": [
    {"name": "logits", "op": "dense", "inputs": ["skip"], "attrs": {"units": 10}},
    {"name": "fc1", "op": "dense", "inputs": ["x"], "attrs": {"units": 64}},
    {"name": "act1", "op": "elu", "inputs": ["fc1"], "attrs": {"alpha": 1}},
    {"name": "skip", "op": "add", "inputs": ["x", "act1"]},
    {"name": "loss", "op": "softmax_cross_entropy", "inputs": ["logits", "label"]}
  ],
  "outputs": ["logits"]
}
"""


def base(**extra):
    """A small valid model dict to break one piece of at a time."""
    d = {"format": FORMAT, "name": "m",
         "inputs": [{"name": "x", "shape": [3], "dtype": "float32"},
                    {"name": "y", "shape": [2], "dtype": "float32"}],
         "nodes": [{"name": "fc", "op": "dense", "inputs": ["x"], "attrs": {"units": 2}},
                   {"name": "act", "op": "tanh", "inputs": ["fc"]},
                   {"name": "loss", "op": "mse", "inputs": ["act", "y"]}],
         "outputs": ["act"]}
    d.update(extra)
    return d


def error_of(data, cls=gn.GraphnetError):
    with pytest.raises(cls) as info:
        if isinstance(data, str):
            gn.Graph.from_json(data)
        else:
            gn.Graph.from_dict(data)
    assert type(info.value) is cls or cls is gn.GraphnetError
    return str(info.value)


# --- round trips --------------------------------------------------------------

def test_to_dict_from_dict_to_dict_is_identical():
    d = residual_python().to_dict()
    assert gn.Graph.from_dict(d).to_dict() == d
    assert json.loads(json.dumps(d)) == d


def test_to_json_from_json_is_identical_text():
    text = residual_python().to_json()
    assert gn.Graph.from_json(text).to_json() == text
    assert text.endswith("\n") and '\n  "format": "graphnet-model/1",' in text


def test_to_json_key_order_is_stable():
    d = residual_python().to_dict()
    assert list(d) == ["format", "name", "inputs", "nodes", "outputs"]
    assert list(d["nodes"][0]) == ["name", "op", "inputs", "attrs"]
    assert list(d["inputs"][0]) == ["name", "shape", "dtype"]
    assert "attrs" not in d["nodes"][2]          # add has none: left out


def test_to_json_writes_the_file(tmp_path):
    path = tmp_path / "m.json"
    text = residual_python().to_json(path)
    assert path.read_text() == text
    assert gn.Graph.from_json(path).to_dict() == residual_python().to_dict()
    assert gn.Graph.from_json(str(path)).to_dict() == residual_python().to_dict()


def test_tuple_attrs_become_lists_and_come_back_equal():
    g = gn.Graph("r")
    x = g.input("x", shape=(6,))
    g.output(g.add("reshape", x, shape=(2, 3), name="r"))
    d = g.to_dict()
    assert d["nodes"][0]["attrs"]["shape"] == [2, 3]
    back = gn.Graph.from_dict(d)
    assert back.node("r")["attrs"]["shape"] == (2, 3)   # the engine's normal form
    assert back.to_dict() == d


def test_numpy_values_in_attrs_are_written_as_plain_json():
    g = gn.Graph("n")
    x = g.input("x", shape=(2,))
    g.output(g.add("dense", x, units=np.int64(3), name="fc"))
    assert g.to_dict()["nodes"][0]["attrs"]["units"] == 3
    assert type(g.to_dict()["nodes"][0]["attrs"]["units"]) is int


def test_int_for_a_float_attr_is_normalised_on_both_sides():
    g = gn.Graph("e")
    x = g.input("x", shape=(2,))
    g.output(g.add("elu", x, alpha=2, name="e"))
    d = g.to_dict()
    assert d["nodes"][0]["attrs"]["alpha"] == 2.0 and type(d["nodes"][0]["attrs"]["alpha"]) is float
    assert gn.Graph.from_dict(d).to_dict() == d


def test_training_block_round_trips():
    d = base(training={"optimizer": {"name": "sgd", "lr": 0.1}, "epochs": 3,
                       "batch_size": 8, "seed": 1, "dataset": "digits",
                       "validation_split": 0.1, "shuffle": False})
    g = gn.Graph.from_dict(d)
    assert g.to_dict() == d
    assert gn.serialize.training_block(g) == d["training"]
    assert gn.Graph.from_json(g.to_json()).to_dict() == d


def test_forward_references_are_allowed():
    g = gn.Graph.from_json(RESIDUAL_JSON)   # "logits" is listed before "skip"
    assert set(g.nodes()) == {"x", "label", "logits", "fc1", "act1", "skip", "loss"}


def test_from_dict_does_not_change_its_argument():
    d = base()
    before = copy.deepcopy(d)
    gn.Graph.from_dict(d)
    assert d == before


# --- Python and JSON declare the same model ------------------------------------

def test_python_and_json_declarations_are_equal():
    py, js = residual_python(), gn.Graph.from_json(RESIDUAL_JSON)
    a, b = py.to_dict(), js.to_dict()
    assert a["inputs"] == b["inputs"] and a["outputs"] == b["outputs"]
    by_name = {n["name"]: n for n in b["nodes"]}
    assert sorted(by_name) == sorted(n["name"] for n in a["nodes"])
    for node in a["nodes"]:
        assert by_name[node["name"]] == node


def test_python_and_json_models_give_identical_params_and_outputs():
    py = gn.Model(residual_python(), seed=7)
    js = gn.Model(gn.Graph.from_json(RESIDUAL_JSON), seed=7)
    assert list(py.params) == list(js.params)
    for key in py.params:
        assert np.array_equal(py.params[key], js.params[key]), key
    rng = np.random.default_rng(0)
    feeds = {"x": rng.normal(size=(5, 64)).astype(np.float32),
             "label": rng.integers(0, 10, size=5)}
    out_py, out_js = py.forward(feeds, training=True), js.forward(feeds, training=True)
    for key in out_py:
        assert np.array_equal(out_py[key], out_js[key])
    g_py, g_js = py.backward(), js.backward()
    for key in g_py:
        assert np.array_equal(g_py[key], g_js[key])


def test_example_model_files_load(tmp_path):
    from pathlib import Path
    examples = sorted((Path(__file__).parents[1] / "examples" / "models").glob("*.json"))
    assert examples, "examples/models/ holds at least one model file"
    for path in examples:
        data = json.loads(path.read_text())
        assert data["$schema"] == "../../graphnet/schema/model-1.json"
        g = gn.Graph.from_json(path)
        gn.Model(g, seed=0)
    residual = gn.Graph.from_json(examples[[p.name for p in examples].index("residual_mlp.json")])
    d = residual.to_dict()
    d.pop("training")
    assert d == residual_python().to_dict()


# --- one test per error kind: the message names the path and the node ----------

def broken(path, value):
    """base() with the entry at ``path`` (keys and list indexes) set to ``value``."""
    d = base()
    *parents, last = path
    entry = d
    for key in parents:
        entry = entry[key]
    entry[last] = value
    return d


@pytest.mark.parametrize("path, value, cls, words", [
    pytest.param(("nodes", 0, "attrs"), {"unitz": 2}, gn.SchemaError,
                 ["nodes[0].attrs.unitz", "'fc'", "did you mean 'units'"],
                 id="misspelled_attr_did_you_mean"),
    pytest.param(("nodes", 1, "op"), "tahn", gn.UnknownOpError,
                 ["nodes[1].op", "'act'", "did you mean 'tanh'", "no installed plugin provides it"],
                 id="misspelled_op_did_you_mean_and_no_plugin"),
    pytest.param(("nodes", 1, "op"), "gelu_from_some_plugin", gn.UnknownOpError,
                 ["'gelu_from_some_plugin'", "no installed plugin provides it"],
                 id="op_of_a_plugin_that_is_not_installed"),
    pytest.param(("nodes", 2, "inputs"), ["act", "yy"], gn.SchemaError,
                 ["nodes[2].inputs[1]", "'loss'", "did you mean 'y'"],
                 id="misspelled_input_name_did_you_mean"),
    pytest.param(("nodes", 0, "attrs", "units"), 0, gn.SchemaError,
                 ["nodes[0].attrs.units", "'fc'",
                  "expected an integer >= 1", "found the integer 0"],
                 id="attr_out_of_range_says_expected_and_found"),
    pytest.param(("nodes", 0, "attrs", "units"), "four", gn.SchemaError,
                 ["nodes[0].attrs.units", "found the string 'four'"],
                 id="attr_of_the_wrong_type"),
    pytest.param(("nodes", 0, "attrs", "units"), 2.0, gn.SchemaError,
                 ["nodes[0].attrs.units", "an integer", "2.0"],
                 id="float_where_an_integer_is_needed"),
    pytest.param(("nodes", 2, "attrs"), {"reduction": "avg"}, gn.SchemaError,
                 ["nodes[2].attrs.reduction", "'loss'", "'mean'"],
                 id="attr_choice"),
    pytest.param(("nodes", 2, "inputs"), ["act"], gn.SchemaError,
                 ["nodes[2].inputs", "'loss'", "exactly 2 inputs, found 1"],
                 id="wrong_number_of_inputs"),
    pytest.param(("nodes", 1, "name"), "", gn.SchemaError,
                 ["nodes[1].name", "empty"],
                 id="empty_name"),
    pytest.param(("inputs", 0, "name"), "1x", gn.SchemaError,
                 ["inputs[0].name", "'1x'"],
                 id="invalid_name"),
    pytest.param(("inputs", 1, "name"), "x", gn.SchemaError,
                 ["inputs[1].name", "duplicate name 'x'", "inputs[0]"],
                 id="duplicate_input_names"),
    pytest.param(("nodes", 1, "name"), "y", gn.SchemaError,
                 ["nodes[1].name", "duplicate name 'y'"],
                 id="node_named_like_an_input"),
    pytest.param(("nodes", 0, "inputs"), "x", gn.SchemaError,
                 ["nodes[0].inputs", "a list", "'fc'"],
                 id="wrong_type_inside_a_node"),
    pytest.param(("inputs", 0, "shape"), [3, "a"], gn.SchemaError,
                 ["inputs[0].shape[1]", "input 'x'"],
                 id="shape_with_a_string"),
    pytest.param(("nodes", 2, "inputs"), ["act", "x"], gn.ShapeError,   # (2,) against (3,)
                 ["nodes[2]", "'loss'", "(2,)", "(3,)"],
                 id="shape_error_names_file_path_and_node"),
    pytest.param(("nodes", 0, "inputs"), ["act"], gn.CycleError,
                 ["nodes[0]", "fc -> act -> fc"],
                 id="cycle_error_names_the_nodes"),
    pytest.param(("inputs", 0, "dtype"), "int64", gn.GraphError,
                 ["nodes[0]", "'fc'", "integer"],
                 id="int_input_where_float_is_needed_is_a_graph_error"),
])
def test_one_broken_entry_is_named(path, value, cls, words):
    """One entry of a valid model set wrong: the error's class, and each word in its message
    (the JSON path, the node or input, what was expected, a did-you-mean)."""
    msg = error_of(broken(path, value), cls)
    for word in words:
        assert word in msg, f"{word!r} not in message: {msg}"


def test_missing_required_attr():
    d = base()
    del d["nodes"][0]["attrs"]
    msg = error_of(d, gn.SchemaError)
    assert "nodes[0]" in msg and "'fc'" in msg and "units" in msg


@pytest.mark.parametrize("text,constant", [
    ('{"format": "graphnet-model/1", "inputs": [], "nodes": [], "x": NaN}', "NaN"),
    ('{"format": "graphnet-model/1", "inputs": [{"name": "x", "shape": [2]}], "nodes": ['
     '{"name": "e", "op": "elu", "inputs": ["x"], "attrs": {"alpha": Infinity}}]}', "Infinity"),
    ('{"format": "graphnet-model/1", "inputs": [{"name": "x", "shape": [2]}], "nodes": ['
     '{"name": "e", "op": "elu", "inputs": ["x"], "attrs": {"alpha": -Infinity}}]}', "-Infinity"),
])
def test_non_finite_numbers_are_refused(text, constant):
    msg = error_of(text, gn.SchemaError)
    assert constant in msg
    if "alpha" in text:
        assert "nodes[0].attrs.alpha" in msg and "'e'" in msg


def test_overflowing_number_is_refused():
    text = ('{"format": "graphnet-model/1", "inputs": [{"name": "x", "shape": [2]}], "nodes": ['
            '{"name": "e", "op": "elu", "inputs": ["x"], "attrs": {"alpha": 1e999}}]}')
    msg = error_of(text, gn.SchemaError)
    assert "nodes[0].attrs.alpha" in msg and "finite" in msg


def test_nan_in_a_python_dict_is_refused():
    d = base()
    d["nodes"][1]["op"] = "elu"
    d["nodes"][1]["attrs"] = {"alpha": float("nan")}
    msg = error_of(d, gn.SchemaError)
    assert "nodes[1].attrs.alpha" in msg and "finite" in msg


def test_duplicate_key_in_a_json_object():
    text = json.dumps(base()).replace('"units": 2', '"units": 2, "units": 3')
    msg = error_of(text, gn.SchemaError)
    assert "nodes[0].attrs.units" in msg and "twice" in msg


def test_unknown_output_did_you_mean():
    msg = error_of(base(outputs=["actt"]), gn.SchemaError)
    assert "outputs[0]" in msg and "did you mean 'act'" in msg


def test_unknown_top_level_key_did_you_mean():
    msg = error_of(base(ouputs=["act"]), gn.SchemaError)
    assert "ouputs" in msg and "did you mean 'outputs'" in msg


def test_missing_format():
    d = base()
    del d["format"]
    msg = error_of(d, gn.SchemaError)
    assert '"format"' in msg and FORMAT in msg


def test_unknown_format_version():
    msg = error_of(base(format="graphnet-model/2"), gn.SchemaError)
    assert "format" in msg and "'graphnet-model/2'" in msg and FORMAT in msg


@pytest.mark.parametrize("where,value,path", [
    ("inputs", 5, "inputs"),
    ("nodes", {"a": 1}, "nodes"),
    ("outputs", "act", "outputs"),
    ("name", 3, "name"),
])
def test_wrong_types_at_the_top(where, value, path):
    msg = error_of(base(**{where: value}), gn.SchemaError)
    assert f"{path}: expected" in msg


def test_not_an_object():
    msg = error_of("[1, 2]", gn.SchemaError)
    assert "JSON object" in msg


def test_invalid_json_gives_line_and_column():
    msg = error_of('{\n  "format": "graphnet-model/1",\n  "inputs": [,]\n}', gn.SchemaError)
    assert "line 3 column" in msg


def test_missing_file_is_named(tmp_path):
    msg = error_of(str(tmp_path / "nope.json"), gn.SchemaError)
    assert "nope.json" in msg and "does not exist" in msg


def test_errors_from_a_file_name_the_file(tmp_path):
    d = base()
    d["nodes"][0]["attrs"] = {"unitz": 2}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(d))
    with pytest.raises(gn.SchemaError) as info:
        gn.Graph.from_json(path)
    assert str(info.value).startswith(str(path) + ": nodes[0].attrs.unitz")
    assert info.value.file == str(path) and info.value.path == "nodes[0].attrs.unitz"


def test_input_declared_as_a_node():
    d = base()
    d["nodes"].append({"name": "z", "op": "input", "inputs": []})
    msg = error_of(d, gn.SchemaError)
    assert "nodes[3].op" in msg and '"inputs"' in msg


def test_unknown_initializer_did_you_mean():
    d = base()
    d["nodes"][0]["attrs"]["init"] = "he_normall"
    msg = error_of(d, gn.UnknownOpError)
    assert "nodes[0].attrs.init" in msg and "did you mean 'he_normal'" in msg


def test_initializer_attrs_are_checked():
    d = base()
    d["nodes"][0]["attrs"]["init"] = {"name": "normal", "stdev": 0.1}
    msg = error_of(d, gn.SchemaError)
    assert "nodes[0].attrs.init.stdev" in msg and "did you mean 'std'" in msg
    d["nodes"][0]["attrs"]["init"] = {"name": "normal", "std": 0.1}
    assert gn.Graph.from_dict(d).to_dict() == d


# --- the training block ---------------------------------------------------------

def test_training_unknown_optimizer():
    msg = error_of(base(training={"optimizer": {"name": "sgdd", "lr": 0.1}}), gn.UnknownOpError)
    assert "training.optimizer.name" in msg and "did you mean 'sgd'" in msg
    assert "no installed plugin provides it" in msg


def test_training_optimizer_as_a_bare_name():
    g = gn.Graph.from_dict(base(training={"optimizer": "sgd"}))
    assert g.to_dict()["training"] == {"optimizer": "sgd"}
    msg = error_of(base(training={"optimizer": "sgdd"}), gn.UnknownOpError)
    assert "training.optimizer" in msg


def test_training_hyperparameter_type():
    msg = error_of(base(training={"optimizer": {"name": "sgd", "lr": "fast"}}), gn.SchemaError)
    assert "training.optimizer.lr" in msg and "a number" in msg and "'fast'" in msg


def test_training_unknown_hyperparameter():
    msg = error_of(base(training={"optimizer": {"name": "sgd", "lrr": 0.1}}), gn.SchemaError)
    assert "training.optimizer.lrr" in msg and "did you mean 'lr'" in msg


def test_training_misspelled_key():
    msg = error_of(base(training={"batchsize": 3}), gn.SchemaError)
    assert "training.batchsize" in msg and "did you mean 'batch_size'" in msg


@pytest.mark.parametrize("key,value,words", [
    ("epochs", 0, ">= 1"), ("batch_size", 2.5, "an integer"), ("seed", -1, ">= 0"),
    ("validation_split", 1.0, "< 1"), ("shuffle", "yes", "true or false"), ("data", "", "empty"),
])
def test_training_values(key, value, words):
    msg = error_of(base(training={key: value}), gn.SchemaError)
    assert f"training.{key}" in msg and words in msg


def test_training_unknown_dataset():
    msg = error_of(base(training={"dataset": "digitz"}), gn.UnknownOpError)
    assert "training.dataset" in msg and "did you mean 'digits'" in msg


def test_training_dataset_and_data_together():
    msg = error_of(base(training={"dataset": "digits", "data": "d.npz"}), gn.SchemaError)
    assert "training.data" in msg and "not both" in msg


def test_to_json_refuses_values_json_cannot_hold():
    g = gn.Graph("bad")
    x = g.input("x", shape=(2,))
    g.add("dense", x, units=3, init=object(), name="fc")
    with pytest.raises(gn.SchemaError, match="node 'fc': attr 'init'.*JSON cannot hold"):
        g.to_json()
    g = gn.Graph("nan")
    x = g.input("x", shape=(2,))
    g.add("elu", x, alpha=float("nan"), name="e")
    with pytest.raises(gn.SchemaError, match="node 'e': attr 'alpha'.*found NaN.*expected a finite number"):
        g.to_dict()


def test_schema_key_of_a_file_is_accepted_and_not_written_back():
    d = base()
    d["$schema"] = "../../graphnet/schema/model-1.json"
    out = gn.Graph.from_dict(d).to_dict()
    del d["$schema"]
    assert out == d
