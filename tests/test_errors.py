"""Every user-input failure raises a GraphnetError subclass whose message names the
node or input at fault (and, where it helps, what was meant)."""

import networkx as nx
import numpy as np
import pytest

import graphnet as gn
from graphnet.errors import (CycleError, FeedError, GraphError, GraphnetError, ShapeError,
                             UnknownOpError)


def mlp():
    g = gn.Graph("mlp")
    x = g.input("x", (3,))
    y = g.input("y", (), dtype="int64")
    h = g.add("dense", x, units=4, name="fc1")
    out = g.add("dense", g.add("relu", h), units=2, name="out")
    g.add("softmax_cross_entropy", out, y, name="loss")
    g.output(out)
    return g


def raises(exc, *words):
    """pytest.raises that also checks that each word appears in the message."""
    class Check:
        def __enter__(self):
            self.cm = pytest.raises(exc)
            self.info = self.cm.__enter__()
            return self.info

        def __exit__(self, *a):
            result = self.cm.__exit__(*a)
            msg = str(self.info.value)
            for w in words:
                assert w in msg, f"{w!r} not in message: {msg}"
            assert isinstance(self.info.value, GraphnetError)
            return result
    return Check()


# --- graph structure -------------------------------------------------------------
def test_duplicate_names():
    g = mlp()
    with raises(GraphError, "'fc1'", "duplicate"):
        g.add("dense", "x", units=2, name="fc1")
    with raises(GraphError, "'x'", "duplicate"):
        g.input("x", (3,))


def test_unknown_input_while_building():
    g = mlp()
    with raises(GraphError, "'head'", "'fc2'", "did you mean 'fc1'"):
        g.add("dense", "fc2", units=2, name="head")


def test_unknown_input_from_networkx():
    G = nx.DiGraph()
    G.add_node("x", op="input", shape=(2,))
    G.add_node("h", op="tanh", inputs=["xx"])
    g = gn.Graph.from_networkx(G)
    with raises(GraphError, "'h'", "'xx'", "did you mean 'x'"):
        gn.Model(g)


def test_cycle_names_the_nodes_on_it():
    G = nx.DiGraph()
    G.add_node("x", op="input", shape=(2,))
    G.add_node("a", op="tanh")
    G.add_node("b", op="add")
    G.add_node("c", op="tanh")
    G.add_edge("x", "a")
    G.add_edge("a", "b", index=0)
    G.add_edge("c", "b", index=1)
    G.add_edge("b", "c")
    g = gn.Graph.from_networkx(G, outputs=["c"])
    with raises(CycleError, "cycle") as info:
        gn.Model(g)
    path = str(info.value).split(":", 1)[1].split(";")[0].split(" -> ")
    assert [p.strip() for p in path] in (["b", "c", "b"], ["c", "b", "c"])
    assert info.value.node == path[0].strip()


def test_wrong_number_of_inputs():
    g = gn.Graph()
    x = g.input("x", (3,))
    g.add("add", x, name="lonely")
    with raises(GraphError, "'lonely'", "add", "2 input", "got 1"):
        gn.Model(g)
    g = gn.Graph()
    x = g.input("x", (3,))
    g.add("tanh", x, x, name="twice")
    with raises(GraphError, "'twice'", "takes 1"):
        gn.Model(g)
    g = gn.Graph()
    g.add("concat", name="empty")
    with raises(GraphError, "'empty'", "at least one"):
        gn.Model(g)


def test_outputs_that_do_not_exist():
    g = mlp()
    with raises(GraphError, "'outt'", "did you mean 'out'"):
        g.output("outt")
    with raises(GraphError, "output()"):
        g.output()
    G = mlp().nx.copy()
    g2 = gn.Graph.from_networkx(G, outputs=["nope"])
    with raises(GraphError, "'nope'"):
        gn.Model(g2)


def test_a_node_cannot_read_a_loss():
    g = mlp()
    g.add("tanh", "loss", name="after")
    with raises(GraphError, "'after'", "'loss'"):
        gn.Model(g)


def test_integer_input_into_a_float_op():
    g = gn.Graph()
    y = g.input("y", (3,), dtype="int64")
    g.add("tanh", y, name="act")
    with raises(GraphError, "'act'", "'y'", "integer"):
        gn.Model(g)


# --- ops and attrs ---------------------------------------------------------------
@pytest.mark.parametrize("op, name, attrs, error, words", [
    pytest.param("tanhh", "act", {}, UnknownOpError, ["'tanhh'", "did you mean 'tanh'"],
                 id="unknown_op_with_did_you_mean"),
    pytest.param("dense", "fc", {"unit": 3}, GraphError, ["'unit'", "did you mean 'units'"],
                 id="unknown_attr_with_did_you_mean"),
    pytest.param("dense", "fc", {}, GraphError, ["'units'", "required"],
                 id="missing_required_attr"),
])
def test_unknown_op_or_attr_is_named(op, name, attrs, error, words):
    g = gn.Graph()
    g.add(op, g.input("x", (3,)), name=name, **attrs)
    with raises(error, f"'{name}'", *words):
        gn.Model(g)


@pytest.mark.parametrize("op, attrs, words", [
    ("dense", {"units": 0}, ["'units'", ">= 1", "0"]),
    ("dense", {"units": "3"}, ["'units'", "integer", "'3'"]),
    ("dense", {"units": 2.5}, ["'units'", "integer"]),
    ("dense", {"units": 2, "use_bias": "yes"}, ["'use_bias'"]),
    ("dense", {"units": 2, "init": "glorot"}, ["'init'", "glorot_uniform"]),
    ("dropout", {"rate": 1.5}, ["'rate'", "1.5"]),
    ("dropout", {"rate": -0.1}, ["'rate'"]),
    ("elu", {"alpha": float("nan")}, ["'alpha'", "finite"]),
    ("mse", {"reduction": "avg"}, ["'reduction'", "mean"]),
    ("reshape", {"shape": [0, 3]}, ["'shape'"]),
])
def test_bad_attr_values(op, attrs, words):
    g = gn.Graph()
    x = g.input("x", (3,))
    g.add(op, *([x, x] if op == "mse" else [x]), name="node", **attrs)
    with raises(GraphError, "'node'", *words):
        gn.Model(g)


# --- shapes ----------------------------------------------------------------------
@pytest.mark.parametrize("op, shapes, attrs, words", [
    ("add", [(3,), (4,)], {}, ["(3,)", "(4,)"]),
    ("mul", [(2, 3), (3, 3)], {}, ["(2, 3)", "(3, 3)"]),
    ("dense", [()], {"units": 2}, ["scalar"]),
    ("concat", [(2, 3), (2, 4)], {"axis": 0}, ["(2, 3)", "(2, 4)"]),
    ("concat", [(3,)], {"axis": 1}, ["axis 1"]),
    ("reshape", [(6,)], {"shape": [4, -1]}, ["(6,)", "(4, -1)"]),
    ("mse", [(3,), (2,)], {}, ["(3,)", "(2,)"]),
    ("softmax_cross_entropy", [(2, 3), ()], {}, ["(2, 3)"]),
    ("softmax", [()], {}, ["scalar"]),
])
def test_shape_errors_name_node_op_and_shapes(op, shapes, attrs, words):
    g = gn.Graph()
    ins = [g.input(f"in{i}", s) for i, s in enumerate(shapes)]
    if op == "softmax_cross_entropy":
        g.nx.nodes["in1"]["attrs"]["dtype"] = "int64"
    g.add(op, *ins, name="node", **attrs)
    with raises(ShapeError, "'node'", op, *words) as info:
        gn.Model(g)
    assert info.value.node == "node"


def test_errors_carry_the_node_at_fault_and_keep_it_through_pickle():
    import pickle
    g = mlp()
    g.nx.nodes["fc1"]["attrs"]["units"] = 0
    with raises(GraphError, "'fc1'", "units") as info:
        gn.Model(g)
    assert info.value.node == "fc1"
    again = pickle.loads(pickle.dumps(info.value))
    assert (type(again), str(again), again.node) == (GraphError, str(info.value), "fc1")
    assert GraphnetError("no node here").node is None


# --- feeds -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    return gn.Model(mlp())


X = np.zeros((4, 3), np.float32)
Y = np.array([0, 1, 1, 0])


def test_missing_feed(model):
    with raises(FeedError, "'y'", "missing"):
        model.forward({"x": X})
    with raises(FeedError, "'x'", "missing"):
        model.predict({"y": Y})


def test_unknown_feed(model):
    with raises(FeedError, "'xx'", "did you mean 'x'"):
        model.forward({"x": X, "y": Y, "xx": X})


def test_wrong_per_sample_shape(model):
    with raises(FeedError, "'x'", "(N, 3)", "(4, 2)"):
        model.forward({"x": np.zeros((4, 2)), "y": Y})
    with raises(FeedError, "'x'", "batch axis"):
        model.predict({"x": np.zeros(3)})
    with raises(FeedError, "'y'", "(4, 1)"):
        model.forward({"x": X, "y": Y[:, None]})


def test_batch_sizes_must_agree(model):
    with raises(FeedError, "'y'", "samples"):
        model.forward({"x": X, "y": Y[:3]})


def test_one_sample_count_error_and_one_batch_size_error_everywhere():
    m = gn.Model(mlp())
    feeds = {"x": X, "y": Y[:3]}
    calls = [lambda: m.forward(feeds), lambda: m.predict(feeds, batch_size=2),
             lambda: m.fit(feeds, epochs=1, progress=False), lambda: m.evaluate(feeds)]
    for call in calls:
        with raises(FeedError, "every input needs the same number of samples", "'x': 4",
                    "'y': 3"):
            call()
    good = {"x": X, "y": Y}
    for call in [lambda: m.predict(good, batch_size=0),
                 lambda: m.fit(good, epochs=1, batch_size=1.5, progress=False),
                 lambda: m.evaluate(good, batch_size=True)]:
        with raises(GraphnetError, "batch_size must be a whole number >= 1"):
            call()


def test_wrong_dtype_kind(model):
    with raises(FeedError, "'y'", "integer"):
        model.forward({"x": X, "y": Y.astype(np.float32)})
    with raises(FeedError, "'x'", "numbers"):
        model.forward({"x": np.full((4, 3), "a"), "y": Y})
    with raises(FeedError, "dict"):
        model.forward([X, Y])


def test_out_of_range_labels_name_the_loss(model):
    with raises(FeedError, "'loss'", "[0, 2)"):
        model.forward({"x": X, "y": np.array([0, 1, 2, 0])})


def test_float64_feeds_are_cast(model):
    outs = model.forward({"x": X.astype(np.float64), "y": Y})
    assert outs["out"].dtype == np.float32 and outs["loss"].dtype == np.float32
    ints = model.predict({"x": np.ones((2, 3), dtype=np.int64)})["out"]
    np.testing.assert_array_equal(ints, model.predict({"x": np.ones((2, 3))})["out"])


# --- model level -----------------------------------------------------------------
def test_size_limit_refused_before_allocation():
    g = gn.Graph("huge")
    g.add("dense", g.input("x", (100_000,)), units=100_000, name="fc")  # 1e10 params: 40 GB
    with raises(GraphnetError, "'huge'", "10,000,100,000", "max_params"):
        gn.Model(g)
    with raises(GraphnetError, "'mlp'", "26", "limit of 10"):
        gn.Model(mlp(), max_params=10)
    assert gn.Model(mlp(), max_params=26).param_count() == 26


def test_bad_model_dtype():
    with raises(GraphnetError, "float16"):
        gn.Model(mlp(), dtype="float16")


def test_backward_without_forward():
    with raises(GraphnetError, "forward"):
        gn.Model(mlp()).backward()


def test_backward_after_a_forward_without_loss(model):
    model.predict({"x": X})
    model.forward({"x": X}, outputs=["out"])
    with raises(GraphnetError, "loss"):
        model.backward()


def test_backward_of_an_unknown_loss(model):
    model.forward({"x": X, "y": Y})
    with raises(GraphnetError, "'los'", "did you mean 'loss'"):
        model.backward(loss="los")


def test_forward_of_an_unknown_output(model):
    with raises(GraphnetError, "'fc2'", "did you mean 'fc1'"):
        model.forward({"x": X}, outputs=["fc2"])


def test_bad_names_and_shapes_while_building():
    g = gn.Graph()
    with raises(GraphError, "'1x'"):
        g.input("1x", (3,))
    with raises(GraphError, "'x'", "shape"):
        g.input("x", 3)
    with raises(GraphError, "op"):
        g.add(None, "x")


@pytest.mark.parametrize("backward, words", [
    pytest.param(lambda dy: (dy * 2, dy), ["one gradient per input"],
                 id="wrong_number_of_gradients"),
    pytest.param(lambda dy: (dy.sum(axis=0),), ["(3,)", "(4, 3)", "'x'"],
                 id="a_gradient_of_the_wrong_shape"),
])
def test_op_whose_backward_returns(backward, words):
    class Broken(gn.Op):
        name = "broken_backward"

        def forward(self, ctx, x):
            return x * 2

        def backward(self, ctx, dy):
            return backward(dy)

    from graphnet.testing import registered
    with registered(Broken()):
        g = gn.Graph()
        x = g.input("x", (3,))
        g.add("mse", g.add("dense", g.add("broken_backward", x, name="bad"), units=3),
              g.input("t", (3,)), name="loss")
        model = gn.Model(g)
        model.forward({"x": X, "t": X})
        with raises(GraphnetError, "'bad'", *words):
            model.backward(inputs=True)


def test_empty_batch_refused_for_a_loss_but_fine_for_predict(model):
    with raises(FeedError, "'loss'", "no samples"):
        model.forward({"x": X[:0], "y": Y[:0]})
    assert model.predict({"x": X[:0]})["out"].shape == (0, 2)


def test_input_shapes_must_be_positive():
    g = gn.Graph()
    g.input("x", (-1, 3))
    with raises(ShapeError, "'x'", "(-1, 3)"):
        gn.Model(g)
    g = gn.Graph()
    g.input("x", (0,))
    with raises(GraphError, "'x'", "shape"):
        gn.Model(g)


def test_model_of_something_that_is_not_a_graph():
    with raises(GraphnetError, "DiGraph", "from_networkx"):
        gn.Model(nx.DiGraph())


# --- one line per failure, the same everywhere ----------------------------------------

def test_one_line_examples_run():
    import doctest

    import graphnet.errors
    result = doctest.testmod(graphnet.errors)
    assert result.attempted >= 2 and result.failed == 0


@pytest.mark.parametrize("exc, line", [
    (GraphnetError("node 'fc1':\n    units   must be >= 1\n"), "node 'fc1': units must be >= 1"),
    (GraphnetError(""), "GraphnetError"),
])
def test_the_cli_a_sweep_row_and_a_run_note_put_a_failure_in_one_line_alike(
        exc, line, capsys, monkeypatch, tmp_path):
    import importlib
    cli, render, runs, sweep = (importlib.import_module(f"graphnet.{m}")
                                for m in ("cli", "render", "runs", "sweep"))
    cli._print_error(exc)
    assert capsys.readouterr().err == f"graphnet: error: {line}\n"

    def fail(*args, **kwargs):
        raise exc
    monkeypatch.setattr(sweep, "train_run", fail)
    assert sweep._call(sweep._train_cell, (None, {}, str(tmp_path / ".stop"))) == (None, line)
    monkeypatch.setattr(render, "render", fail)
    assert runs._render(None, "graph.svg") == f"warning: graph.svg not written: {line}"
