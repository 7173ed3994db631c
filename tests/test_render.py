"""Rendering: SVGs drawn by graphviz's real dot program, parsed back and checked."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import graphviz
import numpy as np
import pytest

import graphnet as gn
from graphnet import analysis
from graphnet.render import PALETTE, output_gradients, output_stats

SVG = "{http://www.w3.org/2000/svg}"


# --- helpers --------------------------------------------------------------------------------


def parse_svg(text):
    """{"nodes": {id: [text lines]}, "fills": {id: fill}, "polygons": {id: count},
    "edges": [(tail, head, [label lines])], "clusters": [title]} of an SVG drawn by dot."""
    root = ET.fromstring(text)
    out = {"nodes": {}, "fills": {}, "polygons": {}, "edges": [], "clusters": []}
    for g in root.iter(f"{SVG}g"):
        cls = g.get("class")
        title = g.findtext(f"{SVG}title")
        texts = [t.text for t in g.iter(f"{SVG}text")]
        if cls == "node":
            out["nodes"][title] = texts
            shapes = [e for e in g if e.tag in (f"{SVG}polygon", f"{SVG}path", f"{SVG}ellipse")]
            out["fills"][title] = shapes[0].get("fill") if shapes else None
            out["polygons"][title] = len(shapes)
        elif cls == "edge":
            tail, head = title.split("->")
            out["edges"].append((tail, head, texts))
        elif cls == "cluster":
            out["clusters"].append(title)
    return out


def render_svg(obj, tmp_path, name="g.svg", **kw):
    path = tmp_path / name
    gn.render(obj, path, **kw)
    return parse_svg(path.read_text(encoding="utf-8"))


def mlp():
    """The lecture's chain: x -> Dense1 -> Activation1 -> Dense2 -> Activation2 -> Dense3."""
    g = gn.Graph("mlp")
    x = g.input("x", shape=(4,))
    t = g.input("y", shape=(1,))
    h = g.add("dense", x, units=16, name="fc1")
    h = g.add("relu", h, name="act1")
    h = g.add("dense", h, units=8, name="fc2")
    h = g.add("tanh", h, name="act2")
    y = g.add("dense", h, units=1, name="out")
    g.add("mse", y, t, name="loss")
    g.output(y)
    return g


def deep(act, layers, width=16, seed=0):
    """A deep MLP with one forward pass on random data and targets."""
    g = analysis.mlp(8, [width] * layers, 1, activation=act, name=f"deep_{act}")
    model = gn.Model(g, seed=seed, dtype="float64")
    rng = np.random.default_rng(seed)
    model.forward({"x": rng.normal(size=(32, 8)), "y": rng.normal(size=(32, 1))}, training=True)
    return model


def no_dot_path(tmp_path, monkeypatch):
    """A PATH with no dot on it."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


# --- what an SVG shows ----------------------------------------------------------------------


def test_svg_shows_every_node_with_its_op_shape_and_param_count(tmp_path):
    g = mlp()
    model = gn.Model(g)
    svg = render_svg(model, tmp_path)
    assert set(svg["nodes"]) == set(g.nodes())
    for name, node in model.nodes.items():
        lines = svg["nodes"][name]
        assert lines[0] == name
        assert lines[1].split()[0] == node.op.name
        if node.param_count():
            assert f"{node.param_count():,} params" in lines
        else:
            assert not any("param" in line for line in lines)
    assert svg["nodes"]["fc1"][1:] == ["dense 16", "(N, 16)", "80 params"]
    assert svg["nodes"]["fc2"][1:] == ["dense 8", "(N, 8)", "136 params"]
    assert svg["nodes"]["loss"][1:] == ["mse", "scalar"]


def test_svg_edges_follow_the_inputs_and_carry_shapes(tmp_path):
    g = mlp()
    svg = render_svg(g, tmp_path)
    expected = sorted((i, n) for n in g.nodes() for i in g.node(n)["inputs"])
    assert sorted((a, b) for a, b, _ in svg["edges"]) == expected
    labels = {(a, b): " ".join(t).strip() for a, b, t in svg["edges"]}
    assert labels[("x", "fc1")] == "(N, 4)"
    assert labels[("fc1", "act1")] == "(N, 16)"
    assert labels[("out", "loss")] == "(N, 1)"


def test_a_repeated_input_is_two_edges(tmp_path):
    g = gn.Graph("square")
    x = g.input("x", shape=(3,))
    h = g.add("dense", x, units=5, name="fc")
    g.output(g.add("mul", h, h, name="sq"))
    svg = render_svg(g, tmp_path)
    assert [(a, b) for a, b, _ in svg["edges"]].count(("fc", "sq")) == 2
    assert len(svg["edges"]) == 3


def test_labels_show_the_key_attrs():
    g = gn.Graph("attrs")
    x = g.input("x", shape=(6,))
    h = g.add("dense", x, units=128, name="fc")
    h = g.add("elu", h, name="e")
    h = g.add("dropout", h, rate=0.2, name="drop")
    h = g.add("dense", h, units=3, use_bias=False, name="head")
    source = gn.render(g).source
    assert "dense 128" in source
    assert "elu alpha=1.0" in source
    assert "dropout 0.2" in source
    assert "dense 3 use_bias=False" in source
    assert "(N, 128)" in source


def test_a_plugin_op_names_its_label_attr_as_the_builtins_do():
    class Scale(gn.Op):
        name = "test_label_scale"
        attrs = {"factor": gn.Attr(2.0, "float"), "note": gn.Attr("", "str")}
        label_attr = "factor"

        def forward(self, ctx, x):
            return x * ctx.attrs["factor"]

        def backward(self, ctx, dy):
            return (dy * ctx.attrs["factor"],)

    name = gn.plugins.register(Scale)
    try:
        g = gn.Graph("labels")
        g.output(g.add("test_label_scale", g.input("x", shape=(2,)), factor=3.0, note="hi"))
        source = gn.render(g).source
    finally:
        gn.plugins.unregister(name)
    assert "test_label_scale 3.0 note=hi" in source
    assert "factor=" not in source


def test_a_label_attr_that_is_not_an_attr_is_refused_when_registered():
    class Bad(gn.Op):
        name = "test_bad_label"
        label_attr = "units"

    with pytest.raises(gn.PluginError, match="label_attr 'units'"):
        gn.plugins.register(Bad)


def test_kinds_get_distinct_looks_and_outputs_a_double_border(tmp_path):
    g = gn.Graph("kinds")
    x = g.input("x", shape=(4,))
    t = g.input("t", shape=(4,))
    a = g.add("dense", x, units=4, name="layer")
    b = g.add("sigmoid", a, name="act")
    c = g.add("add", b, x, name="merge")
    d = g.add("dropout", c, name="drop")
    e = g.add("flatten", d, name="flat")
    g.add("mse", e, t, name="loss")
    g.output(e)
    svg = render_svg(g, tmp_path)
    fills = svg["fills"]
    looks = {fills["x"], fills["layer"], fills["act"], fills["merge"], fills["drop"],
             fills["flat"], fills["loss"]}
    assert len(looks) == 7
    assert fills["x"] == fills["t"]
    assert svg["polygons"]["flat"] == 2          # the output's second border
    assert svg["polygons"]["drop"] == 1


def test_a_graph_that_does_not_compile_still_draws_its_structure(tmp_path):
    g = gn.Graph("broken")
    x = g.input("x", shape=(4,))
    a = g.add("dense", x, units=8, name="a")
    b = g.add("dense", x, units=5, name="b")
    c = g.add("add", a, b, name="sum")
    g.add("frobnicate", c, name="mystery")
    with pytest.raises(gn.ShapeError):
        gn.Model(g)
    path = tmp_path / "broken.svg"
    dot = gn.render(g, path)
    svg = parse_svg(path.read_text())
    assert set(svg["nodes"]) == {"x", "a", "b", "sum", "mystery"}
    assert svg["nodes"]["a"][1:] == ["dense 8", "(N, 8)", "40 params"]
    assert svg["nodes"]["mystery"][1] == "frobnicate"
    assert any("error" in line for line in svg["nodes"]["sum"])
    assert len(svg["edges"]) == 5
    assert "does not compile" in dot.source and "(8,) and (5,)" in dot.source


def test_a_cycle_is_drawn_with_the_loop_marked():
    import networkx as nx
    G = nx.DiGraph()
    G.add_node("x", op="input", shape=(2,))
    G.add_node("a", op="add", inputs=["x", "b"])
    G.add_node("b", op="relu", inputs=["a"])
    g = gn.Graph.from_networkx(G, outputs=["b"])
    source = gn.render(g).source
    assert "does not compile: the graph has a cycle" in source
    assert source.count("tooltip=\"on a cycle") == 2      # a and b, not x


def test_a_graph_renders_without_allocating_its_params():
    g = gn.Graph("huge")
    x = g.input("x", shape=(100_000,))
    g.output(g.add("dense", x, units=100_000, name="fc"))
    assert "10,000,100,000 params" in gn.render(g).source


def test_shapes_and_params_can_be_left_out():
    source = gn.render(mlp(), show_shapes=False, show_params=False).source
    assert "(N," not in source and "params" not in source
    assert "dense 16" in source


def test_rankdir_is_passed_to_dot():
    assert "rankdir=LR" in gn.render(mlp(), rankdir="LR").source


# --- overlays -------------------------------------------------------------------------------


def test_output_gradients_agree_with_the_param_gradients():
    model = deep("tanh", 3)
    grads = model.backward()
    outs = output_gradients(model)
    for i in (1, 2, 3):   # a dense layer's bias gradient sums its output gradient over the batch
        np.testing.assert_allclose(outs[f"fc{i}"].sum(axis=0), grads[f"fc{i}.bias"], rtol=1e-10)
    assert "x" not in outs                          # an input the loss does not differentiate
    again = model.backward()
    for key in grads:
        np.testing.assert_array_equal(grads[key], again[key])


def test_grad_overlay_shows_vanishing_gradients_in_a_deep_sigmoid_net(tmp_path):
    model = deep("sigmoid", 20)
    norms = {n: np.linalg.norm(g) for n, g in output_gradients(model).items()}
    assert norms["fc1"] < 1e-6 * norms["fc20"]      # the premise: it does vanish
    svg = render_svg(model, tmp_path, overlay="grad")
    fills = svg["fills"]
    assert fills["fc1"] != fills["fc20"]
    assert fills["fc1"] in PALETTE[:2] and fills["fc20"] in PALETTE[-2:]
    assert any(line.startswith("|grad|") for line in svg["nodes"]["fc1"])
    assert "legend.graphnet" in svg["nodes"]


def test_grad_overlay_of_a_healthy_net_stays_in_the_bright_half(tmp_path):
    model = deep("tanh", 3)
    fills = render_svg(model, tmp_path, overlay="grad")["fills"]
    assert {fills[f"fc{i}"] for i in (1, 2, 3)} <= set(PALETTE[5:])


def test_activation_overlay_reports_mean_std_and_dead_relus(tmp_path):
    model = deep("relu", 2)
    stats = output_stats(model)
    plan, vals = model._last
    act = vals[plan.slot["act1"]]
    assert stats["act1"]["zeros"] == pytest.approx(np.mean(act == 0))
    assert stats["act1"]["std"] == pytest.approx(act.std())
    svg = render_svg(model, tmp_path, overlay="activation")
    assert f"zeros {np.mean(act == 0):.0%}" in svg["nodes"]["act1"]
    assert svg["fills"]["act1"] in PALETTE


def test_overlays_need_a_forward_pass_with_a_loss():
    g = mlp()
    with pytest.raises(gn.GraphnetError, match="Model"):
        gn.render(g, overlay="grad")
    model = gn.Model(g)
    with pytest.raises(gn.GraphnetError, match="forward"):
        gn.render(model, overlay="grad")
    model.predict({"x": np.zeros((2, 4))})           # no targets: no loss computed
    with pytest.raises(gn.GraphnetError, match="targets"):
        gn.render(model, overlay="grad")
    with pytest.raises(gn.GraphnetError, match="overlay"):
        gn.render(model, overlay="gradient")


# --- big graphs -----------------------------------------------------------------------------


def test_collapse_folds_each_layer_with_its_activation_and_dropout(tmp_path):
    g = gn.Graph("folds")
    x = g.input("x", shape=(4,))
    h = g.add("relu", g.add("dense", x, units=8, name="fc1"), name="act1")
    h = g.add("dropout", h, rate=0.1, name="drop1")               # folds too: fc1+act1+drop1
    h = g.add("tanh", g.add("dense", h, units=8, name="fc2"), name="act2")   # fc2+act2
    skip = g.add("dense", h, units=8, name="fc3")                  # two readers: not folded
    h = g.add("add", g.add("relu", skip, name="act3"), skip, name="res")
    y = g.add("dense", h, units=2, name="out")                     # an output: ends a chain
    g.add("sigmoid", y, name="prob")
    g.output(y)
    plain = render_svg(g, tmp_path, "plain.svg")
    folded = render_svg(g, tmp_path, "folded.svg", collapse=True)
    assert len(plain["nodes"]) == 11
    assert set(folded["nodes"]) == {"x", "fc1", "fc2", "fc3", "act3", "res", "out", "prob"}
    assert folded["nodes"]["fc1"][:2] == ["fc1 + act1 + drop1",
                                          "dense 8 \u2192 relu \u2192 dropout 0.1"]
    assert "(N, 8)" in folded["nodes"]["fc1"] and "40 params" in folded["nodes"]["fc1"]
    assert sorted((a, b) for a, b, _ in folded["edges"]) == sorted(
        [("x", "fc1"), ("fc1", "fc2"), ("fc2", "fc3"), ("fc3", "act3"), ("fc3", "res"),
         ("act3", "res"), ("res", "out"), ("out", "prob")])


def test_collapse_keeps_overlays_on_the_block_output(tmp_path):
    model = deep("sigmoid", 20)
    svg = render_svg(model, tmp_path, collapse=True, overlay="grad")
    assert len(svg["nodes"]) == 2 + 20 + 2 + 1      # inputs, blocks, out, loss, legend
    norm = np.linalg.norm(output_gradients(model)["act1"])
    assert f"|grad| {norm:.2g}" in svg["nodes"]["fc1"]
    assert svg["fills"]["fc1"] != svg["fills"]["fc20"]


def test_slash_prefixes_become_nested_clusters(tmp_path):
    g = gn.Graph("blocks")
    h = g.input("x", shape=(4,))
    for b in (1, 2):
        h = g.add("relu", g.add("dense", h, units=4, name=f"block{b}/fc"), name=f"block{b}/act")
    h = g.add("dense", h, units=4, name="block2/inner/fc")
    g.output(h)
    svg = render_svg(g, tmp_path)
    assert sorted(svg["clusters"]) == ["cluster_block1", "cluster_block2",
                                       "cluster_block2/inner"]
    assert svg["nodes"]["block1/fc"][0] == "fc"      # the cluster's label names the block
    source = gn.render(g).source
    inner = source.index("subgraph \"cluster_block2/inner\"")
    assert source.index("subgraph cluster_block2") < inner < source.index('"block2/inner/fc" [')


# --- writing --------------------------------------------------------------------------------


def test_format_comes_from_the_suffix(tmp_path):
    model = gn.Model(mlp())
    gn.render(model, tmp_path / "m.png")
    gn.render(model, tmp_path / "m.pdf")
    gn.render(model, tmp_path / "sub" / "m.svg")
    assert (tmp_path / "m.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "m.pdf").read_bytes().startswith(b"%PDF")
    assert ET.parse(tmp_path / "sub" / "m.svg").getroot().tag == f"{SVG}svg"
    gn.render(model, tmp_path / "m.out", format="png")
    assert (tmp_path / "m.out").read_bytes().startswith(b"\x89PNG")


def test_unknown_or_missing_suffix_is_an_error(tmp_path):
    with pytest.raises(gn.GraphnetError, match="jpg"):
        gn.render(mlp(), tmp_path / "m.jpg")
    with pytest.raises(gn.GraphnetError, match="suffix"):
        gn.render(mlp(), tmp_path / "m")
    assert not list(tmp_path.iterdir())


def test_dot_output_is_the_source(tmp_path):
    g = mlp()
    dot = gn.render(g, tmp_path / "m.dot")
    text = (tmp_path / "m.dot").read_text()
    assert text == dot.source
    assert text.startswith("digraph mlp {") and "dense 16" in text


def test_missing_dot_says_how_to_install_it(tmp_path, monkeypatch):
    model = gn.Model(mlp())
    no_dot_path(tmp_path, monkeypatch)
    for suffix in ("svg", "png", "pdf"):
        with pytest.raises(gn.GraphnetError) as info:
            gn.render(model, tmp_path / f"m.{suffix}")
        message = str(info.value)
        assert not isinstance(info.value, graphviz.ExecutableNotFound)
        assert "dot program is missing" in message
        for hint in ("apt-get install graphviz", "brew install graphviz",
                     "conda install graphviz"):
            assert hint in message
    gn.render(model, tmp_path / "m.dot")              # needs no dot
    assert (tmp_path / "m.dot").read_text().startswith("digraph")
    with pytest.raises(gn.GraphnetError, match="missing"):
        gn.render(model).pipe(format="svg")
    bundle = model._repr_mimebundle_()               # Jupyter shows the reason, not a traceback
    assert "dot program is missing" in bundle["text/plain"]


def test_missing_dot_in_a_fresh_process_prints_no_graphviz_traceback(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    code = ("import graphnet as gn\n"
            "g = gn.Graph('m'); g.output(g.add('relu', g.input('x', shape=(2,))))\n"
            f"gn.render(g, {str(tmp_path / 'm.svg')!r})\n")
    env = {**os.environ, "PATH": str(empty)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 1
    assert "GraphnetError" in proc.stderr and "apt-get install graphviz" in proc.stderr
    assert "ExecutableNotFound" not in proc.stderr


def test_jupyter_gets_svg_from_graphs_and_models():
    g = mlp()
    for obj in (g, gn.Model(g)):
        bundle = obj._repr_mimebundle_()
        assert "fc1" in parse_svg(bundle["image/svg+xml"])["nodes"]
    assert isinstance(gn.render(g), graphviz.Digraph)


def test_bad_arguments_are_graphnet_errors():
    with pytest.raises(gn.GraphnetError, match="rankdir"):
        gn.render(mlp(), rankdir="sideways")
    with pytest.raises(gn.GraphnetError, match="Graph or Model"):
        gn.render("model.json")
