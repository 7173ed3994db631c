"""The graphnet command, run as users run it: ``python -m graphnet ...`` in a subprocess."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "models" / "digits_mlp.json"
COMMANDS = ["train", "sweep", "evaluate", "predict", "summary", "render", "plugins",
            "gradcheck", "schema"]


NO_MATPLOTLIB = Path(__file__).resolve().parent / "no_matplotlib"


def graphnet(*args, env=None, cwd=ROOT, plots=False):
    """Run the command; return the CompletedProcess (text stdout and stderr).

    Unless ``plots``, matplotlib is hidden (its import fails), as on an
    install without it: drawing curves.png takes longer than a short run.
    """
    env = dict(env or {})
    path = [str(ROOT)] + [p for p in (env.pop("PYTHONPATH", None),
                                      os.environ.get("PYTHONPATH")) if p]
    if not plots:
        path.insert(0, str(NO_MATPLOTLIB))
    full_env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": os.pathsep.join(path), **env}
    return subprocess.run([sys.executable, "-m", "graphnet", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=full_env, timeout=120)


def in_process(capsys, *args):
    """Run ``graphnet.cli.main`` in this process: the same parser, commands and error
    handling as the command, without starting Python again (for the long tables of
    bad input; every kind of them also runs as a real command below)."""
    from graphnet.cli import main
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def assert_bad_input(result, *words):
    """Exit code 2, one line on stderr that names the problem, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("graphnet")
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def write_model(path, **training):
    """A small classifier of 2-D points (moons, xor, spirals) as a JSON model file."""
    model = {
        "format": "graphnet-model/1", "name": "points",
        "inputs": [{"name": "x", "shape": [2]}, {"name": "label", "shape": [], "dtype": "int64"}],
        "nodes": [
            {"name": "fc1", "op": "dense", "inputs": ["x"], "attrs": {"units": 16}},
            {"name": "act", "op": "tanh", "inputs": ["fc1"]},
            {"name": "logits", "op": "dense", "inputs": ["act"], "attrs": {"units": 2}},
            {"name": "loss", "op": "softmax_cross_entropy", "inputs": ["logits", "label"]}],
        "outputs": ["logits"],
    }
    if training:
        model["training"] = training
    path.write_text(json.dumps(model))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """The main job, shortened to 3 epochs; other tests read its checkpoint."""
    out = tmp_path_factory.mktemp("run") / "digits"
    result = graphnet("train", DIGITS, "--epochs", 3, "--out", out, plots=True)
    assert result.returncode == 0, result.stderr
    return out, result


# --- help and version --------------------------------------------------------------

def test_version():
    from graphnet import __version__
    result = graphnet("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"graphnet {__version__}"


def test_help_lists_every_command():
    result = graphnet("--help")
    assert result.returncode == 0
    for c in COMMANDS:
        assert c in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help_with_an_example(command):
    result = graphnet(command, "--help")
    assert result.returncode == 0
    assert f"usage: graphnet {command}" in result.stdout
    assert f"example:\n  graphnet {command}" in result.stdout


def test_no_command_prints_help_and_exits_2():
    result = graphnet()
    assert result.returncode == 2 and "COMMAND" in result.stdout


# --- train ---------------------------------------------------------------------------

def test_train_writes_every_output(run_dir):
    out, result = run_dir
    assert {"model.npz", "metrics.json", "history.json", "graph.svg",
            "curves.png"} <= set(os.listdir(out))
    epochs = json.loads((out / "history.json").read_text())["epochs"]
    assert [row["epoch"] for row in epochs] == [1, 2, 3]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 3  # the flag overrode the file's training block
    assert metrics["seconds"] > 0
    for split in ("train", "test"):
        assert metrics[split]["loss"] > 0
        assert 0 <= metrics[split]["accuracy"] <= 1
    assert metrics["test"]["accuracy"] > 0.8  # three epochs already learn the digits
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("test loss") and "accuracy" in last
    assert f"{metrics['test']['accuracy']:.2%}" in last
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in (out / "graph.svg").read_text()


def test_train_without_matplotlib_skips_only_the_curves(tmp_path):
    result = graphnet("train", write_model(tmp_path / "m.json"), "--dataset", "xor",
                      "--epochs", 1, "--out", tmp_path / "o")
    assert result.returncode == 0, result.stderr
    assert "curves.png not written: matplotlib is not installed" in result.stderr
    assert set(os.listdir(tmp_path / "o")) == {"model.npz", "metrics.json", "history.json",
                                               "graph.svg"}


def test_train_without_graphviz_still_finishes(tmp_path):
    no_dot = {"PATH": str(Path(sys.executable).parent)}  # python, but no dot program
    result = graphnet("train", write_model(tmp_path / "m.json"), "--dataset", "xor",
                      "--epochs", 1, "--out", tmp_path / "o", env=no_dot)
    assert result.returncode == 0, result.stderr
    assert "graph.svg not written" in result.stderr and "graphviz" in result.stderr
    assert (tmp_path / "o" / "metrics.json").exists()
    assert not (tmp_path / "o" / "graph.svg").exists()
    render = graphnet("render", DIGITS, "-o", tmp_path / "g.svg", env=no_dot)
    assert_bad_input(render, "dot")


def test_flags_override_the_training_block(tmp_path):
    model = write_model(tmp_path / "m.json", dataset="xor", epochs=1, batch_size=16, seed=4,
                        optimizer={"name": "momentum", "lr": 0.2, "beta": 0.5})

    def first_line(*flags):
        result = graphnet("train", model, "--out", tmp_path / "o", "--quiet", *flags)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()[0]

    assert "Momentum(lr=0.2, beta=0.5" in first_line()
    assert "batch size 16, seed 4" in first_line()
    assert "Momentum(lr=0.01, beta=0.5" in first_line("--lr", "0.01")
    line = first_line("--optimizer", "sgd", "--batch-size", 7, "--seed", 3, "--epochs", 2)
    assert "SGD(lr=0.01," in line and "2 epochs, batch size 7, seed 3" in line


def test_train_defaults_to_runs_of_the_model_name(tmp_path):
    model = write_model(tmp_path / "points.json", dataset="xor", epochs=1)
    result = graphnet("train", model, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "runs" / "points" / "metrics.json").exists()


@pytest.mark.parametrize("dataset", ["moons", "spirals", "xor"])
def test_train_on_generated_datasets_with_options(tmp_path, dataset):
    model = write_model(tmp_path / "m.json")
    result = graphnet("train", model, "--dataset", dataset, "--dataset-option", "n=100",
                      "--dataset-option", "seed=2", "--epochs", 2, "--out", tmp_path / "o")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and 0 <= metrics["test"]["accuracy"] <= 1


def test_train_sine_regression_has_no_accuracy(tmp_path):
    model = {
        "format": "graphnet-model/1", "name": "sine",
        "inputs": [{"name": "x", "shape": [1]}, {"name": "t", "shape": [1]}],
        "nodes": [{"name": "h", "op": "dense", "inputs": ["x"], "attrs": {"units": 8}},
                  {"name": "a", "op": "tanh", "inputs": ["h"]},
                  {"name": "y", "op": "dense", "inputs": ["a"], "attrs": {"units": 1}},
                  {"name": "loss", "op": "mse", "inputs": ["y", "t"]}],
        "outputs": ["y"], "training": {"dataset": "sine", "epochs": 2}}
    path = tmp_path / "sine.json"
    path.write_text(json.dumps(model))
    result = graphnet("train", path, "--out", tmp_path / "o", "--dataset-option", "n=200")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] is None and metrics["test"]["loss"] > 0


def test_train_on_npz_and_csv_files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    np.savez(tmp_path / "d.npz", x=x, label=y)      # named after the model's inputs
    rows = "\n".join(f"{a},{b},{c}" for (a, b), c in zip(x, y))
    (tmp_path / "d.csv").write_text("u,v,label\n" + rows + "\n")
    model = write_model(tmp_path / "m.json")
    for data in ("d.npz", "d.csv"):
        result = graphnet("train", model, "--data", tmp_path / data, "--epochs", 2,
                          "--out", tmp_path / data.replace(".", "_"))
        assert result.returncode == 0, result.stderr
        metrics = json.loads((tmp_path / data.replace(".", "_") / "metrics.json").read_text())
        assert 0 <= metrics["test"]["accuracy"] <= 1


def test_data_file_named_in_the_model_file_with_a_validation_split(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 2))
    rows = "\n".join(f"{a:.5f},{b:.5f},{int(a * b > 0)}" for a, b in x)
    (tmp_path / "points.csv").write_text("a,b,class\n" + rows + "\n")
    model = write_model(tmp_path / "m.json", data="points.csv", validation_split=0.25,
                        epochs=2)
    result = graphnet("train", model, "--out", tmp_path / "o")  # the path is the file's
    assert result.returncode == 0, result.stderr
    assert "epoch 2/2:" in result.stdout and "val_loss" in result.stdout


def test_separate_test_file(tmp_path):
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "train.npz", x=rng.normal(size=(40, 2)), y=rng.integers(0, 2, 40))
    np.savez(tmp_path / "test.npz", x=rng.normal(size=(10, 2)), y=rng.integers(0, 2, 10))
    np.savez(tmp_path / "wide.npz", x=rng.normal(size=(10, 3)), y=rng.integers(0, 2, 10))
    model = write_model(tmp_path / "m.json")
    ok = graphnet("train", model, "--data", tmp_path / "train.npz", "--test-data",
                  tmp_path / "test.npz", "--epochs", 1, "--out", tmp_path / "o")
    assert ok.returncode == 0, ok.stderr
    assert "test_loss" in ok.stdout
    assert_bad_input(graphnet("train", model, "--data", tmp_path / "train.npz", "--test-data",
                              tmp_path / "wide.npz", "--out", tmp_path / "o"),
                     "wide.npz", "(10, 3)")


def test_a_killed_run_resumes_to_the_params_of_an_uninterrupted_run(tmp_path):
    import graphnet as gn
    model = write_model(tmp_path / "m.json", dataset="moons", seed=1)
    args = ["train", model, "--dataset-option", "n=100", "--epochs", 30, "--batch-size", 5]
    full = graphnet(*args, "--out", tmp_path / "full")
    assert full.returncode == 0, full.stderr

    ckpt = tmp_path / "part" / "model.npz"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(NO_MATPLOTLIB), str(ROOT)])}
    proc = subprocess.Popen([sys.executable, "-m", "graphnet", *map(str, args), "--out",
                             tmp_path / "part"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not ckpt.exists() and proc.poll() is None:
            time.sleep(0.002)
    finally:
        proc.kill()
        proc.wait()
    killed_at = gn.load_checkpoint(str(ckpt)).train_state["epoch"]
    assert 1 <= killed_at < 30

    rest = graphnet(*args, "--out", tmp_path / "part", "--resume", ckpt)
    assert rest.returncode == 0, rest.stderr
    a = gn.load(str(tmp_path / "full" / "model.npz"))
    b = gn.load(str(ckpt))
    assert a.params.keys() == b.params.keys()
    for key in a.params:
        assert np.array_equal(a.params[key], b.params[key]), key
    metrics = json.loads((tmp_path / "part" / "metrics.json").read_text())
    assert metrics["epochs"] == 30


# --- evaluate and predict ------------------------------------------------------------

def test_evaluate_a_checkpoint_on_the_test_split(run_dir):
    out, _ = run_dir
    result = graphnet("evaluate", out / "model.npz", "--dataset", "digits", "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    metrics = json.loads((out / "metrics.json").read_text())
    assert scores["samples"] == 359
    assert scores["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert scores["loss"] == pytest.approx(metrics["test"]["loss"], rel=1e-4)
    text = graphnet("evaluate", out / "model.npz", "--dataset", "digits")
    assert text.returncode == 0 and "accuracy" in text.stdout


def test_predict_writes_npy_csv_and_npz_that_agree_with_evaluate(run_dir, tmp_path):
    out, _ = run_dir
    from graphnet.datasets import load_digits
    test = load_digits()["test"]
    np.savez(tmp_path / "test.npz", x=test["x"], y=test["y"])
    result = graphnet("predict", out / "model.npz", "--data", tmp_path / "test.npz",
                      "-o", tmp_path / "p.npy")
    assert result.returncode == 0, result.stderr
    logits = np.load(tmp_path / "p.npy")
    assert logits.shape == (359, 10)
    accuracy = np.mean(logits.argmax(1) == test["y"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert accuracy == pytest.approx(metrics["test"]["accuracy"])

    result = graphnet("predict", out / "model.npz", "--data", tmp_path / "test.npz",
                      "-o", tmp_path / "p.csv", "--classes")
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0].split(",") == [f"logits_{i}" for i in range(10)] + ["class"]
    table = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1)
    assert table.shape == (359, 11)
    assert np.allclose(table[:, :10], logits, rtol=1e-5, atol=1e-6)
    assert np.array_equal(table[:, 10], logits.argmax(1))

    result = graphnet("predict", out / "model.npz", "--data", tmp_path / "test.npz",
                      "-o", tmp_path / "p.npz")
    assert result.returncode == 0
    assert np.allclose(np.load(tmp_path / "p.npz")["logits"], logits)


def test_predict_classes_of_a_binary_classifier(tmp_path):
    model = json.loads(write_model(tmp_path / "m.json").read_text())
    model["inputs"][1] = {"name": "label", "shape": [1]}
    model["nodes"][2]["attrs"]["units"] = 1
    model["nodes"][3]["op"] = "binary_cross_entropy"
    (tmp_path / "m.json").write_text(json.dumps(model))
    trained = graphnet("train", tmp_path / "m.json", "--dataset", "xor", "--epochs", 1,
                       "--out", tmp_path / "o")
    assert trained.returncode == 0, trained.stderr
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).normal(size=(20, 2)))
    result = graphnet("predict", tmp_path / "o" / "model.npz", "--data", tmp_path / "d.npz",
                      "-o", tmp_path / "p.csv", "--classes")
    assert result.returncode == 0, result.stderr
    table = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1)
    assert table.shape == (20, 2)
    assert np.array_equal(table[:, 1], table[:, 0] > 0)


def test_predict_from_csv_ignores_the_label_column(run_dir, tmp_path):
    out, _ = run_dir
    from graphnet.datasets import load_digits
    test = load_digits()["test"]
    header = ",".join(f"p{i}" for i in range(64)) + ",label"
    rows = [",".join(map(str, x)) + f",{y}" for x, y in zip(test["x"][:5], test["y"][:5])]
    (tmp_path / "few.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    result = graphnet("predict", out / "model.npz", "--data", tmp_path / "few.csv",
                      "-o", tmp_path / "p.npy")
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "p.npy").shape == (5, 10)


# --- summary, render, plugins, gradcheck, schema ---------------------------------------

@pytest.mark.parametrize("which", ["json", "checkpoint"])
def test_summary_of_a_model_file_and_of_a_checkpoint(run_dir, which):
    path = DIGITS if which == "json" else run_dir[0] / "model.npz"
    result = graphnet("summary", path)
    assert result.returncode == 0, result.stderr
    for word in ("digits_mlp", "fc1", "dense", "(N, 128)", "Total params: 9,610"):
        assert word in result.stdout


@pytest.mark.parametrize("suffix", [".svg", ".dot"])
def test_render_a_model_file_and_a_checkpoint(run_dir, tmp_path, suffix):
    for path in (DIGITS, run_dir[0] / "model.npz"):
        target = tmp_path / f"g{suffix}"
        result = graphnet("render", path, "-o", target)
        assert result.returncode == 0, result.stderr
        text = target.read_text()
        assert "fc1" in text and "logits" in text


def test_plugins_lists_every_kind_with_its_distribution():
    result = graphnet("plugins")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["kind", "name", "plugin", "distribution"]
    data = json.loads(graphnet("plugins", "--json").stdout)
    kinds = {r["kind"] for r in data["plugins"]}
    assert {"op", "activation", "loss", "optimizer", "schedule", "initializer",
            "dataset"} <= kinds
    row = next(r for r in data["plugins"] if r["name"] == "moons")
    from graphnet import __version__
    assert row == {"kind": "dataset", "name": "moons", "plugin": "graphnet.builtin.datasets",
                   "distribution": "graphnet", "version": __version__}
    assert any(line.split()[:2] == ["loss", "softmax_cross_entropy"] for line in lines)
    assert data["failures"] == []
    only = json.loads(graphnet("plugins", "--json", "--kind", "optimizer").stdout)
    assert only["plugins"] and {r["kind"] for r in only["plugins"]} == {"optimizer"}


def fake_distribution(folder, name, target, module_text=None):
    """An installed-looking distribution that plugs `target` into graphnet's entry points."""
    dist = folder / f"{name}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[graphnet]\n{name} = {target}\n")
    if module_text:
        (folder / f"{target}.py").write_text(module_text)
    return {"PYTHONPATH": str(folder)}


def test_plugins_reports_a_plugin_that_failed_to_load(tmp_path):
    env = fake_distribution(tmp_path, "brokenplug", "no_such_module_for_graphnet")
    result = graphnet("plugins", env=env)
    assert result.returncode == 0
    assert "FAILED to load" in result.stdout and "brokenplug" in result.stdout
    data = json.loads(graphnet("plugins", "--json", env=env).stdout)
    assert data["failures"][0]["plugin"] == "brokenplug"
    assert data["failures"][0]["distribution"] == "brokenplug"


def test_gradcheck_passes_on_a_model_file_and_a_checkpoint(run_dir):
    for path in (DIGITS, run_dir[0] / "model.npz"):
        result = graphnet("gradcheck", path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "OK: max error" in result.stdout and "fc1.weight" in result.stdout


def test_gradcheck_fails_with_exit_1_on_a_wrong_derivative(tmp_path):
    wrong = ("import graphnet as gn\n"
             "@gn.hookimpl\n"
             "def graphnet_activations():\n"
             "    return [gn.Activation('wrongsq', fn=lambda x: x * x,\n"
             "                          derivative=lambda x, y: x)]\n")
    env = fake_distribution(tmp_path, "wrongplug", "wrongplug_mod", wrong)
    model = json.loads(write_model(tmp_path / "m.json").read_text())
    model["nodes"][1]["op"] = "wrongsq"
    (tmp_path / "m.json").write_text(json.dumps(model))
    result = graphnet("gradcheck", tmp_path / "m.json", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED" in result.stdout and "above tolerance" in result.stdout


def test_gradcheck_of_binary_and_regression_losses(tmp_path):
    model = json.loads(write_model(tmp_path / "m.json").read_text())
    model["inputs"][1] = {"name": "label", "shape": [1]}
    model["nodes"][2]["attrs"]["units"] = 1
    model["nodes"][3]["op"] = "binary_cross_entropy"
    (tmp_path / "m.json").write_text(json.dumps(model))
    result = graphnet("gradcheck", tmp_path / "m.json", "--batch", 3)
    assert result.returncode == 0, result.stdout + result.stderr
    model["inputs"][1] = {"name": "target", "shape": [1]}
    model["nodes"][3] = {"name": "loss", "op": "mse", "inputs": ["logits", "target"]}
    (tmp_path / "m.json").write_text(json.dumps(model))
    result = graphnet("gradcheck", tmp_path / "m.json", "--seed", 5)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fc1.weight" in result.stdout and "\nx " in result.stdout  # inputs checked too


def test_schema_prints_and_writes_the_json_schema(tmp_path):
    result = graphnet("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert "2020-12" in schema["$schema"]
    result = graphnet("schema", "-o", tmp_path / "s.json")
    assert result.returncode == 0
    assert json.loads((tmp_path / "s.json").read_text()) == schema


# --- bad input: one line, exit code 2 ------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["train", DIGITS, "--lr", "-1"], ["--lr", "-1"]),
    (["train", DIGITS, "--lr", "nan"], ["--lr", "nan"]),
    (["train", DIGITS, "--epochs", "0"], ["--epochs", "'0'"]),
    (["train", DIGITS, "--batch-size", "many"], ["--batch-size", "many"]),
    (["train", DIGITS, "--seed", "-3"], ["--seed"]),
    (["train", DIGITS, "--frobnicate"], ["--frobnicate"]),
    (["train", DIGITS, "--dataset", "digits", "--data", "x.npz"], ["not allowed"]),
    (["train"], ["MODEL.json"]),
    (["trian"], ["invalid choice", "train"]),
    (["predict", "x.npz", "--data", "d.npz"], ["-o"]),
    (["render", DIGITS], ["-o"]),
    (["plugins", "--kind", "widget"], ["--kind", "widget"]),
])
def test_bad_flags(capsys, args, words):
    assert_bad_input(in_process(capsys, *args), *words)


def test_bad_flags_as_commands():
    assert_bad_input(graphnet("train", DIGITS, "--epochs", "0"), "--epochs", "'0'")
    assert_bad_input(graphnet("train", DIGITS, "--lr", "-1"), "--lr", "-1")
    assert_bad_input(graphnet("trian"), "invalid choice")


def test_unknown_dataset():
    assert_bad_input(graphnet("train", DIGITS, "--dataset", "digitz"), "'digitz'",
                     "did you mean 'digits'")


def test_unknown_dataset_option(capsys):
    assert_bad_input(graphnet("train", DIGITS, "--dataset", "moons", "--dataset-option",
                              "nois=0.1"), "nois", "'noise'")
    assert_bad_input(in_process(capsys, "train", DIGITS, "--dataset", "moons",
                                "--dataset-option", "noise"), "KEY=VALUE")


def test_unknown_optimizer():
    assert_bad_input(graphnet("train", DIGITS, "--optimizer", "adamm", "--epochs", 1),
                     "optimizer", "'adamm'")


@pytest.mark.parametrize("command", [
    ["train", "missing.json"], ["summary", "missing.json"], ["render", "missing.json", "-o",
                                                             "g.svg"],
    ["gradcheck", "missing.npz"], ["evaluate", "missing.npz", "--dataset", "digits"],
    ["predict", "missing.npz", "--data", "d.npz", "-o", "p.npy"],
])
def test_missing_model_or_checkpoint(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    assert_bad_input(in_process(capsys, *command), "missing.", "does not exist")


def test_missing_model_as_a_command(tmp_path):
    assert_bad_input(graphnet("train", "missing.json", cwd=tmp_path), "missing.json",
                     "does not exist")


def test_missing_and_unreadable_data_files(run_dir, tmp_path):
    ckpt = run_dir[0] / "model.npz"
    assert_bad_input(graphnet("train", DIGITS, "--data", tmp_path / "none.npz"),
                     "none.npz", "does not exist")
    (tmp_path / "junk.npz").write_bytes(b"\x00garbage")
    assert_bad_input(graphnet("evaluate", ckpt, "--data", tmp_path / "junk.npz"),
                     "junk.npz", "is not a .npz file", "not a zip archive")
    (tmp_path / "bad.csv").write_text("a,b\n1,oops\n")
    assert_bad_input(graphnet("predict", ckpt, "--data", tmp_path / "bad.csv", "-o",
                              tmp_path / "p.npy"), "bad.csv", "line 2", "'oops'")
    (tmp_path / "d.parquet").write_bytes(b"")
    assert_bad_input(graphnet("train", DIGITS, "--data", tmp_path / "d.parquet"),
                     "unsupported format")


def test_unreadable_model_file_and_checkpoint(tmp_path):
    (tmp_path / "m.json").write_text('{"name": "x", "inputs": [')
    assert_bad_input(graphnet("summary", tmp_path / "m.json"), "m.json")
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04 not really")
    assert_bad_input(graphnet("evaluate", tmp_path / "c.npz", "--dataset", "digits"), "c.npz")
    assert_bad_input(graphnet("summary", tmp_path), "folder")


@pytest.mark.parametrize("arrays, words, features", [
    ({"x": np.ones((10, 3)), "y": np.zeros(10, int)}, ["'x'", "(10, 3)", "(N, 64)"], True),
    ({"pixels": np.ones((10, 64)), "y": np.zeros(10, int)}, ["no array for input 'x'",
                                                             "pixels"], True),
    ({"x": np.ones((10, 64)), "y": np.full(10, 0.5)}, ["integer class labels"], False),
    ({"x": np.ones((10, 64)), "y": np.zeros(9, int)}, ["samples"], False),
])
def test_data_that_does_not_match_the_model(run_dir, tmp_path, capsys, arrays, words,
                                            features):
    np.savez(tmp_path / "d.npz", **arrays)
    ckpt = run_dir[0] / "model.npz"
    commands = [["evaluate", ckpt], ["train", DIGITS]]
    if features:  # predict reads only the features
        commands.append(["predict", ckpt, "-o", tmp_path / "p.npy"])
    for args in commands:
        result = in_process(capsys, *args, "--data", tmp_path / "d.npz")
        assert_bad_input(result, "d.npz", *words)


def test_data_that_does_not_match_the_model_as_a_command(run_dir, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((10, 3)), y=np.zeros(10, int))
    assert_bad_input(graphnet("evaluate", run_dir[0] / "model.npz", "--data",
                              tmp_path / "d.npz"), "d.npz", "(10, 3)", "(N, 64)")


def test_labels_out_of_range_are_refused(run_dir, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((10, 64)), y=np.full(10, 12))
    assert_bad_input(graphnet("evaluate", run_dir[0] / "model.npz", "--data",
                              tmp_path / "d.npz"), "labels must lie in [0, 10)")


def test_bad_output_suffixes(run_dir, tmp_path):
    assert_bad_input(graphnet("render", DIGITS, "-o", tmp_path / "g.bmp"), ".bmp")
    np.savez(tmp_path / "d.npz", x=np.ones((2, 64)))
    assert_bad_input(graphnet("predict", run_dir[0] / "model.npz", "--data",
                              tmp_path / "d.npz", "-o", tmp_path / "p.txt"), "p.txt")


def test_train_refuses_a_model_without_a_loss_and_an_output_that_is_a_file(tmp_path):
    model = json.loads(write_model(tmp_path / "m.json").read_text())
    model["nodes"].pop()  # the loss
    model["inputs"].pop()  # and the label it read
    (tmp_path / "m.json").write_text(json.dumps(model))
    assert_bad_input(graphnet("train", tmp_path / "m.json", "--dataset", "xor"), "no loss node")
    assert_bad_input(graphnet("gradcheck", tmp_path / "m.json"), "no loss node")
    (tmp_path / "file").write_text("")
    assert_bad_input(graphnet("train", DIGITS, "--out", tmp_path / "file"), "is a file")


def test_train_refuses_a_checkpoint_as_model(run_dir):
    assert_bad_input(graphnet("train", run_dir[0] / "model.npz"), "--resume")


def test_debug_shows_the_traceback():
    result = graphnet("train", DIGITS, "--dataset", "digitz", "--debug")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "digitz" in result.stderr.splitlines()[-1]
    before = graphnet("--debug", "summary", "missing.json")
    assert before.returncode == 2 and "Traceback" in before.stderr
