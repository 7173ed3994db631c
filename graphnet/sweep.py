"""Sweeps: many training runs over a grid of settings, on local processes or a dask cluster.

A cell of the grid is one ``train_run`` (what ``graphnet train`` does with the
same settings, bit for bit) in a run folder of its own under ``out``; the
rows of ``results.csv`` and ``results.json`` collect their scores. Running
the same sweep again trains only the cells that are missing or unfinished,
resuming their checkpoints, so an interrupted sweep, a dead worker or a
killed machine loses at most the epochs since a cell's last checkpoint.

>>> import graphnet as gn, tempfile
>>> g = gn.Graph("xor"); x, t = g.input("x", shape=(2,)), g.input("y", shape=(1,))
>>> y = g.add("dense", g.add("tanh", g.add("dense", x, units=8, name="fc1")), units=1)
>>> _ = g.add("binary_cross_entropy", y, t, name="loss"); _ = g.output(y)
>>> rows = gn.sweep(g, {"lr": [0.01, 0.1], "fc1.units": [4]}, executor="serial",
...                 out=tempfile.mkdtemp(), dataset="xor", epochs=2)
>>> [(r["lr"], r["fc1.units"], r["run"]) for r in rows]
[(0.01, 4, 'lr=0.01,fc1.units=4'), (0.1, 4, 'lr=0.1,fc1.units=4')]

Executors: ``"serial"`` (in this process), ``"processes"`` (the default: a
``concurrent.futures.ProcessPoolExecutor`` of ``workers`` spawned processes,
one BLAS thread each), ``"dask"`` (a dask.distributed cluster: the running
scheduler at ``scheduler``, or a local cluster of worker processes), or any
``concurrent.futures.Executor``, such as ``Client(...).get_executor()``.

``map_cells(fn, cells, ...)`` is the mechanism under ``sweep``, for sweeps
that are not training runs of a model file: it calls an importable function
on each cell with the same executors, progress bar, failures as outcomes,
dead workers and Ctrl-C.
"""

import concurrent.futures as cf
import contextlib
import csv
import io
import itertools
import math
import multiprocessing
import os
import re
import signal
import sys
import time
from typing import NamedTuple

from .callbacks import Callback
from .errors import GraphnetError, Terminated, did_you_mean, one_line
from .runs import parse_value, read_json, resolve, train_run, write_json
from .util import atomic_write

EXECUTORS = ("serial", "processes", "dask")
TRAINING_KEYS = ("lr", "epochs", "batch_size", "seed", "optimizer")
SCORES = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds")
RETRIES = 3          # fresh process pools after workers died, before a cell is given up
ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
STOP_SECONDS = 10   # for a stopped worker to save its cell and exit, before it is killed
STOP_FILE = ".stop"  # in a sweep's folder while a stopped sweep waits for its cells to save


class SweepError(GraphnetError):
    """A sweep that cannot start: a bad grid key, executor or scheduler address."""


def sweep(model, grid, *, executor=None, out=None, workers=None, scheduler=None,
          progress=False, log=None, checkpoint_every=None, figures=True, **train):
    """Train every cell of ``grid``; return one row per cell, in grid order.

    model: a model file's path, a Graph or a JSON dict. grid: ``{KEY: [values]}``
    where KEY is ``lr``, ``epochs``, ``batch_size``, ``seed``, ``optimizer``,
    ``optimizer.<hyper>``, ``dataset.<option>`` or ``<node>.<attr>``; the cells
    are every combination. train: the settings every cell shares (those of
    ``graphnet.runs.train_run``). out: the sweep folder (default
    runs/<model name>-sweep), one run folder per cell inside. executor,
    workers, scheduler: where cells run (see the module doc). progress: a
    tqdm bar over the cells; log: called with a line per finished cell.
    checkpoint_every, figures: each cell's (see ``train_run``); they change no
    result, so a rerun with other values retrains nothing.

    A row holds the grid keys by name, then ``train_loss``, ``train_accuracy``,
    ``test_loss``, ``test_accuracy``, ``seconds``, ``run`` (the cell's folder,
    relative to out) and ``error`` (None, or why the cell failed: the other
    cells go on).
    """
    say = log or (lambda line: None)
    grid = _grid(grid)
    if isinstance(model, (str, os.PathLike)):
        model = os.path.abspath(model)
    graph, _ = resolve(model, **_cell_settings(train, {}))
    if not isinstance(model, (str, dict)):
        model = graph.to_dict()        # plain data travels to other processes and machines
    _check_keys(grid, graph)
    out = os.path.abspath(out or os.path.join("runs", f"{graph.name}-sweep"))
    cells = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    rows, todo = {}, []
    for index, cell in enumerate(cells):
        name = cell_name(cell)
        settings = _cell_settings(train, cell, os.path.join(out, name))
        try:
            wanted = resolve(model, **settings)[1]
        except GraphnetError:
            wanted = None     # a bad value: the cell runs, fails and says why in its row
        done = read_json(os.path.join(out, name, "metrics.json"))
        if done and wanted and done.get("settings") == wanted:
            rows[index] = _row(cell, name, done)
        else:   # unfinished: resume its checkpoint; finished with other settings: start over
            todo.append((index, cell, name, {**settings, "resume": None if done else "auto",
                                             "checkpoint_every": checkpoint_every,
                                             "figures": figures}))
    os.makedirs(out, exist_ok=True)
    if todo:
        say(f"sweep of {graph.name!r}: {len(cells)} cells, {len(cells) - len(todo)} done "
            f"before, {len(todo)} to train -> {out}/")

    def finished(k, outcome):
        index, cell, name, _ = todo[k]
        rows[index] = _row(cell, name, outcome.value, outcome.error)
        say(_cell_line(rows[index], len(rows), len(cells)))
        write_results(out, [rows[i] for i in sorted(rows)], list(grid))

    stop = os.path.join(out, STOP_FILE)
    _remove(stop)                   # left by a sweep that was stopped before this one
    _map_cells(_train_cell, [(model, settings, stop) for _, _, _, settings in todo],
               executor=executor, workers=workers, scheduler=scheduler, progress=progress,
               desc="sweep", on_result=finished, stop=stop)
    table = [rows[i] for i in range(len(cells))]
    write_results(out, table, list(grid))
    plot_sweep(table, list(grid), os.path.join(out, "sweep.png"))
    return table


def cell_name(cell):
    """A cell's folder: its keys and values, ``lr=0.01,fc1.units=8`` (``run`` without keys)."""
    if not cell:
        return "run"
    text = ",".join(f"{k}={v}" for k, v in cell.items())
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)


def map_cells(fn, cells, *, executor=None, workers=None, scheduler=None, progress=False,
              desc="cells", on_result=None):
    """Run ``fn(cell)`` for every cell on an executor; a list of Outcomes, in cell order.

    The mechanism of every sweep (``sweep`` trains a model file's cells with
    it). fn: a function importable by name (worker processes import it), called
    with one cell; cells: picklable values. executor, workers, scheduler: where
    the cells run (see the module doc). progress: a tqdm bar over the cells,
    labelled ``desc``. on_result: called here with ``(index, outcome)`` as each
    cell finishes, in any order.

    A cell that raises is an Outcome with its error and the others go on. A
    worker process that dies has its cells run again in a fresh pool (up to
    RETRIES times), so fn must be safe to run again. Ctrl-C ends the workers
    (a process pool's cell in ``fit`` saves its finished epochs first; one in
    a dask worker's thread cannot be interrupted: it runs on, or ends with
    its worker when a local cluster closes; ``sweep``'s own cells stop by
    themselves) and raises KeyboardInterrupt here.

    >>> import math
    >>> map_cells(math.sqrt, [4, -1], executor="serial")
    [Outcome(value=2.0, error=None), Outcome(value=None, error='ValueError: math domain error')]
    """
    return _map_cells(fn, cells, executor=executor, workers=workers, scheduler=scheduler,
                      progress=progress, desc=desc, on_result=on_result)


def _map_cells(fn, cells, *, executor, workers, scheduler, progress, desc, on_result,
               stop=None):
    """map_cells; ``stop``: a file that Ctrl-C creates for cells that no signal reaches
    (dask's, a given executor's), which then wait up to STOP_SECONDS to end by themselves
    (sweep's cells look for it before each epoch and save their finished ones)."""
    if not callable(fn):
        raise SweepError(f"map_cells needs a function to call with each cell, got {fn!r}")
    cells = list(cells)
    outcomes = [None] * len(cells)
    bar = _bar(progress, len(cells), desc)
    try:
        with _executor(executor, workers, scheduler, len(cells), stop) as run:
            finishing = run(fn, list(enumerate(cells)))
            try:
                for index, outcome in finishing:
                    outcomes[index] = outcome
                    if bar is not None:
                        bar.update(1)
                    if on_result is not None:
                        on_result(index, outcome)
            finally:   # a Ctrl-C here too stops the cells before their executor closes
                finishing.close()
    finally:
        if bar is not None:
            bar.close()
    return outcomes


class Outcome(NamedTuple):
    """One cell's result: ``value`` (what the cell function returned, None if it failed)
    and ``error`` (None, or why it failed, in one line)."""

    value: object
    error: object = None


def _train_cell(cell):
    """A sweep's cell function: one train_run, its metrics.json data. A stopped sweep's
    cell (its stop file there) ends before its next epoch, its finished ones saved."""
    model, settings, stop = cell
    if os.path.exists(stop):
        raise SweepError("not started: the sweep was stopped")
    try:
        return train_run(model, callbacks=[_StopFile(stop)], **settings).metrics
    except Terminated:
        if not os.path.exists(stop):
            raise                  # SIGTERM (a process pool's worker): as any interrupt
        raise SweepError("stopped with the sweep; its finished epochs are saved") from None


class _StopFile(Callback):
    """Raises Terminated before an epoch once ``path`` exists, so that fit saves the
    finished epochs: a cell in a dask worker's thread cannot be signalled."""

    def __init__(self, path):
        self.path = path

    def on_epoch_begin(self, run):
        if os.path.exists(self.path):
            raise Terminated()


_in_worker = False   # set in the processes executor's workers
_busy = False        # a cell is running in this worker


def _call(fn, cell):
    """Run one cell wherever the executor put it (only this crosses processes)."""
    global _busy
    _busy = True
    try:
        return Outcome(fn(cell))
    except Exception as exc:   # any failure of one cell is its outcome; the others go on
        text = one_line(exc)
        return Outcome(None, text if isinstance(exc, GraphnetError) else
                       f"{type(exc).__name__}: {text}")
    except KeyboardInterrupt:
        if _in_worker:     # the pool is being stopped: the cell has saved what it finished
            os._exit(143)
        raise
    finally:
        _busy = False


def _worker_start():
    """A pool worker leaves Ctrl-C to the sweep's process, which ends the workers with
    SIGTERM: in a cell that raises Terminated (fit saves its finished epochs), idle it exits."""
    global _in_worker
    _in_worker = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _sigterm)


def _sigterm(signum, frame):
    if _busy:
        raise Terminated()
    os._exit(143)


# --- grid and cells ----------------------------------------------------------------

def parse_grid(items):
    """``["lr=0.01,0.1", "fc1.units=8,32"]`` (the command line's --grid) as a grid dict."""
    grid = {}
    for item in items:
        key, sep, values = str(item).partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise SweepError(f"--grid needs KEY=V1,V2,..., got {item!r}")
        if key in grid:
            raise SweepError(f"--grid {key} is given twice; list all its values in one")
        grid[key] = [v.strip() for v in values.split(",")]
    return grid


def _grid(grid):
    if not isinstance(grid, dict):
        raise SweepError(f"grid must be a dict of KEY -> list of values, got "
                         f"{type(grid).__name__}")
    out = {}
    for key, values in grid.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            values = [values]
        values = [parse_value(v) for v in values]
        if not values:
            raise SweepError(f"grid key {key!r} has no values")
        if len({repr(v) for v in values}) != len(values):
            raise SweepError(f"grid key {key!r} lists a value twice: {values}")
        out[str(key)] = values
    return out


def _check_keys(grid, graph):
    nodes = [n for n in graph.nx.nodes]
    for key in grid:
        head, dot, rest = key.partition(".")
        if key in TRAINING_KEYS or (dot and rest and head in ("optimizer", "dataset")):
            continue
        if not dot or not rest:
            raise SweepError(f"grid key {key!r} is none of {', '.join(TRAINING_KEYS)}, "
                             f"optimizer.<hyper>, dataset.<option> or <node>.<attr>"
                             f"{did_you_mean(key, TRAINING_KEYS)}")
        node = key.rpartition(".")[0]
        if node not in nodes:
            raise SweepError(f"grid key {key!r}: model {graph.name!r} has no node {node!r}"
                             f"{did_you_mean(node, nodes)}")


def _cell_settings(train, cell, out=None):
    """train_run's keyword arguments for a cell: the shared settings, the cell's on top."""
    s = dict(train)
    s["optimizer_options"] = dict(s.get("optimizer_options") or {})
    s["dataset_options"] = dict(s.get("dataset_options") or {})
    s["attrs"] = dict(s.get("attrs") or {})
    for key, value in cell.items():
        head, _, rest = key.partition(".")
        if key in TRAINING_KEYS:
            s[key] = value
        elif head == "optimizer":
            s["optimizer_options"][rest] = value
        elif head == "dataset":
            s["dataset_options"][rest] = value
        else:
            s["attrs"][key] = value
    for key in ("optimizer_options", "dataset_options", "attrs"):
        s[key] = s[key] or None
    if out is not None:
        s["out"] = out
    return s


# --- executors -------------------------------------------------------------------------

class _Serial(cf.Executor):
    """Runs each call as it is submitted, in this process: the executor "serial"."""

    def submit(self, fn, /, *args, **kwargs):
        future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            future.set_exception(exc)
        return future


@contextlib.contextmanager
def _executor(executor, workers, scheduler, cells, stop=None):
    """Yield ``run(fn, items)``: for items ``(index, cell)``, an iterator of
    ``(index, Outcome)`` as cells finish (``stop``: see _map_cells)."""
    if scheduler is not None:
        if executor not in (None, "dask"):
            raise SweepError(f"--scheduler is a dask scheduler's address; it does not go "
                             f"with the executor {executor!r}")
        executor = "dask"
    executor = "processes" if executor is None else executor
    if isinstance(executor, cf.Executor):
        yield lambda fn, items: _gather(executor, fn, items, stop=stop)
        return
    if executor not in EXECUTORS:
        raise SweepError(f"executor {executor!r} is none of {', '.join(EXECUTORS)}"
                         f"{did_you_mean(executor, EXECUTORS)}, nor a "
                         f"concurrent.futures.Executor")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise SweepError(f"workers must be a whole number >= 1, got {workers!r}")
    if executor == "serial" or not cells:
        yield lambda fn, items: _gather(_Serial(), fn, items)
    elif executor == "processes":
        yield lambda fn, items: _processes(fn, items, workers or min(os.cpu_count(), cells))
    else:
        with _dask(scheduler, workers) as client:
            pool = client.get_executor()
            yield lambda fn, items: _gather(pool, fn, items, stop=stop)


def _gather(pool, fn, items, lost=None, stop=None):
    """Submit every cell; yield (index, Outcome) as each finishes. On Ctrl-C the cells not
    started are cancelled, after the running ones had up to STOP_SECONDS to end by
    themselves if ``stop`` (a file to create) tells them to. ``lost`` (a list) collects
    the cells whose process died."""
    futures = {pool.submit(_call, fn, cell): index for index, cell in items}
    try:
        for future in cf.as_completed(futures):
            index = futures[future]
            try:
                outcome = future.result()
            except cf.process.BrokenProcessPool:
                if lost is None:
                    raise
                lost.append(index)
                continue
            except Exception as exc:   # the executor gave up on the cell (a dask KilledWorker)
                outcome = Outcome(None, f"{type(exc).__name__}: {one_line(exc)}")
            yield index, outcome
    except BaseException:   # Ctrl-C, or the caller closing this early (see _map_cells)
        if stop is not None:
            try:
                with open(stop, "w"):
                    pass
                cf.wait(futures, timeout=STOP_SECONDS)   # the running cells end by themselves
            except OSError:
                pass          # no stop file: the running cells end with their workers
            finally:
                with contextlib.suppress(OSError):
                    os.remove(stop)
        raise
    finally:
        for future in futures:
            future.cancel()


def _remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _processes(fn, items, workers):
    """Cells on a pool of spawned processes. A worker that dies breaks the pool: a fresh
    pool reruns the cells that were lost (a sweep's cells resume their checkpoints)."""
    spawn = multiprocessing.get_context("spawn")   # safe with threads; the same everywhere
    with _one_blas_thread():   # for the pools' whole life: they start workers on submit
        for attempt in range(RETRIES + 1):
            lost = []
            pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=spawn,
                                          initializer=_worker_start)
            try:
                yield from _gather(pool, fn, items, lost)
            except BaseException:
                _stop(pool)
                raise
            pool.shutdown()
            items = [item for item in items if item[0] in lost]
            if not items:
                return
    for index, _ in items:
        yield index, Outcome(None, f"its worker process died {RETRIES + 1} times")


def _stop(pool):
    """End a process pool now (Ctrl-C): SIGTERM to each worker, whose cell saves its
    finished epochs and exits; a worker still alive after STOP_SECONDS is killed.
    concurrent.futures has no public way to wait for ended workers, so this reads the
    pool's ``_processes``, and without it (another Python) just shuts the pool down."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            process.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for process in processes:
        with contextlib.suppress(OSError, ValueError, AttributeError, AssertionError):
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _one_blas_thread():
    """Processes started meanwhile get one BLAS thread each (the processes share the
    cores already). BLAS reads these variables once, as numpy loads, so they must be
    in the environment when a worker starts, not only when its pool is made."""
    saved = {k: os.environ.get(k) for k in ONE_THREAD}
    os.environ.update({k: "1" for k in ONE_THREAD})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _dask(scheduler, workers):
    """A dask.distributed Client: of the scheduler at ``scheduler``, or of a local cluster
    of worker processes (one thread each) that ends with the sweep."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise SweepError("the dask executor needs dask.distributed, which is not installed; "
                         "install it with pip install 'graphnet[dask]'") from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=10)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SweepError(f"cannot reach the dask scheduler at {scheduler!r}: "
                             f"{one_line(exc)}") from None
        with client:
            yield client
        return
    with LocalCluster(n_workers=workers or os.cpu_count(), threads_per_worker=1,
                      processes=True, host="127.0.0.1", dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        yield client


# --- results -----------------------------------------------------------------------------

def _row(cell, name, metrics, error=None):
    row = dict(cell)
    metrics = metrics or {}
    for split in ("train", "test"):
        scores = metrics.get(split) or {}
        row[f"{split}_loss"] = scores.get("loss")
        row[f"{split}_accuracy"] = scores.get("accuracy")
    row["seconds"] = metrics.get("seconds")
    row["run"] = name
    row["error"] = error
    return row


def write_results(out, rows, keys):
    """results.json (a list of rows) and results.csv (a header, a line per row), atomically."""
    write_json(os.path.join(out, "results.json"), rows)
    columns = [*keys, *SCORES, "run", "error"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    atomic_write(os.path.join(out, "results.csv"),
                 lambda f: f.write(buffer.getvalue().encode()), GraphnetError)


def plot_sweep(rows, keys, path):
    """sweep.png: the test metrics against the first swept key, a line per combination of
    the others; with ``seed`` swept, the mean over seeds and their spread (min to max).
    Returns the path, or None without matplotlib or without a key to plot against."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    axis_keys = [k for k in keys if k != "seed"]
    if not axis_keys:
        return None
    x_key, others = axis_keys[0], axis_keys[1:]
    metrics = [m for m in ("test_loss", "test_accuracy")
               if any(r[m] is not None for r in rows)]
    if not metrics:
        return None
    xs = list(dict.fromkeys(r[x_key] for r in rows))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xs)
    position = {v: (v if numeric else i) for i, v in enumerate(xs)}
    fig = Figure(figsize=(5 * len(metrics), 3.6), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        groups = {}
        for r in rows:
            groups.setdefault(tuple(r[k] for k in others), []).append(r)
        for label, group in groups.items():
            points = []
            for x in xs:
                values = [r[metric] for r in group if r[x_key] == x and r[metric] is not None]
                values = [v for v in values if math.isfinite(v)]
                if values:
                    points.append((position[x], sum(values) / len(values), min(values),
                                   max(values)))
            if not points:
                continue
            px, mean, low, high = zip(*points)
            name = ", ".join(f"{k}={v}" for k, v in zip(others, label)) or None
            line, = ax.plot(px, mean, marker="o", markersize=3, label=name)
            if "seed" in keys:
                ax.fill_between(px, low, high, alpha=0.2, color=line.get_color())
        if numeric and min(xs) > 0 and max(xs) / min(xs) >= 100:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(xs)), [str(v) for v in xs])
        ax.set_xlabel(x_key)
        ax.set_ylabel(metric.replace("_", " ") + (" (mean, min-max over seeds)"
                                                   if "seed" in keys else ""))
        ax.grid(alpha=0.3)
        if others:
            ax.legend(fontsize="small")
    fig.savefig(path)
    return path


# --- helpers -----------------------------------------------------------------------------

def _bar(on, total, desc):
    if not on:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="cell", file=sys.stderr)


def _cell_line(row, done, total):
    if row["error"]:
        return f"[{done}/{total}] {row['run']}: FAILED: {row['error']}"
    text = f"[{done}/{total}] {row['run']}: test loss {row['test_loss']:.4f}"
    if row["test_accuracy"] is not None:
        text += f", accuracy {row['test_accuracy']:.2%}"
    return text + f" ({row['seconds']:.1f} s)"
