"""The README's tour runs exactly as printed, and every shipped model file trains.

The commands are read from README.md itself (its "A short tour" section: the
``bash`` blocks, the ``$ `` lines of the transcripts and the inline
``graphnet ...`` commands), so the tour cannot drift from what works. They
run in a scratch folder holding a copy of examples/, as from a fresh clone.
"""

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from graphnet.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted((ROOT / "examples" / "models").rglob("*.json"))


def tour():
    """The tour's shell commands and Python blocks, in the README's order."""
    text = (ROOT / "README.md").read_text()
    start = text.index("## A short tour")
    section = text[start:text.index("\n## ", start)]
    steps = []
    pattern = re.compile(r"```(\w*)\n(.*?)```|`(graphnet [^`]+)`", re.S)
    for m in pattern.finditer(section):
        lang, body, inline = m.groups()
        if inline:
            if len(inline.split()) > 2:      # a command, not a mention like `graphnet train`
                steps.append(("shell", inline))
        elif lang == "bash":
            steps += [("shell", line.split("#")[0].strip()) for line in body.splitlines()
                      if line.split("#")[0].strip()]
        elif lang == "python":
            steps.append(("python", body))
        elif lang == "":
            steps += [("shell", line[2:]) for line in body.splitlines() if line.startswith("$ ")]
    return steps


def test_the_tour_is_read_from_the_readme():
    steps = tour()
    shell = [cmd for kind, cmd in steps if kind == "shell"]
    assert shell[0] == "graphnet train examples/models/digits_mlp.json"
    assert any("--dataset-option noise=0.2" in c for c in shell)
    assert any(c.startswith("graphnet predict") and "--data " in c for c in shell)
    assert {c.split()[1] for c in shell} >= {"train", "summary", "render", "gradcheck",
                                             "evaluate", "predict", "plugins", "schema"}
    assert sum(kind == "python" for kind, _ in steps) == 1


def test_every_command_of_the_readme_tour_runs_as_printed(tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / "examples", tmp_path / "examples",
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for kind, step in tour():
        if kind == "python":
            exec(compile(step, "README.md", "exec"), {})
            continue
        argv = shlex.split(step)
        assert argv[0] == "graphnet", step
        code = main(argv[1:])
        out, err = capsys.readouterr()
        assert code == 0, f"{step}\n{out}\n{err}"
    metrics = json.loads(Path("runs/digits_mlp/metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.97                  # "about 98.9%"
    rows = Path("predictions.csv").read_text().splitlines()
    assert rows[0].split(",")[-1] == "class" and len(rows) == 11
    assert Path("mlp.svg").read_text().lstrip().startswith(("<?xml", "<svg"))


@pytest.mark.parametrize("path", MODELS, ids=[p.relative_to(ROOT).as_posix() for p in MODELS])
def test_every_shipped_model_file_trains_with_its_own_training_block(path, tmp_path, capsys):
    assert "training" in json.loads(path.read_text()), "a shipped model says how to train it"
    code = main(["train", str(path), "--epochs", "2", "--out", str(tmp_path), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    history = json.loads((tmp_path / "history.json").read_text())["epochs"]
    assert history[1]["loss"] < history[0]["loss"], history
