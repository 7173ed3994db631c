"""The Graph builder: names, ordered (repeatable) inputs, copies, NetworkX interop."""

import networkx as nx
import numpy as np

import graphnet as gn


def test_auto_names_count_per_op():
    g = gn.Graph()
    x = g.input("x", (3,))
    a = g.add("tanh", x)
    b = g.add("tanh", a)
    c = g.add("dense", b, units=2)
    assert (a, b, c) == ("tanh_1", "tanh_2", "dense_1")
    g.add("tanh", c, name="tanh_3")      # a user's name is never reused
    assert g.add("tanh", c) == "tanh_4"
    assert g.nodes() == ["x", "tanh_1", "tanh_2", "dense_1", "tanh_3", "tanh_4"]


def test_node_data_and_edges():
    g = gn.Graph("net")
    x = g.input("x", [2, 3], dtype="float64")
    h = g.add("dense", x, units=4, name="fc")
    assert g.node("x") == {"op": "input", "attrs": {"shape": (2, 3), "dtype": "float64"},
                           "inputs": []}
    assert g.node(h) == {"op": "dense", "attrs": {"units": 4}, "inputs": ["x"]}
    assert list(g.nx.edges) == [("x", "fc")]
    assert g.inputs() == ["x"] and g.name == "net" and g.outputs == []
    assert g.output(h) == "fc" and g.outputs == ["fc"]
    assert g.output(h) == "fc" and g.outputs == ["fc"]   # marking twice keeps one
    assert "net" in repr(g)


def test_repeated_and_ordered_inputs_survive_into_the_model():
    g = gn.Graph()
    a, b = g.input("a", (3,)), g.input("b", (3,))
    sq = g.add("mul", a, a, name="sq")
    d = g.add("sub", b, a, name="d")
    g.output(sq, d)
    assert g.node("sq")["inputs"] == ["a", "a"] and g.node("d")["inputs"] == ["b", "a"]
    model = gn.Model(g, dtype="float64")
    A, B = np.arange(6.0).reshape(2, 3), np.ones((2, 3))
    outs = model.predict({"a": A, "b": B})
    np.testing.assert_array_equal(outs["sq"], A * A)
    np.testing.assert_array_equal(outs["d"], B - A)


def test_copy_is_independent():
    g = gn.Graph("orig")
    x = g.input("x", (3,))
    h = g.add("dense", x, units=2, name="fc")
    g.output(h)
    c = g.copy()
    c.add("tanh", h)
    c.node("fc")["attrs"]["units"] = 7
    c.node("fc")["inputs"].append("x")
    c.output("tanh_1")
    assert g.nodes() == ["x", "fc"] and g.outputs == ["fc"]
    assert g.node("fc") == {"op": "dense", "attrs": {"units": 2}, "inputs": ["x"]}
    assert g.add("tanh", h) == "tanh_1"   # the counters are copied, not shared
    assert c.add("tanh", h) == "tanh_2"


def test_model_keeps_its_own_copy_of_the_graph():
    g = gn.Graph()
    g.output(g.add("dense", g.input("x", (3,)), units=2, name="fc"))
    model = gn.Model(g)
    g.node("fc")["attrs"]["units"] = 5
    g.add("tanh", "fc")
    assert model.params["fc.weight"].shape == (3, 2)
    assert "tanh_1" not in model.graph.nx and model.graph.node("fc")["attrs"]["units"] == 2


def reference_model():
    g = gn.Graph("ref")
    x, t = g.input("x", (3,)), g.input("t", (3,))
    h = g.add("dense", x, units=3, name="fc")
    sq = g.add("mul", h, h, name="sq")
    d = g.add("sub", sq, x, name="d")
    g.add("mse", d, t, name="loss")
    g.output(d)
    return g


def test_from_networkx_with_inputs_attribute():
    G = nx.DiGraph(name="fromnx")
    G.add_node("x", op="input", shape=(3,))
    G.add_node("t", op="input", attrs={"shape": [3]})
    G.add_node("fc", op="dense", attrs={"units": 3}, inputs=["x"])
    G.add_node("sq", op="mul", inputs=["fc", "fc"])   # a DiGraph edge cannot repeat
    G.add_node("d", op="sub", inputs=["sq", "x"])
    G.add_node("loss", op="mse", inputs=["d", "t"])
    G.add_edges_from([("x", "fc"), ("fc", "sq"), ("sq", "d"), ("x", "d"), ("d", "loss"),
                      ("t", "loss")])
    g = gn.Graph.from_networkx(G)
    assert g.name == "fromnx" and g.outputs == []   # outputs default to non-loss sinks
    g.output("d")
    assert g.node("sq")["inputs"] == ["fc", "fc"]
    assert g.node("t")["attrs"] == {"shape": (3,), "dtype": "float32"}
    check_same_as_reference(g)


def test_from_networkx_with_edge_index_ordering():
    G = nx.DiGraph()
    for name, op, attrs in [("d", "sub", {}), ("loss", "mse", {}), ("sq", "mul", {}),
                            ("fc", "dense", {"units": 3})]:
        G.add_node(name, op=op, attrs=attrs)
    G.add_node("x", op="input", shape=(3,))
    G.add_node("t", op="input", shape=(3,), dtype="float32")
    # edges added in the "wrong" order: index decides the input position
    G.add_edge("x", "d", index=1)
    G.add_edge("sq", "d", index=0)
    G.add_edge("t", "loss", index=1)
    G.add_edge("d", "loss", index=0)
    G.add_edge("fc", "sq")
    G.add_edge("x", "fc")
    g = gn.Graph.from_networkx(G, name="indexed", outputs=["d"])
    assert g.node("d")["inputs"] == ["sq", "x"] and g.node("loss")["inputs"] == ["d", "t"]
    # mul with a single edge reads fc once: give the repeat explicitly instead
    g.node("sq")["inputs"] = ["fc", "fc"]
    check_same_as_reference(g)


def check_same_as_reference(g):
    ref = gn.Model(reference_model(), seed=5, dtype="float64")
    model = gn.Model(g, seed=5, dtype="float64")
    model.params.update({k: v.copy() for k, v in ref.params.items()})
    rng = np.random.default_rng(0)
    feeds = {"x": rng.normal(size=(4, 3)), "t": rng.normal(size=(4, 3))}
    a, b = ref.forward(feeds), model.forward(feeds)
    np.testing.assert_allclose(a["loss"], b["loss"])
    np.testing.assert_allclose(a["d"], b["d"])
    ga, gb = ref.backward(), model.backward()
    for k in ga:
        np.testing.assert_allclose(ga[k], gb[k])


def test_from_networkx_round_trip_of_a_builder_graph():
    g = reference_model()
    again = gn.Graph.from_networkx(g.nx)
    assert again.outputs == g.outputs == ["d"] and again.nodes() == g.nodes()
    for n in g.nodes():
        assert again.node(n)["inputs"] == g.node(n)["inputs"]
    check_same_as_reference(again)


def test_from_networkx_default_outputs_are_the_sinks_that_are_not_losses():
    G = nx.DiGraph()
    G.add_node("x", op="input", shape=(2,))
    G.add_node("a", op="tanh", inputs=["x"])
    G.add_node("b", op="sigmoid", inputs=["x"])
    G.add_node("l", op="mse", inputs=["a", "x"])
    G.add_edges_from([("x", "a"), ("x", "b"), ("a", "l"), ("x", "l")])
    assert gn.Graph.from_networkx(G).outputs == ["b"]


def test_networkx_algorithms_see_the_graph():
    g = reference_model()
    assert nx.is_directed_acyclic_graph(g.nx)
    assert nx.ancestors(g.nx, "d") == {"x", "fc", "sq"}
    assert g.nx.graph["outputs"] == ["d"]


def test_from_networkx_multidigraph_repeats_inputs_with_parallel_edges():
    G = nx.MultiDiGraph()
    G.add_node("x", op="input", shape=(3,))
    G.add_node("t", op="input", shape=(3,))
    G.add_node("fc", op="dense", attrs={"units": 3})
    G.add_node("sq", op="mul")
    G.add_node("d", op="sub")
    G.add_node("loss", op="mse")
    G.add_edge("x", "fc")
    G.add_edge("fc", "sq")
    G.add_edge("fc", "sq")                  # a parallel edge: fc read twice
    G.add_edge("x", "d", index=1)
    G.add_edge("sq", "d", index=0)
    G.add_edges_from([("d", "loss", {"index": 0}), ("t", "loss", {"index": 1})])
    g = gn.Graph.from_networkx(G, outputs=["d"])
    assert g.node("sq")["inputs"] == ["fc", "fc"] and g.node("d")["inputs"] == ["sq", "x"]
    check_same_as_reference(g)


def test_from_networkx_refuses_other_graphs():
    import pytest
    with pytest.raises(gn.GraphError, match="DiGraph"):
        gn.Graph.from_networkx(nx.Graph())
