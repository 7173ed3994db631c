"""The plugin manager: loading order, broken and clashing plugins, strict mode,
autoload switch, run-time registration, and graphnet-contrib as a real plugin.

Third-party distributions are simulated the way pip installs them: a directory
on the path with a ``<name>-<version>.dist-info`` holding METADATA and
entry_points.txt, next to the plugin's module.
"""

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import graphnet as gn
from graphnet import plugins
from graphnet.plugins import BUILTIN_PLUGINS, PluginWarning

ROOT = Path(__file__).resolve().parents[1]
CONTRIB = ROOT / "plugins" / "graphnet-contrib"
CONTRIB_MODEL = "examples/models/contrib/contrib_mlp.json"   # needs graphnet-contrib
CONTRIB_NAMES = {"activation": {"gelu", "silu", "mish", "hard_sigmoid"},
                 "op": {"layer_norm"}, "optimizer": {"lion", "nadam"}}


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    """Every test starts and ends with a registry loaded from scratch."""
    monkeypatch.delenv("GRAPHNET_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("GRAPHNET_STRICT_PLUGINS", raising=False)
    plugins.reset()
    yield
    plugins.reset()


def make_dist(root, dist, entry_points, modules, version="1.0"):
    """Write a fake installed distribution under root; return root."""
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    eps = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[graphnet]\n{eps}")
    for filename, source in modules.items():
        (root / filename).write_text(textwrap.dedent(source))
    return root


def install(monkeypatch, root):
    """Put a fake distribution on sys.path and reload the plugins."""
    monkeypatch.syspath_prepend(str(root))
    plugins.reset()


def activation_module(*names):
    body = ", ".join(f'gn.Activation("{n}", lambda x: 2 * x, lambda x, y: 0 * x + 2)'
                     for n in names)
    return f"""
        import graphnet as gn

        @gn.hookimpl
        def graphnet_activations():
            return [{body}]
        """


def tiny_model(act="tanh"):
    g = gn.Graph("tiny")
    h = g.add(act, g.add("dense", g.input("x", shape=(3,)), units=2, name="fc"), name="act")
    g.output(h)
    return gn.Model(g, seed=0)


def run(args, extra_path=(), **env):
    """Run this interpreter with args, from the repository root, with extra_path
    first on PYTHONPATH and the GRAPHNET_* variables only as given."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("GRAPHNET_DISABLE_PLUGIN_AUTOLOAD", "GRAPHNET_STRICT_PLUGINS")}
    environ["PYTHONPATH"] = os.pathsep.join([str(p) for p in extra_path]
                                            + [environ.get("PYTHONPATH", "")])
    environ.update(env)
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=120)


def run_python(code, extra_path=(), **env):
    return run(["-c", textwrap.dedent(code)], extra_path, **env)


# --- loading order and the autoload switch ---------------------------------------

def test_builtins_are_registered_first_in_their_declared_order():
    names = [name for name, _ in plugins.registry().pm.list_name_plugin()]
    assert tuple(names[:len(BUILTIN_PLUGINS)]) == BUILTIN_PLUGINS
    tanh = [e for e in plugins.entries("activation") if e.name == "tanh"][0]
    assert (tanh.plugin, tanh.distribution) == ("graphnet.builtin.activations", "graphnet")


def test_entry_point_plugin_is_loaded_and_listed_with_its_distribution(tmp_path, monkeypatch):
    install(monkeypatch, make_dist(tmp_path, "doubler-dist", {"doubler": "doubler_mod"},
                                   {"doubler_mod.py": activation_module("doubler")},
                                   version="2.3"))
    entry = [e for e in plugins.entries() if e.name == "doubler"]
    assert [(e.kind, e.plugin, e.distribution, e.version) for e in entry] == [
        ("activation", "doubler", "doubler-dist", "2.3")]
    assert entry[0].to_dict()["distribution"] == "doubler-dist"
    out = tiny_model("doubler").predict({"x": np.ones((2, 3))})["act"]
    assert out.shape == (2, 2)


def test_autoload_switch_loads_the_builtins_only(tmp_path, monkeypatch):
    install(monkeypatch, make_dist(tmp_path, "doubler-dist", {"doubler": "doubler_mod2"},
                                   {"doubler_mod2.py": activation_module("doubler2")}))
    assert plugins.get("activation", "doubler2").name == "doubler2"
    monkeypatch.setenv("GRAPHNET_DISABLE_PLUGIN_AUTOLOAD", "1")
    plugins.reset()
    with pytest.raises(gn.UnknownOpError, match="doubler2"):
        tiny_model("doubler2")
    assert tiny_model("tanh") is not None
    names = [name for name, _ in plugins.registry().pm.list_name_plugin()]
    assert tuple(names) == BUILTIN_PLUGINS
    monkeypatch.setenv("GRAPHNET_DISABLE_PLUGIN_AUTOLOAD", "0")   # "0" means off
    plugins.reset()
    assert plugins.get("activation", "doubler2")


# --- a plugin that fails to import -----------------------------------------------

BROKEN = {"broken_mod.py": "raise ImportError('needs libfoo, which is not installed')\n"}


def test_broken_plugin_warns_once_and_graphnet_keeps_working(tmp_path, monkeypatch):
    install(monkeypatch, make_dist(tmp_path, "broken-dist", {"broken": "broken_mod"}, BROKEN))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugins.registry()
        plugins.registry()
        model = tiny_model("tanh")
        listed = plugins.entries()
    ours = [w for w in caught if issubclass(w.category, PluginWarning)]
    assert len(ours) == 1
    message = str(ours[0].message)
    for part in ("'broken'", "broken_mod", "broken-dist", "ImportError", "needs libfoo"):
        assert part in message
    assert model.predict({"x": np.ones((1, 3))})["act"].shape == (1, 2)
    assert any(e.name == "dense" for e in listed)
    (failure,) = plugins.failures()
    assert (failure.entry_point, failure.distribution) == ("broken", "broken-dist")
    assert "needs libfoo" in failure.message


def test_broken_plugin_in_a_fresh_interpreter(tmp_path):
    make_dist(tmp_path, "broken-dist", {"broken": "broken_mod"}, BROKEN)
    proc = run_python("""
        import numpy as np, graphnet as gn
        g = gn.Graph("ok")
        g.output(g.add("relu", g.input("x", shape=(2,))))
        print(gn.Model(g).predict({"x": np.ones((1, 2))}))
        print("failures:", [f.entry_point for f in gn.plugins.failures()])
        """, [tmp_path])
    assert proc.returncode == 0, proc.stderr
    assert "failures: ['broken']" in proc.stdout
    assert proc.stderr.count("PluginWarning") == 1
    assert "broken-dist" in proc.stderr and "needs libfoo" in proc.stderr


def test_strict_mode_turns_a_broken_plugin_into_an_error(tmp_path, monkeypatch):
    install(monkeypatch, make_dist(tmp_path, "broken-dist", {"broken": "broken_mod"}, BROKEN))
    monkeypatch.setenv("GRAPHNET_STRICT_PLUGINS", "1")
    for _ in range(2):  # and stays one: no half-loaded registry is kept
        with pytest.raises(gn.PluginError, match="broken-dist.*needs libfoo"):
            plugins.registry()
    with pytest.raises(gn.PluginError, match="GRAPHNET_STRICT_PLUGINS"):
        tiny_model("tanh")


def test_strict_mode_in_a_fresh_interpreter_exits_with_the_error(tmp_path):
    make_dist(tmp_path, "broken-dist", {"broken": "broken_mod"}, BROKEN)
    proc = run_python("import graphnet as gn; gn.plugins.entries()", [tmp_path],
                      GRAPHNET_STRICT_PLUGINS="1")
    assert proc.returncode != 0
    assert "PluginError" in proc.stderr and "broken-dist" in proc.stderr


def test_graphnet_plugins_command_reports_a_broken_plugin(tmp_path):
    make_dist(tmp_path, "broken-dist", {"broken": "broken_mod"}, BROKEN)
    listed = run(["-m", "graphnet", "plugins"], [tmp_path])
    assert listed.returncode == 0, listed.stderr
    assert "dense" in listed.stdout and "broken-dist" in listed.stdout
    assert "needs libfoo" in listed.stdout + listed.stderr
    data = json.loads(run(["-m", "graphnet", "plugins", "--json"], [tmp_path]).stdout)
    assert [f["distribution"] for f in data["failures"]] == ["broken-dist"]
    strict = run(["-m", "graphnet", "plugins"], [tmp_path], GRAPHNET_STRICT_PLUGINS="1")
    assert strict.returncode == 2
    assert "broken-dist" in strict.stderr and "Traceback" not in strict.stderr


# --- clashes -------------------------------------------------------------------------

def test_two_distributions_claiming_one_name_name_both(tmp_path, monkeypatch):
    make_dist(tmp_path, "twin-a", {"twin_a": "twin_a_mod"},
              {"twin_a_mod.py": activation_module("twin")})
    make_dist(tmp_path, "twin-b", {"twin_b": "twin_b_mod"},
              {"twin_b_mod.py": activation_module("twin")})
    install(monkeypatch, tmp_path)
    with pytest.warns(plugins.PluginWarning, match="'twin'.*twin-a.*twin-b"):
        assert tiny_model("tanh") is not None          # everything else works
    with pytest.raises(gn.PluginError) as info:
        tiny_model("twin")
    message = str(info.value)
    for part in ("'twin'", "twin_a", "twin-a", "twin_b", "twin-b"):
        assert part in message


def test_a_plugin_never_silently_replaces_a_builtin(tmp_path, monkeypatch):
    install(monkeypatch, make_dist(tmp_path, "evil-dist", {"evil": "evil_mod"},
                                   {"evil_mod.py": activation_module("tanh")}))
    with pytest.warns(plugins.PluginWarning, match=r"'tanh'.*graphnet\.builtin\.activations.*"
                                                   r"evil-dist"):
        model = tiny_model("tanh")
    assert plugins.get("activation", "tanh").fn(np.array([1.0]))[0] == np.tanh(1.0)
    assert model.forward({"x": np.ones((1, 3))})["act"].dtype == np.float32
    monkeypatch.setenv("GRAPHNET_STRICT_PLUGINS", "1")
    plugins.reset()
    with pytest.raises(gn.PluginError, match=r"'tanh'.*evil-dist.*GRAPHNET_STRICT_PLUGINS"):
        tiny_model("tanh")


def test_runtime_clash_names_both_and_registers_nothing():
    with pytest.raises(gn.PluginError, match=r"'relu'.*graphnet\.builtin\.activations.*mine"):
        plugins.register(gn.Activation("relu", np.abs, lambda x, y: np.sign(x)), name="mine")
    assert "mine" not in dict(plugins.registry().pm.list_name_plugin())
    assert plugins.get("op", "relu").activation.fn(np.array([-1.0]))[0] == 0.0


def test_an_op_and_an_activation_share_one_namespace():
    class Sigmoid(gn.Op):
        name = "sigmoid"

        def forward(self, ctx, x):
            return x

    with pytest.raises(gn.PluginError) as info:
        plugins.register(Sigmoid, name="shadow")
    message = str(info.value)
    assert "'sigmoid'" in message and "'shadow'" in message
    assert "graphnet.builtin.activations" in message and "activation" in message


def test_two_entry_points_with_one_plugin_name(tmp_path, monkeypatch):
    make_dist(tmp_path, "same-a", {"same": "same_a_mod"},
              {"same_a_mod.py": activation_module("same_a")})
    make_dist(tmp_path, "same-b", {"same": "same_b_mod"},
              {"same_b_mod.py": activation_module("same_b")})
    install(monkeypatch, tmp_path)
    with pytest.warns(plugins.PluginWarning, match="same-b.*'same'.*same-a"):
        plugins.registry()
    assert tiny_model("same_a") is not None
    with pytest.raises(gn.UnknownNameError, match="same_b"):
        tiny_model("same_b")


# --- hooks that misbehave -----------------------------------------------------------

class ReturnsAnOp:
    @gn.hookimpl
    def graphnet_activations(self):
        class NotAnActivation(gn.Op):
            name = "imposter"
        return [NotAnActivation()]


class ReturnsADict:
    @gn.hookimpl
    def graphnet_ops(self):
        return {"x": 1}


class ReturnsAnInstance:
    @gn.hookimpl
    def graphnet_optimizers(self):
        class Still(gn.Optimizer):
            name = "still"
        return [Still(lr=0.1)]


class LooksUpInsideAHook:
    @gn.hookimpl
    def graphnet_optimizers(self):
        return [type(gn.optimizer("sgd", lr=0.1))]


class Raises:
    @gn.hookimpl
    def graphnet_datasets(self):
        raise RuntimeError("disk on fire")


class Typo:
    @gn.hookimpl
    def graphnet_activation(self):
        return []


@pytest.mark.parametrize("plugin, hook, detail", [
    (ReturnsAnOp(), "graphnet_activations", "graphnet.Activation"),
    (ReturnsADict(), "graphnet_ops", "must return a list"),
    (ReturnsAnInstance(), "graphnet_optimizers", "not an instance"),
    (Raises(), "graphnet_datasets", "disk on fire"),
    (LooksUpInsideAHook(), "graphnet_optimizers", "inside a hook"),
    (Typo(), "graphnet_activation", "did you mean 'graphnet_activations'"),
])
def test_misbehaving_hook_names_plugin_and_hook(plugin, hook, detail):
    with pytest.raises(gn.PluginError) as info:
        plugins.register(plugin, name="culprit")
    message = str(info.value)
    assert "'culprit'" in message and hook in message and detail in message
    assert "culprit" not in dict(plugins.registry().pm.list_name_plugin())
    assert tiny_model("tanh") is not None   # the registry is as it was


def test_wrong_kind_from_an_installed_plugin_names_plugin_and_hook(tmp_path, monkeypatch):
    source = """
        import graphnet as gn

        @gn.hookimpl
        def graphnet_ops():
            return [gn.Activation("cube", lambda x: x**3, lambda x, y: 3 * x**2)]
        """
    install(monkeypatch, make_dist(tmp_path, "wrong-dist", {"wrong": "wrong_mod"},
                                   {"wrong_mod.py": source}))
    with pytest.warns(plugins.PluginWarning, match=r"'wrong'.*wrong-dist.*graphnet_ops.*"
                                                   r"graphnet_activations"):
        assert tiny_model("tanh") is not None
    assert "cube" not in {e.name for e in plugins.entries()}
    assert [f.distribution for f in plugins.failures()] == ["wrong-dist"]


def test_a_plugin_without_hooks_is_refused():
    class Forgot:
        def graphnet_activations(self):   # no @gn.hookimpl
            return []

    with pytest.raises(gn.PluginError, match="no graphnet hook.*hookimpl"):
        plugins.register(Forgot())


# --- run-time registration -----------------------------------------------------------

def test_register_a_module_like_object_then_unregister():
    class Cube:
        @gn.hookimpl
        def graphnet_activations(self):
            return [gn.Activation("cube", lambda x: x**3, lambda x, y: 3 * x**2)]

    name = plugins.register(Cube())
    assert name == "Cube"
    entry = [e for e in plugins.entries() if e.name == "cube"]
    assert [(e.kind, e.plugin, e.distribution) for e in entry] == [("activation", "Cube", None)]
    np.testing.assert_allclose(tiny_model("cube").predict({"x": np.zeros((1, 3))})["act"], 0)
    plugins.unregister(name)
    with pytest.raises(gn.UnknownOpError, match="cube"):
        tiny_model("cube")
    with pytest.raises(gn.PluginError, match="no plugin named 'Cube'"):
        plugins.unregister(name)


def test_register_objects_directly():
    class Half(gn.Optimizer):
        name = "half"

        def update(self, param, grad, state, step):
            param *= 0.5

    class Twice(gn.Op):
        name = "twice"

        def forward(self, ctx, x):
            return 2 * x

        def backward(self, ctx, dy):
            return (2 * dy,)

    name = plugins.register([Half, Twice, gn.Activation("neg", np.negative,
                                                        lambda x, y: -np.ones_like(x))])
    assert name == "runtime:half,twice,neg"
    params = {"w": np.ones(2)}
    gn.optimizer("half").step(params, {"w": np.zeros(2)})
    np.testing.assert_array_equal(params["w"], [0.5, 0.5])
    assert plugins.get("op", "twice").name == "twice"
    assert [e.kind for e in plugins.entries() if e.name in ("half", "twice", "neg")] == [
        "op", "activation", "optimizer"]


def test_builtins_cannot_be_unregistered():
    with pytest.raises(gn.PluginError, match="builtin"):
        plugins.unregister("graphnet.builtin.ops")


def test_list_shows_each_name_once_and_refuses_unknown_kinds():
    names = [(e.kind, e.name) for e in plugins.entries()]
    assert len(names) == len(set(names))
    assert ("activation", "tanh") in names and ("op", "tanh") not in names
    assert any(e.name == "tanh" for e in plugins.entries("op"))   # by kind, ops include them
    with pytest.raises(gn.PluginError, match="did you mean 'op'"):
        plugins.entries("ops")


def test_unknown_name_error_suggests_and_lists():
    with pytest.raises(gn.UnknownOpError, match=r"node 'act'.*'tahn'.*did you mean 'tanh'"):
        tiny_model("tahn")


# --- graphnet-contrib as an installed distribution ---------------------------------

def contrib_install(tmp_path):
    """What `pip install -e plugins/graphnet-contrib` puts on the path: its metadata
    (read from its pyproject.toml) and its source directory."""
    import tomllib
    project = tomllib.loads((CONTRIB / "pyproject.toml").read_text())["project"]
    make_dist(tmp_path, project["name"], project["entry-points"]["graphnet"], {},
              version=project["version"])
    return [tmp_path, CONTRIB]


def test_contrib_installed_names_work_from_python_and_are_listed(tmp_path, monkeypatch):
    for path in contrib_install(tmp_path):
        monkeypatch.syspath_prepend(str(path))
    plugins.reset()
    listed = {(e.kind, e.name): e for e in plugins.entries()}
    for kind, names in CONTRIB_NAMES.items():
        for name in names:
            entry = listed[(kind, name)]
            assert (entry.plugin, entry.distribution, entry.version) == (
                "graphnet_contrib", "graphnet-contrib", "0.1.0")
    assert plugins.failures() == []
    g = gn.Graph("contrib")
    h = g.add("dense", g.input("x", shape=(4,)), units=6, name="fc")
    h = g.add("gelu", g.add("layer_norm", h, name="norm", eps=1e-3), name="act")
    y = g.add("dense", h, units=1, name="out")
    g.add("mse", y, g.input("y", shape=(1,)), name="loss")
    g.output(y)
    model = gn.Model(g, seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(16, 4)), "y": rng.normal(size=(16, 1))}
    assert gn.gradcheck(model, data).ok
    assert model.params["norm.gamma"].shape == (6,)
    opt = gn.optimizer("nadam", lr=0.01)
    first = float(model.forward(data, training=True)["loss"])
    for _ in range(30):
        model.forward(data, training=True)
        opt.step(model.params, model.backward())
    assert float(model.forward(data)["loss"]) < first


def test_contrib_model_file_needs_contrib(tmp_path):
    """examples/models/contrib/contrib_mlp.json loads with contrib installed, and without it
    fails with an error that names the missing op."""
    code = """
        import graphnet as gn
        try:
            g = gn.Graph.from_json("examples/models/contrib/contrib_mlp.json")  # cwd: ROOT
            m = gn.Model(g)
            print("ok", sorted(n for n in m.nodes if m.nodes[n].op.name in
                              ("gelu", "layer_norm")))
        except gn.GraphnetError as exc:
            print("error", type(exc).__name__, exc)
        """
    with_contrib = run_python(code, contrib_install(tmp_path))
    assert with_contrib.returncode == 0, with_contrib.stderr
    assert with_contrib.stdout.startswith("ok"), with_contrib.stdout
    doc = json.loads((ROOT / CONTRIB_MODEL).read_text())
    used = {n["op"] for n in doc["nodes"]}
    assert {"gelu", "layer_norm"} <= used
    without = run_python(code, contrib_install(tmp_path / "again"),
                         GRAPHNET_DISABLE_PLUGIN_AUTOLOAD="1")
    assert without.returncode == 0, without.stderr
    assert without.stdout.startswith("error UnknownNameError"), without.stdout
    assert "layer_norm" in without.stdout or "gelu" in without.stdout


def test_contrib_from_the_command_line(tmp_path):
    """`graphnet plugins` lists contrib with its distribution, `graphnet train` trains
    the contrib model file; without contrib the CLI names the missing op, exit 2."""
    path = contrib_install(tmp_path / "site")
    listed = run(["-m", "graphnet", "plugins", "--json"], path)
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)["plugins"]}
    for names in CONTRIB_NAMES.values():
        for name in names:
            assert rows[name]["distribution"] == "graphnet-contrib", rows.get(name)
    out = tmp_path / "run"
    trained = run(["-m", "graphnet", "train", CONTRIB_MODEL, "--epochs", "1", "--out", out,
                   "--quiet"], path)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.5
    missing = run(["-m", "graphnet", "summary", CONTRIB_MODEL], path,
                  GRAPHNET_DISABLE_PLUGIN_AUTOLOAD="1")
    assert missing.returncode == 2
    assert "layer_norm" in missing.stderr or "gelu" in missing.stderr
    assert "Traceback" not in missing.stderr


# --- the plugin author's guide ------------------------------------------------------

def test_plugin_guide_examples_run(tmp_path, monkeypatch):
    """Every Python block of docs/plugins.md runs: `# file: NAME.py` blocks become
    importable modules, the other blocks run as scripts in order."""
    import re

    text = (ROOT / "docs" / "plugins.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 8
    monkeypatch.syspath_prepend(str(tmp_path))
    modules = []
    for block in blocks:
        first = block.splitlines()[0]
        if first.startswith("# file: "):
            filename = first[len("# file: "):].strip()
            (tmp_path / filename).write_text(block)
            modules.append(filename[:-3])
        else:
            exec(compile(block, "docs/plugins.md", "exec"), {"__name__": "guide"})
    activation = [b for b in blocks if b.startswith("# file: softsign_plugin.py")][0]
    assert len(activation.strip().splitlines()) - 1 < 15   # the promise of section 1
    assert {"softsign_plugin", "rms_norm_plugin", "signsgd_plugin"} <= set(modules)
    for name in modules:
        sys.modules.pop(name, None)


def test_installed_module_without_marked_hooks_is_reported_not_fatal(tmp_path, monkeypatch):
    source = """
        def graphnet_activations():     # @graphnet.hookimpl forgotten
            return []
        """
    install(monkeypatch, make_dist(tmp_path, "unmarked-dist", {"unmarked": "unmarked_mod"},
                                   {"unmarked_mod.py": source}))
    with pytest.warns(PluginWarning, match="unmarked-dist.*no graphnet hook.*hookimpl"):
        plugins.registry()
    assert [f.entry_point for f in plugins.failures()] == ["unmarked"]
    assert "unmarked" not in dict(plugins.registry().pm.list_name_plugin())
    assert tiny_model("tanh") is not None
