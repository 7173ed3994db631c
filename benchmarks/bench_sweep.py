"""A 4-cell sweep on each executor: serial, processes, a local dask cluster.

    python benchmarks/bench_sweep.py [--epochs 40] [--workers 2]

The cells train examples/models/digits_mlp.json for ``--epochs`` epochs over
``lr`` x ``seed`` (2 x 2), each into a fresh sweep folder. Times are wall
clock (what a person waits for), measured side by side in one run: serial
first, then processes, then dask (its cluster start counted, as a user pays
it). Per-cell overhead is a sweep's wall time minus the cells' own training
seconds (metrics.json), per cell, on the serial executor: loading the data,
evaluating, writing the run folder. The speedup is serial / executor.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import graphnet as gn  # noqa: E402

MODEL = ROOT / "examples" / "models" / "digits_mlp.json"
GRID = {"lr": [0.001, 0.003], "seed": [0, 1]}


def timed(executor, args, **kw):
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        rows = gn.sweep(str(MODEL), GRID, executor=executor, workers=args.workers, out=out,
                        epochs=args.epochs, **kw)
        wall = time.perf_counter() - start
    assert all(r["error"] is None for r in rows), rows
    return wall, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    serial, rows = timed("serial", args)
    training = sum(r["seconds"] for r in rows)
    results = {"serial": serial, "processes": timed("processes", args)[0]}
    try:
        import dask.distributed  # noqa: F401
        results["dask"] = timed("dask", args)[0]
    except ImportError:
        print("dask is not installed (pip install 'graphnet[dask]'): no dask column")
    print(f"4 cells of {MODEL.name}, {args.epochs} epochs each, {args.workers} workers")
    print(f"per-cell overhead (serial): {(serial - training) / len(rows):.2f} s "
          f"(training itself {training / len(rows):.2f} s per cell)")
    print(f"{'executor':<10} {'wall s':>8} {'x serial':>9} {'speedup':>8}")
    for name, wall in results.items():
        print(f"{name:<10} {wall:8.2f} {wall / serial:9.2f} {serial / wall:8.2f}")


if __name__ == "__main__":
    main()
