"""Time one training step of graphnet against the same step written by hand in numpy.

The step: forward, backward and a plain SGD update of a 784-256-256-10 relu MLP with
softmax_cross_entropy (mean over the batch), batch 128, float32. Both versions start
from the same params and do the same math; their steps are interleaved in one process
so that both see the same machine state, with BLAS pinned to one thread so that the
numbers measure the engine's overhead rather than the thread pool.

    python benchmarks/bench_step.py [--steps 200] [--warmup 20] [--batch 128]

Prints the median microseconds per step of each and their ratio (graphnet / numpy).
"""

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

HAVE_THREADPOOLCTL = importlib.util.find_spec("threadpoolctl") is not None
if not HAVE_THREADPOOLCTL:  # only works before numpy is imported
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = "1"

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import graphnet as gn  # noqa: E402

SIZES = (784, 256, 256, 10)
LR = 0.01


def build_model(seed=0):
    g = gn.Graph("mlp")
    h = g.input("x", (SIZES[0],))
    y = g.input("y", (), dtype="int64")
    for i, units in enumerate(SIZES[1:], 1):
        h = g.add("dense", h, units=units, name=f"fc{i}")
        if i < len(SIZES) - 1:
            h = g.add("relu", h)
    g.add("softmax_cross_entropy", h, y, name="loss")
    g.output(h)
    return gn.Model(g, seed=seed, dtype="float32")


def engine_step(model, feeds):
    loss = model.forward(feeds, training=True)["loss"]
    grads = model.backward()
    for key, p in model.params.items():
        p -= LR * grads[key]
    return loss


class NumpyMLP:
    """The same network and step written out by hand."""

    def __init__(self, params):
        self.w = [params[f"fc{i}.weight"].copy() for i in range(1, len(SIZES))]
        self.b = [params[f"fc{i}.bias"].copy() for i in range(1, len(SIZES))]

    def step(self, x, y):
        n = len(y)
        acts = [x]
        h = x
        for i, (w, b) in enumerate(zip(self.w, self.b)):
            h = h @ w + b
            if i < len(self.w) - 1:
                h = np.maximum(h, 0)
            acts.append(h)
        z = acts[-1]
        shifted = z - z.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        sums = exp.sum(axis=1, keepdims=True)
        loss = (np.log(sums).sum() - shifted[np.arange(n), y].sum()) / n
        dz = exp / sums
        dz[np.arange(n), y] -= 1
        dz *= np.float32(1 / n)
        for i in range(len(self.w) - 1, -1, -1):
            a = acts[i]
            dw, db = a.T @ dz, dz.sum(axis=0)
            if i:
                dz = (dz @ self.w[i].T) * (a > 0)
            self.w[i] -= LR * dw
            self.b[i] -= LR * db
        return np.float32(loss)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args(argv)

    limiter = None
    if HAVE_THREADPOOLCTL:
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(limits=1)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], size=args.batch)
    feeds = {"x": x, "y": y}
    model = build_model()
    ref = NumpyMLP(model.params)

    # same math: the first losses agree, and so do the params after a few steps
    losses = [(float(engine_step(model, feeds)), float(ref.step(x, y))) for _ in range(3)]
    drift = max(float(np.abs(model.params["fc1.weight"] - ref.w[0]).max()),
                float(np.abs(model.params["fc3.bias"] - ref.b[2]).max()))
    for _ in range(args.warmup):
        engine_step(model, feeds)
        ref.step(x, y)
    t_engine, t_numpy = [], []
    clock = time.perf_counter_ns
    for i in range(args.steps):  # alternate which goes first, so that neither gains
        for which in ((0, 1) if i % 2 else (1, 0)):
            t0 = clock()
            if which == 0:
                engine_step(model, feeds)
            else:
                ref.step(x, y)
            (t_engine if which == 0 else t_numpy).append((clock() - t0) / 1e3)
    eng, ref_us = statistics.median(t_engine), statistics.median(t_numpy)
    threads = "threadpoolctl" if limiter is not None else "env vars"
    print(f"training step, MLP {'-'.join(map(str, SIZES))} relu, batch {args.batch}, float32, "
          f"BLAS 1 thread ({threads}), median of {args.steps} interleaved steps")
    print(f"  first losses graphnet/numpy: {losses[0][0]:.6f} / {losses[0][1]:.6f}; "
          f"max param difference after 3 steps: {drift:.2e}")
    print(f"  graphnet  {eng:10.1f} us/step   (fastest {min(t_engine):.1f})")
    print(f"  numpy     {ref_us:10.1f} us/step   (fastest {min(t_numpy):.1f})")
    print(f"  ratio     {eng / ref_us:10.3f} (graphnet / numpy, medians)")
    if limiter is not None:
        limiter.restore_original_limits()
    return {"graphnet_us": eng, "numpy_us": ref_us, "first_losses": losses[0], "drift": drift}


if __name__ == "__main__":
    main()
