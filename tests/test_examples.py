"""Smoke test of the lecture: every example runs with --quick and its numbers say what the
lecture says. Each example writes its headline numbers to OUT/<name>.json; the
assertions read those, not the printed text."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ["linear_collapse", "activations", "universal_approximation", "backprop",
            "optimizers", "loss_landscape", "double_descent"]
FIGURES = {
    "linear_collapse": ["linear_collapse.png"],
    "activations": ["activations.png"],
    "universal_approximation": ["universal_approximation_width.png",
                                "universal_approximation_depth.png"],
    "backprop": ["backprop_vanishing.png"],
    "optimizers": ["optimizers_paths.png", "optimizers_lr_sweep.png", "optimizers_digits.png"],
    "loss_landscape": ["loss_landscape.png"],
    "double_descent": ["double_descent.png"],
}

pytest.importorskip("matplotlib", reason="the examples draw with matplotlib (extra 'plot')")


def run_example(name, out, *flags):
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / f"{name}.py"), "--quick",
                           "--out", str(out), *flags], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"examples/{name}.py failed:\n{proc.stdout}\n{proc.stderr}"
    for figure in FIGURES[name]:
        assert (out / figure).stat().st_size > 1000, f"{name} did not draw {figure}"
    numbers = json.loads((out / f"{name}.json").read_text())
    assert numbers["quick"] is True
    return numbers, proc.stdout


def test_every_lecture_example_is_tested():
    lecture = {p.stem for p in (ROOT / "examples").glob("*.py")
               if "from common import" in p.read_text()}
    assert lecture == set(EXAMPLES)


def test_linear_collapse(tmp_path):
    r, stdout = run_example("linear_collapse", tmp_path)
    assert r["linear_2_float64"] < 1e-5 and r["linear_10_float64"] < 1e-5
    assert r["linear_2_float32"] < 1e-5 and r["linear_10_float32"] < 1e-5
    assert r["relu_2_float64"] > 0.1 * r["relu_2_output_scale"]
    assert "largest |model(x) - (x @ W + b)|" in stdout


def test_activations(tmp_path):
    r, _ = run_example("activations", tmp_path)
    assert r["activations"][:5] == ["relu", "elu", "softplus", "sigmoid", "tanh"]
    # central differences with h = 1e-5 are off by about h/4 where the curvature jumps
    # (elu at 0); kinks such as relu's 0 are left out by the example
    assert max(r["derivative_error"].values()) < 1e-4
    assert r["kinks"]["relu"] == [0.0]


def test_universal_approximation(tmp_path):
    r, _ = run_example("universal_approximation", tmp_path)    # cells on worker processes
    widths = r["widths"]
    assert widths[0] == 1 and widths[-1] >= 64
    for name, errors in r["width_errors"].items():
        # error falls as the width grows: the widest beats the narrowest by far, and
        # no width of the wider half does worse than the narrower half's best (errors
        # below 1e-4 count as fitted: |x| is exact from 4 relu units on)
        assert errors[-1] < errors[0] / 10, name
        half = len(errors) // 2
        floor = 1e-4
        assert max(max(errors[half:]), floor) <= max(min(errors[:half]), floor), name
    needed = r["neurons_needed"]
    assert needed["2"] is not None
    assert needed["1"] is None or needed["1"] > needed["2"]


def test_backprop(tmp_path):
    r, _ = run_example("backprop", tmp_path)
    assert r["max_relative_error"] < 1e-6
    assert set(r["relative_errors"]) >= {"Dense1", "Activation1", "Dense2", "Dense1.weight"}
    assert r["chain_rule_error"] < 1e-10
    assert r["first_over_last"]["sigmoid"] < 1e-6       # vanishes
    assert r["first_over_last"]["relu"] > 1e-2          # does not


def test_optimizers(tmp_path):
    r, _ = run_example("optimizers", tmp_path, "--executor", "serial")
    ravine = r["surfaces"]["ravine"]
    final = ravine["final_loss"]
    assert final["momentum"] < final["sgd"] / 100
    assert final["adam"] < final["sgd"] / 100
    # momentum tolerates a wider range of learning rates than sgd
    sgd, momentum = ravine["tolerated"]["sgd"], ravine["tolerated"]["momentum"]
    assert momentum is not None
    assert sgd is None or momentum[1] / momentum[0] > sgd[1] / sgd[0]
    for name, d in r["digits"].items():
        assert np.isfinite(d["test_loss"]), name
    assert r["digits"]["adam"]["test_accuracy"] > 0.8


def test_loss_landscape(tmp_path):
    r, _ = run_example("loss_landscape", tmp_path)
    for label in ("narrow", "wide"):
        assert r[label]["mean_rise"] > 0      # the trained point sits in a basin
    assert r["wide"]["params"] > r["narrow"]["params"]
    # Li et al.: the wider net sits in a flatter basin (filter-normalized directions)
    assert r["wide"]["mean_rise"] < r["narrow"]["mean_rise"] / 2


def test_double_descent(tmp_path):
    r, stdout = run_example("double_descent", tmp_path, "--workers", "2")
    rf = r["random_features"]
    n = rf["n_train"]
    assert 0.8 * n <= rf["peak"] <= 1.25 * n          # peak at the interpolation threshold
    peak_error = max(rf["test_mse"])
    assert peak_error > 5 * rf["best_under"] and peak_error > 5 * rf["best_over"]
    assert rf["test_mse"][-1] < rf["test_mse"][rf["sizes"].index(rf["peak"])] / 5  # descends again
    mlp = r["mlp"]
    seeds, widths = mlp["seeds"], mlp["widths"]
    assert len(seeds) >= 3 and mlp["threshold"] == 10 * mlp["n_train"]
    # every cell is a run of the sweep, and the summary is of those rows
    rows = json.loads((tmp_path / "double_descent_mlp" / "results.json").read_text())
    assert [(row["fc1.units"], row["seed"]) for row in rows] == \
        [(w, s) for w in widths for s in seeds]
    test = mlp["test_error"]
    for i, w in enumerate(widths):
        errors = [1 - row["test_accuracy"] for row in rows if row["fc1.units"] == w]
        assert test["mean"][i] == pytest.approx(np.mean(errors))
        assert test["min"][i] == pytest.approx(min(errors))
        assert test["max"][i] == pytest.approx(max(errors))
    assert max(test["max"][i] - test["min"][i] for i in range(len(widths))) > 0  # seeds differ
    assert mlp["train_error"]["max"][-1] == 0.0         # the widest nets fit the noisy labels
    assert mlp["train_error"]["mean"][0] > 0.3          # one unit cannot
    assert test["mean"][-1] < test["mean"][0] - 0.2     # and the widest generalize far better
    fitted = [p for p, e in zip(mlp["params"], mlp["train_error"]["max"]) if e == 0]
    assert mlp["interpolates_from"] == fitted[0]
    # the verdict says where the peak is, or that there is none, as the numbers have it
    rises = [i for i in range(1, len(widths)) if test["mean"][i] > test["mean"][i - 1]]
    if rises:
        assert mlp["peak"] == mlp["params"][max(rises, key=lambda i: test["mean"][i])]
        assert f"peak at {mlp['peak']:,} params" in mlp["verdict"]
    else:
        assert mlp["peak"] is None and "no peak" in mlp["verdict"]
    assert mlp["verdict"] in stdout
