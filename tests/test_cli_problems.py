"""What the graphnet command says about problems: one line each, exit 2, and what to do.

Most run ``graphnet.cli.main`` in this process; the ones about warnings run the
real command, since pytest itself records warnings in this process.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphnet as gn
from graphnet.cli import main

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "models" / "digits_mlp.json"


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def command(*args, cwd):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "graphnet", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=120)


def sine_model(path):
    path.write_text(json.dumps({
        "format": "graphnet-model/1", "name": "sine",
        "inputs": [{"name": "x", "shape": [1]}, {"name": "y", "shape": [1]}],
        "nodes": [{"name": "fc1", "op": "dense", "inputs": ["x"], "attrs": {"units": 16}},
                  {"name": "act", "op": "tanh", "inputs": ["fc1"]},
                  {"name": "out", "op": "dense", "inputs": ["act"], "attrs": {"units": 1}},
                  {"name": "loss", "op": "mse", "inputs": ["out", "y"]}],
        "outputs": ["out"], "training": {"dataset": "sine", "epochs": 2}}))
    return path


@pytest.mark.parametrize("args", [["predict", DIGITS, "--data", "new.csv", "-o", "p.csv"],
                                  ["evaluate", DIGITS, "--dataset", "digits"]])
def test_predict_and_evaluate_refuse_a_model_file_without_weights(capsys, tmp_path, args):
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and len(err) == 1
    assert "digits_mlp.json' is a model file, which holds no trained weights" in err[0]
    assert "pass a checkpoint" in err[0] and f"graphnet train {DIGITS}" in err[0]
    assert not (tmp_path / "p.csv").exists()


def test_render_of_a_model_that_does_not_compile_draws_it_and_names_the_problem(
        capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({
        "format": "graphnet-model/1", "name": "bad", "inputs": [{"name": "x", "shape": [4]}],
        "nodes": [{"name": "fc1", "op": "dense", "inputs": ["x"], "attrs": {"units": 8}},
                  {"name": "join", "op": "add", "inputs": ["fc1", "x"]}],
        "outputs": ["join"]}))
    code, out, err = run(capsys, "render", bad, "-o", tmp_path / "bad.dot")
    assert code == 1 and out.strip() == f"wrote {tmp_path / 'bad.dot'}"
    assert len(err) == 1 and err[0].startswith("graphnet: error: ")
    assert "nodes[1] (node 'join', op add)" in err[0] and "(8,) and (4,)" in err[0]
    source = (tmp_path / "bad.dot").read_text()
    join = next(line for line in source.splitlines() if line.strip().startswith("join "))
    assert "#cc0000" in join       # the failing node, in red
    assert "does not compile" in source
    code, _, err = run(capsys, "render", DIGITS, "-o", tmp_path / "ok.dot")
    assert code == 0 and err == []


def test_a_model_file_with_several_problems_lists_each_on_its_own_line(capsys, tmp_path):
    multi = tmp_path / "multi.json"
    multi.write_text(json.dumps({
        "format": "graphnet-model/1", "name": "multi", "inputs": [{"name": "x", "shape": [4]}],
        "nodes": [{"name": "fc1", "op": "dense", "inputs": ["x"], "attrs": {"unitz": 8}},
                  {"name": "a", "op": "relux", "inputs": ["fc1"]},
                  {"name": "b", "op": "dense", "inputs": ["a"], "attrs": {"units": "3"}}],
        "outputs": ["b"]}))
    code, _, err = run(capsys, "summary", multi)
    assert code == 2 and "more problem" not in " ".join(err)
    assert [line.split(": ")[3] for line in err] == [
        "nodes[0].attrs.unitz (node 'fc1', op dense)", "nodes[0].attrs (node 'fc1', op dense)",
        "nodes[1].op (node 'a', op relux)", "nodes[2].attrs.units (node 'b', op dense)"]
    assert all(line.startswith("graphnet: error: ") for line in err)
    with pytest.raises(gn.SchemaError) as info:       # Python gets them all too
        gn.Graph.from_json(multi)
    assert len(info.value.problems) == 4 and str(info.value).count("\n") == 3


def test_a_csv_without_a_header_points_to_x_and_y(capsys, tmp_path):
    data = gn.datasets.load("digits")["test"]
    np.savetxt(tmp_path / "d.csv", np.column_stack([data["x"], data["y"]])[:120], delimiter=",",
               fmt="%g")
    code, _, err = run(capsys, "train", DIGITS, "--data", tmp_path / "d.csv", "--epochs", 1,
                       "--out", tmp_path / "run", "--quiet")
    assert code == 2 and len(err) == 1
    assert "no target column for input 'label'" in err[0]
    assert "--y" in err[0] and "--x" in err[0] and "npz" not in err[0]
    code, out, err = run(capsys, "train", DIGITS, "--data", tmp_path / "d.csv", "--y", 64,
                         "--epochs", 1, "--out", tmp_path / "run", "--quiet")
    assert code == 0, err


def test_a_npz_that_is_not_a_zip_says_so(capsys, tmp_path):
    (tmp_path / "d.npz").write_text("x,y\n1,2\n")
    code, _, err = run(capsys, "train", DIGITS, "--data", tmp_path / "d.npz", "--quiet",
                       "--out", tmp_path / "run")
    assert code == 2 and len(err) == 1
    assert "'" + str(tmp_path / "d.npz") + "' is not a .npz file" in err[0]
    assert "not a zip archive" in err[0] and "pickle" not in err[0]


def test_too_few_logits_for_the_labels_stop_graphnet_train_before_it_starts(capsys, tmp_path):
    spec = json.loads(DIGITS.read_text())
    spec["nodes"][2]["attrs"]["units"] = 8
    narrow = tmp_path / "narrow.json"
    narrow.write_text(json.dumps(spec))
    code, out, err = run(capsys, "train", narrow, "--quiet", "--out", tmp_path / "run")
    assert code == 2 and len(err) == 1
    assert "range from 0 to 9, but node 'logits'" in err[0] and "widen 'logits' to units=10" \
        in err[0]
    assert "epoch 1/" not in out and not (tmp_path / "run" / "model.npz").exists()


def test_no_numpy_warnings_on_divergence_or_on_resuming_inf_params(tmp_path):
    sine = sine_model(tmp_path / "sine.json")
    diverge = command("train", sine, "--optimizer", "sgd", "--lr", 10, "--quiet", cwd=tmp_path)
    assert diverge.returncode == 2
    assert diverge.stderr.splitlines() == [diverge.stderr.strip()]
    assert "training diverged" in diverge.stderr and "Warning" not in diverge.stderr

    ok = command("train", sine, "--epochs", 1, "--quiet", "--out", "run", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    ck = gn.load_checkpoint(tmp_path / "run" / "model.npz")
    for p in ck.model.params.values():
        p[...] = np.inf
    gn.save(ck.model, tmp_path / "inf.npz", optimizer=ck.optimizer, history=ck.history,
            train_state=ck.train_state)
    resumed = command("train", sine, "--resume", "inf.npz", "--quiet", "--out", "run2",
                      cwd=tmp_path)
    assert resumed.returncode == 2
    assert len(resumed.stderr.strip().splitlines()) == 1, resumed.stderr
    assert "Warning" not in resumed.stderr and "graphnet: error: " in resumed.stderr


def test_a_set_value_nested_past_the_stack_is_one_line(capsys):
    code, out, err = run(capsys, "train", DIGITS, "--set", "fc1.units=" + "[" * 5000)
    assert code == 2 and len(err) == 1 and "node 'fc1'" in err[0] and len(err[0]) < 400


def test_running_out_of_memory_is_one_line_that_says_what_to_shrink(capsys):
    code, out, err = run(capsys, "gradcheck", DIGITS, "--batch", 10**12)  # 512 TB of inputs
    assert code == 2 and len(err) == 1
    assert err[0].startswith("graphnet: error: out of memory (") and "smaller batch" in err[0]


def test_sweep_cells_with_bad_training_values_fail_by_name_instead_of_falling_back(capsys,
                                                                                  tmp_path):
    out = tmp_path / "sweep"
    code, _, err = run(capsys, "sweep", sine_model(tmp_path / "sine.json"), "--grid",
                       "batch_size=0,4", "--grid", "seed=-1,0", "--executor", "serial",
                       "--epochs", 1, "--out", out, "--quiet")
    assert code == 1, err
    import csv
    with open(out / "results.csv", newline="") as f:
        rows = {(r["batch_size"], r["seed"]): r["error"] for r in csv.DictReader(f)}
    assert rows[("4", "0")] == ""
    assert rows[("0", "0")] == "batch_size must be a whole number >= 1, got 0"
    for size in ("0", "4"):
        assert rows[(size, "-1")] == "model 'sine': seed must be a whole number >= 0, got -1"
