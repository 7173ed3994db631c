"""A 4-cell sweep on each executor: serial, processes, a local dask cluster.

    python benchmarks/bench_sweep.py [--epochs 300] [--workers 2] [--checkpoint-every 1]

The cells train examples/models/digits_mlp.json (64-128-10, 1437 digits,
batch 32) for ``--epochs`` epochs over ``lr`` x ``seed`` (2 x 2), each into
a fresh sweep folder, exactly as ``graphnet sweep`` would: a checkpoint
after every epoch, metrics.json, history.json, graph.svg and curves.png.
At the default 300 epochs a cell trains for a few seconds on a quiet
machine, a few times its overhead, as a real sweep's cells do (the whole
benchmark then takes about 30 s).

Times are wall clock (what a person waits for), measured side by side in
one run: serial first, then processes, then dask (starting its cluster is
counted, as a user pays it). For each executor:

- ``train s/cell``: the cells' own fit seconds (metrics.json), mean. On a
  busy or oversubscribed machine it grows with the workers.
- ``overhead s/cell``: what the executor adds per cell, ``(wall * workers
  - sum of train seconds) / cells``: loading the data, evaluating, drawing
  the figures, writing the run folder; for processes and dask also the
  worker processes' start and their import of graphnet, spread over cells.
- ``x serial`` (the target: processes at most 0.70 on 2 cores) and speedup.

``--repeat N`` runs N rounds of all executors in turn and keeps each one's
fastest: on a shared machine the load drifts within a run.

The load average before and after is printed: other work on the machine
takes cores from the workers, and the ratios with it.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import graphnet as gn  # noqa: E402

MODEL = ROOT / "examples" / "models" / "digits_mlp.json"
GRID = {"lr": [0.001, 0.003], "seed": [0, 1]}


def timed(executor, args):
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        rows = gn.sweep(str(MODEL), GRID, executor=executor, workers=args.workers, out=out,
                        epochs=args.epochs, checkpoint_every=args.checkpoint_every)
        wall = time.perf_counter() - start
    assert all(r["error"] is None for r in rows), rows
    return wall, rows


def load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--checkpoint-every", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of all executors in turn; each executor's fastest "
                             "round is shown (the load changes less between neighbours)")
    parser.add_argument("--executors", default="serial,processes,dask",
                        help="comma-separated; serial always runs first (the reference)")
    args = parser.parse_args()
    names = ["serial"] + [n for n in args.executors.split(",") if n and n != "serial"]
    if "dask" in names:
        try:
            import dask.distributed  # noqa: F401
        except ImportError:
            print("dask is not installed (pip install 'graphnet[dask]'): no dask row")
            names.remove("dask")
    before = load()
    results = {}
    for _ in range(args.repeat):
        for name in names:
            wall, rows = timed(name, args)
            if name not in results or wall < results[name][0]:
                results[name] = wall, rows
    print(f"4 cells of {MODEL.name}, {args.epochs} epochs each, {args.workers} workers, "
          f"checkpoint every {args.checkpoint_every} epoch(s), {os.cpu_count()} cores, "
          f"best of {args.repeat} round(s)")
    print(f"load average (1, 5, 15 min) before: {before}; after: {load()}")
    serial = results["serial"][0]
    print(f"{'executor':<10} {'wall s':>7} {'train s/cell':>13} {'overhead s/cell':>16} "
          f"{'x serial':>9} {'speedup':>8}")
    for name, (wall, rows) in results.items():
        workers = 1 if name == "serial" else min(args.workers, len(rows))
        train = sum(r["seconds"] for r in rows)
        overhead = (wall * workers - train) / len(rows)
        print(f"{name:<10} {wall:7.2f} {train / len(rows):13.2f} {overhead:16.2f} "
              f"{wall / serial:9.2f} {serial / wall:8.2f}")


if __name__ == "__main__":
    main()
