"""The fit loop's overhead per batch over a bare forward/backward/step loop.

    python benchmarks/bench_fit.py [--repeat 5]

Both loops train the same model on the same batches; the bare loop slices
fixed batches and does nothing else. fit also shuffles (one copy of the data
per epoch), computes the metrics, runs the NaN/Inf guard and its callbacks.
Times are CPU seconds of this process (``time.process_time``, less disturbed
by other processes than the wall clock), the best of ``--repeat`` rounds in
which every variant runs once, in microseconds per batch; the variants switch
fit's extras off one at a time to show where the overhead goes. BLAS is
pinned to one thread so that its thread pool does not blur the CPU time.
"""

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")   # before numpy is imported

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import graphnet as gn  # noqa: E402
from graphnet.datasets import load_digits  # noqa: E402


def digits_mlp(hidden):
    g = gn.Graph("digits")
    x = g.input("x", shape=(64,))
    label = g.input("y", shape=(), dtype="int64")
    h = g.add("relu", g.add("dense", x, units=hidden, name="fc1"))
    g.add("softmax_cross_entropy", g.add("dense", h, units=10, name="logits"), label,
          name="loss")
    g.output("logits")
    return g


def bare(model, data, batch_size, epochs):
    opt = gn.optimizer("adam", lr=1e-3)
    n = len(data["y"])
    batches = [{k: v[lo:lo + batch_size] for k, v in data.items()}
               for lo in range(0, n, batch_size)]
    t0 = time.process_time()
    grads = None
    for _ in range(epochs):
        for feeds in batches:
            model.forward(feeds, training=True)
            grads = model.backward(out=grads)
            opt.step(model.params, grads)
    return time.process_time() - t0, epochs * len(batches)


def fitted(model, data, batch_size, epochs, **kw):
    opt = gn.optimizer("adam", lr=1e-3)
    t0 = time.process_time()
    model.fit(data, optimizer=opt, epochs=epochs, batch_size=batch_size, progress=False, **kw)
    return time.process_time() - t0, opt.step_count


def measure(graph, data, batch_size, epochs, repeat, variants):
    """Best microseconds per batch of the bare loop and of each fit variant, interleaved."""
    times = {label: [] for label in ["bare"] + [v[0] for v in variants]}
    for _ in range(repeat):
        seconds, steps = bare(gn.Model(graph, seed=0), data, batch_size, epochs)
        times["bare"].append(seconds / steps * 1e6)
        for label, kw in variants:
            seconds, steps = fitted(gn.Model(graph, seed=0), data, batch_size, epochs, **kw)
            times[label].append(seconds / steps * 1e6)
    return {label: min(t) for label, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    data = {k: v for k, v in load_digits()["train"].items()}
    variants = [("fit (defaults)", {}),
                ("fit, shuffle=False", {"shuffle": False}),
                ("fit, metrics=None", {"metrics": None}),
                ("fit, nan_guard=False", {"nan_guard": False}),
                ("fit, all three off", {"shuffle": False, "metrics": None, "nan_guard": False})]
    print(f"digits train split ({len(data['y'])} samples), adam, float32, best of "
          f"{args.repeat}; microseconds per batch")
    for hidden, batch_size in ((128, 32), (128, 1), (16, 8), (512, 256)):
        graph = digits_mlp(hidden)
        epochs = max(1, args.epochs // 4) if batch_size == 1 else args.epochs
        result = measure(graph, data, batch_size, epochs, args.repeat, variants)
        base = result.pop("bare")
        print(f"\n64-{hidden}-10 MLP, batch_size={batch_size}")
        print(f"  {'bare forward/backward/step':28s} {base:9.1f}")
        for label, t in result.items():
            print(f"  {label:28s} {t:9.1f}   overhead {t - base:+8.1f} ({(t / base - 1):+.0%})")


if __name__ == "__main__":
    main()
