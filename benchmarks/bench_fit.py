"""The fit loop against a bare forward/backward/step loop over the same batches.

    python benchmarks/bench_fit.py [--rounds 41] [--epochs 5] [--beside CHECKOUT]

The bare loop is what a user writes by hand: every epoch one permutation of
the samples from the generator fit uses (``seed=0``), the data taken in that
order, then for each slice of ``batch_size`` rows ``model.forward(feeds,
training=True)``, ``grads = model.backward(out=grads)`` and ``opt.step``;
nothing else. fit does the same and also computes the metrics, runs the
NaN/Inf guard, records the History and calls its callbacks (none here).
Before timing, both train one epoch from the same init and must end with
bit-identical params: the same batches, the same numbers. A second loop,
``bare + loss, accuracy``, also keeps the epoch's loss and accuracy the simple
way (the loss as a float, one argmax per batch), as a user who prints them does.

Times are by the wall clock, BLAS on one thread; the variants run interleaved,
round after round (the first rotating), each round one fit call of
``--epochs`` epochs (its setup included) per variant; the report is the
median per batch and the median over the rounds of the ratio to the bare
loop of the same round. The variants switch fit's
extras off one at a time to show where the overhead goes; ``--beside CHECKOUT``
adds the fit loop of another checkout (its graphnet/train.py on this engine),
for a before and after in one run.

``--instructions`` counts instead what the machine's load cannot change: the
instructions executed (valgrind's callgrind, when installed) by the bare loop
and by fit on the digits config, each in a process that trains 1 and then 6
epochs (after the same warm-up); the difference is 5 epochs' worth. Slow
(about a minute per process).
"""

import argparse
import importlib.util
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")   # before numpy is imported

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import graphnet as gn  # noqa: E402
from graphnet.datasets import load_digits  # noqa: E402

# (hidden units, batch size): the first is bench_mlp.py's digits config, the target
CONFIGS = ((128, 64), (128, 32), (128, 1), (16, 8), (512, 256))
VARIANTS = (("fit (defaults)", {}),
            ("fit, metrics=None", {"metrics": None}),
            ("fit, nan_guard=False", {"nan_guard": False}),
            ("fit, both off", {"metrics": None, "nan_guard": False}))


def digits_mlp(hidden):
    g = gn.Graph("digits")
    x = g.input("x", shape=(64,))
    label = g.input("y", shape=(), dtype="int64")
    h = g.add("relu", g.add("dense", x, units=hidden, name="fc1"))
    g.add("softmax_cross_entropy", g.add("dense", h, units=10, name="logits"), label,
          name="loss")
    g.output("logits")
    return g


def shuffled_epochs(data, epochs, seed=0):
    """Each epoch's arrays in fit's order (one permutation per epoch from
    ``default_rng(seed)``): what the bare loops below share, per epoch, so nothing is
    added to their per-batch work."""
    rng = np.random.default_rng(seed)
    n = len(data["y"])
    for _ in range(epochs):
        order = rng.permutation(n)
        yield n, {k: v[order] for k, v in data.items()}


def bare(model, data, batch_size, epochs, seed=0):
    """The hand-written loop over fit's batches; returns the optimizer's step count."""
    opt = gn.optimizer("adam", lr=1e-3)
    grads = None
    for n, arrays in shuffled_epochs(data, epochs, seed):
        for lo in range(0, n, batch_size):
            model.forward({k: v[lo:lo + batch_size] for k, v in arrays.items()}, training=True)
            grads = model.backward(out=grads)
            opt.step(model.params, grads)
    return opt.step_count


def bare_accuracy(model, data, batch_size, epochs, seed=0):
    """The same loop where the user also keeps the epoch's loss and accuracy the simple way
    (the loss read as a float, one argmax of the logits per batch): what fit's defaults
    stand for."""
    opt = gn.optimizer("adam", lr=1e-3)
    grads = None
    for n, arrays in shuffled_epochs(data, epochs, seed):
        loss = right = 0.0
        for lo in range(0, n, batch_size):
            feeds = {k: v[lo:lo + batch_size] for k, v in arrays.items()}
            outs = model.forward(feeds, training=True)
            grads = model.backward(out=grads)
            opt.step(model.params, grads)
            loss += float(outs["loss"]) * len(feeds["y"])
            right += np.count_nonzero(outs["logits"].argmax(axis=1) == feeds["y"])
    return opt.step_count


def fitted(model, data, batch_size, epochs, train=None, **kw):
    """fit, or ``train.fit`` of another checkout's fit loop (``--beside``) on this engine."""
    opt = gn.optimizer("adam", lr=1e-3)
    fit = model.fit if train is None else (lambda data, **k: train.fit(model, data, **k))
    fit(data, optimizer=opt, epochs=epochs, batch_size=batch_size, progress=False, seed=0, **kw)
    return opt.step_count


def train_module(checkout):
    """graphnet/train.py of another checkout, loaded beside this one's (same engine), so that
    two fit loops are timed in one process."""
    path = Path(checkout) / "graphnet" / "train.py"
    spec = importlib.util.spec_from_file_location("graphnet.train_beside", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_same(graph, data, batch_size):
    """One epoch of each from the same init must give bit-identical params."""
    a, b = gn.Model(graph, seed=0), gn.Model(graph, seed=0)
    bare(a, data, batch_size, 1)
    fitted(b, data, batch_size, 1)
    if not np.array_equal(a.params.flat, b.params.flat):
        raise SystemExit("fit and the bare loop trained different params: not the same batches")


def measure(graph, data, batch_size, epochs, rounds, beside=None):
    """Per variant: the median seconds per batch, and the median over the rounds of its
    ratio to the bare loop of the same round (which a change of load between rounds
    leaves alone)."""
    runs = {"bare": lambda m: bare(m, data, batch_size, epochs),
            "bare + loss, accuracy": lambda m: bare_accuracy(m, data, batch_size, epochs)}
    for label, kw in VARIANTS:
        runs[label] = lambda m, kw=kw: fitted(m, data, batch_size, epochs, **kw)
    if beside is not None:
        runs["fit (defaults), --beside"] = lambda m: fitted(m, data, batch_size, epochs,
                                                            train=beside)
    times = {label: [] for label in runs}
    names = list(runs)
    for r in range(rounds + 1):
        for label in names[r % len(names):] + names[:r % len(names)]:
            model = gn.Model(graph, seed=0)
            t0 = time.perf_counter()
            steps = runs[label](model)
            if r:                                   # round 0 warms up
                times[label].append((time.perf_counter() - t0) / steps)
    ratios = {label: statistics.median(t / b for t, b in zip(times[label], times["bare"]))
              for label in names}
    against = statistics.median(t / b for t, b in zip(times["fit (defaults)"],
                                                       times["bare + loss, accuracy"]))
    return {label: statistics.median(t) for label, t in times.items()}, ratios, against


def instructions(epochs=5):
    """Instructions per batch of the bare loop and of fit (defaults) on the digits config,
    counted by callgrind: (one process training 1 + epochs) minus (one training 1)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    batches = -(-len(load_digits()["train"]["y"]) // 64)
    counts = {}
    for variant in ("bare", "fit"):
        ran = []
        for n in (1, 1 + epochs):
            out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                                  sys.executable, __file__, "--once", variant, str(n)],
                                 capture_output=True, text=True, check=True)
            ran.append(int(re.search(r"Collected : (\d+)", out.stderr).group(1)))
        counts[variant] = (ran[1] - ran[0]) / (epochs * batches)
    print(f"instructions per batch, 64-128-10 MLP, batch_size=64: bare {counts['bare']:,.0f}, "
          f"fit {counts['fit']:,.0f} ({counts['fit'] / counts['bare']:.3f}x)")


def once(data, variant, epochs):
    """One warm-up epoch of each, then ``epochs`` of ``variant`` (for --instructions)."""
    graph = digits_mlp(128)
    bare(gn.Model(graph, seed=0), data, 64, 1)
    fitted(gn.Model(graph, seed=0), data, 64, 1)
    (bare if variant == "bare" else fitted)(gn.Model(graph, seed=0), data, 64, epochs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--configs", type=int, default=len(CONFIGS),
                        help="how many of the configs to run, the digits target first")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions with callgrind instead of timing")
    parser.add_argument("--beside", metavar="CHECKOUT",
                        help="also time the fit loop of another checkout's graphnet/train.py "
                             "(e.g. the code before a change) on this engine")
    parser.add_argument("--once", nargs=2, metavar=("VARIANT", "EPOCHS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.instructions:
        return instructions()
    split = load_digits()["train"]
    data = {"x": split["x"].astype(np.float32), "y": split["y"].astype(np.int64)}
    if args.once:
        return once(data, args.once[0], int(args.once[1]))
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; digits train split "
          f"({len(data['y'])} samples), adam, float32, {args.epochs} epochs per call, median "
          f"of {args.rounds} interleaved rounds by the wall clock; microseconds per batch")
    results = {}
    for hidden, batch_size in CONFIGS[:args.configs]:
        graph = digits_mlp(hidden)
        check_same(graph, data, batch_size)
        epochs = 1 if batch_size == 1 else args.epochs
        result, ratios, against = measure(graph, data, batch_size, epochs, args.rounds,
                                          args.beside and train_module(args.beside))
        print(f"\n64-{hidden}-10 MLP, batch_size={batch_size}")
        print(f"  {'bare forward/backward/step':26s} {result['bare'] * 1e6:8.1f}")
        for label, t in result.items():
            if label != "bare":
                print(f"  {label:26s} {t * 1e6:8.1f}   {ratios[label]:.3f}x")
        print(f"  fit (defaults) against the bare loop keeping loss and accuracy: {against:.3f}x")
        results[(hidden, batch_size)] = result, ratios
    return results


if __name__ == "__main__":
    main()
