"""How far each optimizer gets on the Rosenbrock function from (-1.5, 2) in a fixed budget.

    python benchmarks/bench_rosenbrock.py [--steps 1000]

f(x, y) = (1 - x)^2 + 100 (y - x^2)^2, minimum 0 at (1, 1), f = 12.5 at the
start. Every optimizer runs the same number of steps at each lr of a grid;
a run counts as stable when f never rises above its start on the way (larger
SGD steps fling the point up the valley wall, f ~ 500, before it happens to
land near the floor). The table gives each optimizer's best stable lr and the
f it reaches, and the best lr with no stability condition.
"""

import argparse
import math
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphnet.analysis import final_loss, rosenbrock, trajectory, worst_loss  # noqa: E402

START = (-1.5, 2.0)
GRID = sorted({round(c * 10.0 ** k, 10) for k in range(-5, 1) for c in (1, 2, 5)}
              | {1.2e-3, 1.5e-3})


def run(name, lr, steps):
    """Final f, worst f on the way, and the last point (the same trajectory as the lecture's)."""
    path = trajectory(name, "rosenbrock", lr, steps, start=START)
    return final_loss("rosenbrock", path), worst_loss("rosenbrock", path), path[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    print(f"Rosenbrock from {START} (f = {rosenbrock(START)}), {args.steps} steps, lr grid "
          f"{GRID[0]:g}..{GRID[-1]:g}")
    print(f"{'optimizer':10s} {'stable lr':>10s} {'f':>10s}  {'(x, y)':18s}  "
          f"{'any lr':>8s} {'f':>10s}")
    for name in ("sgd", "momentum", "rmsprop", "adam", "adamw", "adagrad"):
        runs = {lr: run(name, lr, args.steps) for lr in GRID}
        stable = {lr: r for lr, r in runs.items() if r[1] <= rosenbrock(START)}
        lr_s = min(stable, key=lambda lr: stable[lr][0])
        lr_a = min(runs, key=lambda lr: runs[lr][0] if math.isfinite(runs[lr][0]) else math.inf)
        fs, _, p = stable[lr_s]
        print(f"{name:10s} {lr_s:10g} {fs:10.3g}  ({p[0]:.4f}, {p[1]:.4f})  "
              f"{lr_a:8g} {runs[lr_a][0]:10.3g}")


if __name__ == "__main__":
    main()
