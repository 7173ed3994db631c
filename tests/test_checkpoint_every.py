"""checkpoint_every: model.npz written every k epochs, always after the last one and after
the last finished one when training is interrupted (Ctrl-C, SIGTERM), and a resume from
such a checkpoint bit-identical to an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import graphnet as gn
from graphnet.callbacks import Callback

from test_cli import NO_MATPLOTLIB, ROOT, assert_bad_input, in_process, write_model

EPOCHS = 12
RUN = {"dataset": "moons", "dataset_options": {"n": 60}, "epochs": EPOCHS, "batch_size": 8,
       "lr": 0.05, "seed": 3}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return str(write_model(tmp_path_factory.mktemp("model") / "points.json"))


@pytest.fixture(scope="module")
def whole(model_file, tmp_path_factory):
    """The reference: an uninterrupted run with a checkpoint after every epoch."""
    return gn.train_run(model_file, out=tmp_path_factory.mktemp("whole"), **RUN)


def saved_epoch(path):
    return gn.load_checkpoint(str(path)).train_state["epoch"] if path.exists() else None


class Watch(Callback):
    """Records the checkpoint's epoch as each epoch begins; raises KeyboardInterrupt (as
    Ctrl-C does) in the middle of epoch ``stop``."""

    def __init__(self, path, stop=None):
        self.path, self.stop, self.seen = path, stop, []

    def on_epoch_begin(self, run):
        self.seen.append(saved_epoch(self.path))

    def on_batch_end(self, run, logs):
        if run.epoch == self.stop and run.batch == 3:
            raise KeyboardInterrupt


def untimed(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history.rows]


def opt_state(ckpt):
    saved = ckpt.optimizer
    return (saved.state_dict() if hasattr(saved, "state_dict") else saved)["state"]


def same_params(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_written_every_k_epochs_and_after_the_last(model_file, whole, tmp_path):
    watch = Watch(tmp_path / "model.npz")
    result = gn.train_run(model_file, out=tmp_path, checkpoint_every=5, callbacks=[watch],
                          **RUN)
    assert watch.seen == [None] * 5 + [5] * 5 + [10] * 2
    state = gn.load_checkpoint(str(tmp_path / "model.npz")).train_state
    assert (state["epoch"], state["finished"]) == (EPOCHS, "done")
    assert same_params(result.model.params, whole.model.params)
    assert result.metrics["settings"] == {**whole.metrics["settings"], "out": str(tmp_path)}


def test_an_interrupt_writes_the_finished_epochs_and_the_resume_is_bit_identical(
        model_file, whole, tmp_path):
    every_epoch, sparse = tmp_path / "every", tmp_path / "sparse"
    for out, every in ((every_epoch, 1), (sparse, 5)):
        with pytest.raises(KeyboardInterrupt):
            gn.train_run(model_file, out=out, checkpoint_every=every,
                         callbacks=[Watch(out / "model.npz", stop=8)], **RUN)
    a = gn.load_checkpoint(str(every_epoch / "model.npz"))
    b = gn.load_checkpoint(str(sparse / "model.npz"))
    assert b.train_state["epoch"] == 7 and b.train_state == a.train_state
    assert same_params(a.model.params, b.model.params)
    assert untimed(a.history) == untimed(b.history) and len(untimed(a.history)) == 7
    assert same_params(opt_state(a)["fc1.weight"], opt_state(b)["fc1.weight"])
    resumed = gn.train_run(model_file, out=sparse, resume="auto", checkpoint_every=5, **RUN)
    assert same_params(resumed.model.params, whole.model.params)
    assert resumed.metrics["train"] == whole.metrics["train"]
    assert resumed.metrics["test"] == whole.metrics["test"]
    rows = json.loads((sparse / "history.json").read_text())["epochs"]
    assert [r["loss"] for r in rows] == whole.history["loss"]


def test_the_model_is_left_as_the_interrupt_found_it(model_file, tmp_path):
    """Writing the kept epoch does not hand the caller the old params back."""
    seen = {}

    class Grab(Watch):
        def on_batch_end(self, run, logs):
            if run.epoch == 4 and run.batch == 3:
                seen.update({k: v.copy() for k, v in run.model.params.items()})
                seen["step"] = run.optimizer.step_count
                self.model = run.model
                raise KeyboardInterrupt

    grab = Grab(tmp_path / "model.npz")
    with pytest.raises(KeyboardInterrupt):
        gn.train_run(model_file, out=tmp_path, checkpoint_every=10, callbacks=[grab], **RUN)
    step = seen.pop("step")
    assert same_params(dict(grab.model.params), seen)
    saved = gn.load_checkpoint(str(tmp_path / "model.npz"))
    assert saved.train_state["epoch"] == 3 and saved.train_state["step"] < step
    assert not same_params(saved.model.params, seen)


def test_the_training_block_sets_it_and_bad_values_are_refused(tmp_path, capsys):
    path = write_model(tmp_path / "m.json", dataset="moons", dataset_options={"n": 60},
                       epochs=7, batch_size=8, checkpoint_every=4)
    watch = Watch(tmp_path / "run" / "model.npz")
    gn.train_run(str(path), out=tmp_path / "run", callbacks=[watch])
    assert watch.seen == [None] * 4 + [4] * 3
    bad = write_model(tmp_path / "bad.json", dataset="moons", checkpoint_every=0)
    assert_bad_input(in_process(capsys, "train", bad, "--out", tmp_path / "b"),
                     "checkpoint_every")
    assert_bad_input(in_process(capsys, "train", path, "--checkpoint-every", "0", "--out",
                                tmp_path / "c"), "--checkpoint-every")
    with pytest.raises(gn.GraphnetError, match="checkpoint_every must be a whole number >= 1"):
        gn.train_run(str(path), out=tmp_path / "d", checkpoint_every=2.5)


def command(*args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(NO_MATPLOTLIB), str(ROOT)])}
    return subprocess.Popen([sys.executable, "-m", "graphnet", *map(str, args)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigterm_to_graphnet_train_writes_the_finished_epochs(model_file, tmp_path):
    flags = ["--dataset", "moons", "--dataset-option", "n=400", "--epochs", 400,
             "--batch-size", 4, "--seed", 1, "--lr", 0.01]
    proc = command("train", model_file, *flags, "--checkpoint-every", 1000, "--out",
                   tmp_path / "cut")
    try:
        for line in proc.stdout:          # a line per epoch: the pipe is not a terminal
            if line.startswith("epoch 3/"):
                break
        assert not (tmp_path / "cut" / "model.npz").exists()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "graphnet: interrupted (SIGTERM)"
    cut = gn.load_checkpoint(str(tmp_path / "cut" / "model.npz")).train_state["epoch"]
    assert 2 <= cut < 400     # epoch 3's line comes before its end: 2 are surely finished
    # the rest: resumed from the cut, against the same run without a cut, both cut short
    # at epoch cut + 2 to keep this fast
    short = [f if f != 400 else cut + 2 for f in flags]
    runs = [command("train", model_file, *short, "--out", tmp_path / "cut", "--resume",
                    tmp_path / "cut" / "model.npz", "--quiet"),
            command("train", model_file, *short, "--out", tmp_path / "whole", "--quiet")]
    for run in runs:
        assert run.wait(timeout=120) == 0, run.stderr.read()
    a = gn.load(str(tmp_path / "cut" / "model.npz"))
    b = gn.load(str(tmp_path / "whole" / "model.npz"))
    assert same_params(a.params, b.params)


def test_a_sweep_passes_it_and_figures_on_and_a_rerun_with_others_trains_nothing(
        model_file, tmp_path):
    grid = {"lr": [0.01, 0.05]}
    rows = gn.sweep(model_file, grid, executor="serial", out=tmp_path, checkpoint_every=5,
                    figures=False, **{k: v for k, v in RUN.items() if k != "lr"})
    assert all(r["error"] is None for r in rows)
    assert sorted(os.listdir(tmp_path / rows[0]["run"])) == ["history.json", "metrics.json",
                                                             "model.npz"]
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/model.npz")}
    again = gn.sweep(model_file, grid, executor="serial", out=tmp_path, checkpoint_every=2,
                     **{k: v for k, v in RUN.items() if k != "lr"})
    assert again == rows
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/model.npz")} == stamps
