"""gn.sweep and ``graphnet sweep``: cells equal to ``graphnet train``, reruns that train only
what is missing, failures as rows, and workers that die (process pools and a real dask
cluster of worker processes on 127.0.0.1) without losing a row."""

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import graphnet as gn
from graphnet.sweep import Outcome, SweepError, map_cells
from graphnet.callbacks import Callback

from test_cli import NO_MATPLOTLIB, ROOT, assert_bad_input, graphnet, write_model

GRID = {"lr": [0.01, 0.05], "seed": [0, 1]}
SLOW = {"dataset": "moons", "dataset_options": {"n": 100}, "epochs": 15, "batch_size": 4}


def scores(rows):
    """Rows without the wall-clock seconds: what must agree between executors and reruns."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def mtimes(out):
    return {p.parent.name: p.stat().st_mtime_ns for p in Path(out).glob("*/model.npz")}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("model") / "points.json", dataset="moons",
                       dataset_options={"n": 100}, epochs=3, batch_size=8)


@pytest.fixture(scope="module")
def serial(model_file, tmp_path_factory):
    """The reference: the 4-cell grid, one cell after another in this process."""
    out = tmp_path_factory.mktemp("serial")
    return out, gn.sweep(str(model_file), GRID, executor="serial", out=out)


@pytest.fixture(scope="module")
def slow_serial(model_file, tmp_path_factory):
    """Cells long enough to be interrupted in the middle (15 epochs of 20 steps)."""
    out = tmp_path_factory.mktemp("slow")
    return gn.sweep(str(model_file), GRID, executor="serial", out=out, **SLOW)


def test_rows_and_files(serial):
    out, rows = serial
    assert [(r["lr"], r["seed"]) for r in rows] == [(0.01, 0), (0.01, 1), (0.05, 0), (0.05, 1)]
    assert list(rows[0]) == ["lr", "seed", "train_loss", "train_accuracy", "test_loss",
                             "test_accuracy", "seconds", "run", "error"]
    assert all(r["error"] is None and 0 <= r["test_accuracy"] <= 1 for r in rows)
    assert len({r["test_loss"] for r in rows}) == 4
    assert json.loads((out / "results.json").read_text()) == rows
    with open(out / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [float(t["test_loss"]) for t in table] == [r["test_loss"] for r in rows]
    for r in rows:
        assert {"model.npz", "metrics.json", "history.json"} <= set(os.listdir(out / r["run"]))
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_a_cell_is_graphnet_train_bit_for_bit(serial, model_file, tmp_path):
    out, rows = serial
    cell = rows[3]
    result = graphnet("train", model_file, "--lr", cell["lr"], "--seed", cell["seed"],
                      "--out", tmp_path / "one", "--quiet")
    assert result.returncode == 0, result.stderr
    a, b = gn.load(str(tmp_path / "one" / "model.npz")), gn.load(str(out / cell["run"] /
                                                                      "model.npz"))
    assert a.params.keys() == b.params.keys()
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    metrics = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert (metrics["test"]["loss"], metrics["train"]["accuracy"]) == (
        cell["test_loss"], cell["train_accuracy"])


def test_a_rerun_trains_nothing_and_a_changed_setting_retrains(serial, model_file):
    out, rows = serial
    before = mtimes(out)
    assert scores(gn.sweep(str(model_file), GRID, executor="serial", out=out)) == scores(rows)
    assert mtimes(out) == before
    longer = gn.sweep(str(model_file), {"lr": [0.01]}, executor="serial", out=out, epochs=4)
    assert longer[0]["test_loss"] != rows[0]["test_loss"]
    assert json.loads((out / "lr=0.01" / "metrics.json").read_text())["epochs"] == 4


def test_processes_give_the_serial_rows(serial, model_file, tmp_path):
    _, rows = serial
    got = gn.sweep(str(model_file), GRID, executor="processes", workers=2, out=tmp_path)
    assert scores(got) == scores(rows)


def test_keys_of_every_kind_and_failing_cells(model_file, tmp_path):
    grid = {"optimizer": ["sgd", "momentum"], "optimizer.lr": [0.1, -1.0],
            "dataset.noise": [0.3], "fc1.units": [3]}
    rows = gn.sweep(str(model_file), grid, executor="serial", out=tmp_path, epochs=1)
    assert [r["error"] is None for r in rows] == [True, False, True, False]
    assert "lr must be a finite number > 0, got -1" in rows[1]["error"]
    assert rows[1]["test_loss"] is None
    metrics = json.loads((tmp_path / rows[2]["run"] / "metrics.json").read_text())
    s = metrics["settings"]
    assert s["optimizer"]["name"] == "momentum" and s["optimizer"]["lr"] == 0.1
    assert s["dataset_options"] == {"n": 100, "noise": 0.3} and s["attrs"] == {"fc1.units": 3}


class Interrupt(Callback):
    def on_epoch_end(self, run, logs):
        if run.epoch == 6:
            raise KeyboardInterrupt


def test_an_unfinished_cell_resumes_its_checkpoint(model_file, slow_serial, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        gn.train_run(str(model_file), lr=0.05, seed=1, out=tmp_path / "lr=0.05,seed=1",
                     callbacks=[Interrupt()], **SLOW)
    cut = gn.load_checkpoint(str(tmp_path / "lr=0.05,seed=1" / "model.npz")).history
    assert len(cut["epochs"] if isinstance(cut, dict) else cut.rows) == 5
    first = (cut["epochs"] if isinstance(cut, dict) else cut.rows)[0]
    rows = gn.sweep(str(model_file), GRID, executor="serial", out=tmp_path, **SLOW)
    assert scores(rows) == scores(slow_serial)
    history = json.loads((tmp_path / "lr=0.05,seed=1" / "history.json").read_text())
    assert len(history["epochs"]) == 15
    assert history["epochs"][0] == first     # the first 5 epochs were resumed, not retrained


def test_bad_sweeps(model_file, tmp_path, capsys):
    from test_cli import in_process
    for args, words in [
        (["--grid", "lrr=1,2"], ["lrr", "did you mean 'lr'"]),
        (["--grid", "fc9.units=1"], ["fc9", "fc1"]),
        (["--grid", "lr"], ["KEY=V1,V2"]),
        (["--grid", "lr=1", "--grid", "lr=2"], ["twice"]),
        (["--grid", "lr=1", "--executor", "serial", "--scheduler", "tcp://127.0.0.1:1"],
         ["--scheduler"]),
    ]:
        assert_bad_input(in_process(capsys, "sweep", model_file, "--out", tmp_path, *args),
                         *words)


# --- map_cells: the mechanism under every sweep ----------------------------------------------

def blas_threads(cell):
    """A cell that reports, from inside its worker, the BLAS threads numpy got."""
    import numpy  # noqa: F401  (BLAS is loaded, and read its variables, with numpy)
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return env, None
    return env, sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})


def reciprocal(cell):
    return 1 / cell


def test_processes_workers_get_one_blas_thread(monkeypatch):
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    got = map_cells(blas_threads, [0, 1], executor="processes", workers=2)
    for value, error in got:
        assert error is None
        env, threads = value
        assert env == {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        assert threads in (None, [], [1])
    assert "OMP_NUM_THREADS" not in os.environ     # this process's environment is restored


@pytest.mark.parametrize("executor", ["serial", "processes", "threads"])
def test_map_cells_outcomes_in_order_and_failures(executor):
    import concurrent.futures as cf
    seen = []
    pool = cf.ThreadPoolExecutor(2) if executor == "threads" else executor
    got = map_cells(reciprocal, [4, 0, 2], executor=pool, workers=2,
                             on_result=lambda i, o: seen.append((i, o)))
    assert got == [(0.25, None), (None, "ZeroDivisionError: division by zero"), (0.5, None)]
    assert isinstance(got[0], Outcome) and got[1].error.startswith("ZeroDivision")
    assert sorted(seen) == list(enumerate(got))
    if executor == "threads":
        pool.shutdown()


def test_map_cells_bad_input():
    with pytest.raises(SweepError, match="function to call"):
        map_cells("reciprocal", [1])
    with pytest.raises(SweepError, match="did you mean 'serial'"):
        map_cells(reciprocal, [1], executor="serail")
    with pytest.raises(SweepError, match="workers must be"):
        map_cells(reciprocal, [1], workers=0)
    assert map_cells(reciprocal, []) == []


# --- processes that die, Ctrl-C -------------------------------------------------------------

def start_sweep(model_file, out, *flags):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(NO_MATPLOTLIB), str(ROOT)])}
    args = ["sweep", model_file, "--grid", "lr=0.01,0.05", "--grid", "seed=0,1",
            "--dataset-option", "n=100", "--epochs", 15, "--batch-size", 4, "--out", out,
            *flags]
    return subprocess.Popen([sys.executable, "-m", "graphnet", *map(str, args)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_a_cell_in_the_middle(out, proc, timeout=60):
    """Until some cell has a checkpoint but no metrics.json yet: it is mid-training."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        for ckpt in Path(out).glob("*/model.npz"):
            if not (ckpt.parent / "metrics.json").exists():
                return ckpt.parent
        time.sleep(0.01)
    raise AssertionError("no cell was seen in the middle of its training")


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads /proc (Linux)")
def test_a_killed_worker_process_loses_no_row(model_file, slow_serial, tmp_path):
    proc = start_sweep(model_file, tmp_path, "--executor", "processes", "--workers", 2)
    try:
        wait_for_a_cell_in_the_middle(tmp_path, proc)
        workers = [c for c in children(proc.pid) if "spawn_main" in cmdline(c)]
        assert workers
        os.kill(workers[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    rows = json.loads((tmp_path / "results.json").read_text())
    assert scores(rows) == scores(slow_serial)


def test_ctrl_c_stops_and_the_rerun_resumes(model_file, slow_serial, tmp_path):
    proc = start_sweep(model_file, tmp_path, "--executor", "processes", "--workers", 2)
    try:
        wait_for_a_cell_in_the_middle(tmp_path, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == ("graphnet: interrupted; run the same command "
                                            "again to train what is left")
    assert len(list(tmp_path.glob("*/metrics.json"))) < 4
    rerun = start_sweep(model_file, tmp_path, "--executor", "serial")
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert scores(json.loads((tmp_path / "results.json").read_text())) == scores(slow_serial)


def interrupt_long_cells(model_file, out, executor, epochs, seconds):
    """A sweep of cells of ``epochs`` epochs that checkpoint only at their end, Ctrl-C'd
    ``seconds`` after its first cells start: its exit code, stderr and the train states
    of the checkpoints it left."""
    proc = start_sweep(model_file, out, "--executor", executor, "--workers", 2,
                       "--epochs", epochs, "--checkpoint-every", 10 * epochs)
    try:
        end = time.monotonic() + 90
        while not list(out.glob("*=*")) and time.monotonic() < end:
            time.sleep(0.01)
        time.sleep(seconds)          # some epochs of the first cells
        assert not list(out.glob("*/model.npz"))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert not list(out.glob("*/.model.npz.*"))    # no half-written file left
    return proc.returncode, err, [gn.load_checkpoint(str(p)).train_state
                                  for p in out.glob("*/model.npz")]


def test_ctrl_c_with_sparse_checkpoints_keeps_the_workers_finished_epochs(model_file,
                                                                         tmp_path):
    """Stopped by the sweep, a worker's cell writes its finished epochs (SIGTERM to fit)
    although its next periodic checkpoint is far away."""
    code, err, saved = interrupt_long_cells(model_file, tmp_path, "processes", 3000, 1.0)
    assert code == 130, err
    assert saved and all(1 <= s["epoch"] < 3000 and s["finished"] is None for s in saved)


def test_ctrl_c_on_a_dask_cluster_keeps_the_cells_finished_epochs(model_file, tmp_path):
    """dask runs a cell in a worker's thread, which no signal reaches: on Ctrl-C the sweep
    creates its stop file, each running cell saves its finished epochs before its next
    one and ends, and only then is the local cluster closed (it would kill its workers
    after a few seconds, the epochs since their last write lost)."""
    code, err, saved = interrupt_long_cells(model_file, tmp_path, "dask", 60000, 1.5)
    assert code == 130, err
    assert err.strip().splitlines() == ["graphnet: interrupted; run the same command again "
                                        "to train what is left"]
    assert saved and all(1 <= s["epoch"] < 60000 and s["finished"] is None for s in saved)
    assert not (tmp_path / ".stop").exists()


def test_a_stop_file_left_behind_stops_no_later_sweep(model_file, serial, tmp_path):
    (tmp_path / ".stop").write_text("")
    rows = gn.sweep(str(model_file), GRID, executor="serial", out=tmp_path)
    assert scores(rows) == scores(serial[1]) and not (tmp_path / ".stop").exists()


# --- a real dask cluster: a scheduler and worker processes on 127.0.0.1 --------------------

@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=":0") as c:
        yield c


def test_dask_cells_equal_serial_and_a_rerun_trains_nothing(cluster, model_file, serial,
                                                            tmp_path):
    _, rows = serial
    address = cluster.scheduler_address
    assert address.startswith("tcp://127.0.0.1:")
    assert scores(gn.sweep(str(model_file), GRID, scheduler=address, out=tmp_path)) == \
        scores(rows)
    before = mtimes(tmp_path)
    again = subprocess.run([sys.executable, "-m", "graphnet", "sweep", str(model_file),
                            "--grid", "lr=0.01,0.05", "--grid", "seed=0,1", "--scheduler",
                            address, "--out", str(tmp_path)], cwd=ROOT, capture_output=True,
                           text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(
                               [str(NO_MATPLOTLIB), str(ROOT)])})
    assert again.returncode == 0, again.stderr
    assert "4 cells, 0 failed" in again.stdout and "[1/4]" not in again.stdout
    assert mtimes(tmp_path) == before


def test_a_dask_executor_object_and_a_killed_dask_worker(cluster, model_file, slow_serial,
                                                         tmp_path):
    from dask.distributed import Client
    with Client(cluster.scheduler_address) as client:
        result = {}
        thread = threading.Thread(target=lambda: result.update(rows=gn.sweep(
            str(model_file), GRID, executor=client.get_executor(), out=tmp_path, **SLOW)))
        thread.start()
        try:
            wait_for_a_cell_in_the_middle(tmp_path, threading_proc(thread))
            pids = client.run(os.getpid)
            os.kill(next(iter(pids.values())), signal.SIGKILL)
        finally:
            thread.join(timeout=180)
    assert not thread.is_alive()
    assert scores(result["rows"]) == scores(slow_serial)


def threading_proc(thread):
    """The poll() of a Popen, for a thread: None while it runs."""
    class Poll:
        def poll(self):
            return None if thread.is_alive() else 0
    return Poll()


def test_the_module_example_runs():
    import doctest
    import importlib
    result = doctest.testmod(importlib.import_module("graphnet.sweep"))
    assert result.attempted > 0 and result.failed == 0
