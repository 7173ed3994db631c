"""Time an Adam step on a deep MLP before saving it and after loading it back.

A checkpoint restores its params into the model's own arrays, which stay views
of one flat buffer, so the fused optimizer step runs after a load as before it.
The two models' steps are interleaved in one process (same machine state).

    python benchmarks/bench_load.py [--layers 100] [--units 16] [--steps 300]

Prints the median microseconds per optimizer step of each and their ratio.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import graphnet as gn  # noqa: E402


def deep_mlp(layers, units):
    g = gn.Graph("deep")
    h = g.input("x", (units,))
    y = g.input("y", (units,))
    for i in range(layers):
        h = g.add("dense", h, units=units, name=f"fc{i}")
    g.add("mse", h, y, name="loss")
    g.output(h)
    return gn.Model(g, seed=0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=100)
    ap.add_argument("--units", type=int, default=16)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args(argv)
    saved = deep_mlp(args.layers, args.units)
    rng = np.random.default_rng(0)
    feeds = {"x": rng.normal(size=(8, args.units)), "y": rng.normal(size=(8, args.units))}
    with tempfile.TemporaryDirectory() as tmp:
        gn.save(saved, Path(tmp) / "deep.npz")
        loaded = gn.load(Path(tmp) / "deep.npz")
    runs = {}
    for name, model in (("before save", saved), ("after load", loaded)):
        model.forward(feeds, training=True)
        runs[name] = (model, gn.optimizer("adam", lr=1e-4), model.backward(), [])
    for _ in range(args.steps):
        for model, opt, grads, times in runs.values():
            t0 = time.perf_counter()
            opt.step(model.params, grads)
            times.append(time.perf_counter() - t0)
    us = {name: statistics.median(r[3]) * 1e6 for name, r in runs.items()}
    print(f"Adam step, {args.layers} dense layers of {args.units} units "
          f"({saved.param_count():,} params), median of {args.steps}:")
    for name, value in us.items():
        print(f"  {name:12s} {value:9.1f} us/step")
    print(f"  ratio        {us['after load'] / us['before save']:9.2f} (after load / before save)")


if __name__ == "__main__":
    main()
