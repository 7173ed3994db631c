"""Training-step speed of graphnet against hand-written numpy (and PyTorch, JAX).

One step is forward, the loss value, backward and one optimizer update, on a
fixed batch; graphnet's is the loop of the docs, ``model.forward(feeds,
training=True); opt.step(model.params, model.backward())``. The engines run
interleaved in one process, round after round, timed by the wall clock with
BLAS (and XLA) on one thread, so that a noisy shared machine slows them alike;
the report gives each engine's median time per step and its ratio to the
numpy baseline. JAX has two columns: ``jax`` reads the loss back every step,
``jax_device`` leaves it on the device and waits once per round. ``numpy_min``
is the step in the fewest numpy calls we know how to write by hand (see
baselines.NumpyFewestCallsMLP): what the calls themselves cost, the floor of
any engine that runs on them.

    python benchmarks/bench_mlp.py                      # all four configs
    python benchmarks/bench_mlp.py --configs tiny digits --json out.json
    python benchmarks/bench_mlp.py --threads 4          # BLAS threads (default 1)
    python benchmarks/bench_mlp.py --memory             # peak RSS, mnist-like
    python benchmarks/bench_mlp.py --scaling docs/scaling.png
    python benchmarks/bench_mlp.py --plot docs/performance_steps.png   # the step times drawn

PyTorch and JAX are used only when importable (never a dependency).
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import graphnet as gn  # noqa: E402
from baselines import (JaxDeviceMLP, JaxMLP, NumpyFewestCallsMLP, NumpyMLP, TorchMLP,  # noqa: E402
                       make_data)
from graphnet_mlp import GraphnetMLP  # noqa: E402
from rss_child import measure as measure_rss  # noqa: E402

CONFIGS = {
    # name: layer sizes, hidden activation, batch, loss, rounds
    "tiny": ([1, 64, 64, 1], "tanh", 32, "mse", 41),
    "digits": ([64, 128, 10], "relu", 64, "ce", 41),
    "mnist": ([784, 256, 256, 10], "relu", 128, "ce", 31),
    "wide": ([1024, 4096, 4096, 10], "relu", 256, "ce", 7),
}
def has_optimizer(name):
    try:
        gn.optimizer(name)
        return True
    except gn.GraphnetError:
        return False


ENGINES = {"numpy": NumpyMLP, "numpy_min": NumpyFewestCallsMLP, "graphnet": GraphnetMLP,
           "torch": TorchMLP, "jax": JaxMLP,
           "jax_device": JaxDeviceMLP}


def available(name):
    """Whether an optional engine is installed (without importing it yet)."""
    import importlib.util
    mods = {"torch": ["torch"], "jax": ["jax", "optax"], "jax_device": ["jax", "optax"]}
    return all(importlib.util.find_spec(m) is not None for m in mods.get(name, []))


def blas_threads(n):
    """Pin BLAS (and torch's and XLA's thread pools) to n threads for the whole run."""
    if n == 1 and "jax" not in sys.modules:
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                           "intra_op_parallelism_threads=1")
    try:
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(limits=n)
    except ImportError:
        limiter = contextlib.nullcontext()
    if "torch" in sys.modules or available("torch"):
        try:
            import torch
            torch.set_num_threads(n)
        except ImportError:
            pass
    return limiter


CLOCKS = {"wall": time.perf_counter, "process": time.process_time}
CLOCK = "wall"


def nothing():
    pass


def time_interleaved(fns, rounds, min_round_s=0.02, warmup=3, syncs=None):
    """Median seconds per call of each fn, measured round-robin by one clock.

    Each round calls every fn ``k`` times in a row (``k`` chosen once so a
    round of each lasts about ``min_round_s``), then its ``syncs`` entry (for
    an engine that computes asynchronously: the wait is timed too), and
    records the mean. The clock is the wall clock by default: it counts every
    thread an engine computes on, and interleaving spreads the load of other
    processes over all engines alike.
    """
    syncs = syncs or {}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        syncs.get(name, nothing)()
    reps = {}
    for name, fn in fns.items():
        sync = syncs.get(name, nothing)
        t = time.perf_counter()
        for _ in range(3):
            fn()
        sync()
        one = (time.perf_counter() - t) / 3
        reps[name] = max(1, int(min_round_s / max(one, 1e-7)))
    samples = {name: [] for name in fns}
    names = list(fns)
    clock = CLOCKS[CLOCK]
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
        for name in order:
            fn, k, sync = fns[name], reps[name], syncs.get(name, nothing)
            t = clock()
            for _ in range(k):
                fn()
            sync()
            samples[name].append((clock() - t) / k)
    return {name: statistics.median(s) for name, s in samples.items()}, samples


def check_same_loss(engines, steps=3):
    """The engines start from the same params and data: their losses over the first
    steps must agree (the later ones only if the gradients and the updates do too)."""
    losses = {name: [float(e.step()) for _ in range(steps)] for name, e in engines.items()}
    for k, ref in enumerate(losses["numpy"]):
        for name, values in losses.items():
            if abs(values[k] - ref) > 1e-3 * max(1.0, abs(ref)):
                raise SystemExit(f"{name} computes loss {values[k]} at step {k + 1} but numpy "
                                 f"{ref}: not the same model")
    return losses


def bench_steps(configs, engines, optimizer, rounds_scale=1.0):
    results = {}
    for cname in configs:
        sizes, act, batch, loss, rounds = CONFIGS[cname]
        x, y = make_data(sizes, batch, loss)
        made = {e: ENGINES[e](sizes, act, loss, x, y, optimizer=optimizer) for e in engines}
        check_same_loss(made)
        rounds = max(3, int(rounds * rounds_scale))
        min_round = 0.0 if cname == "wide" else 0.02
        med, _ = time_interleaved({e: m.step for e, m in made.items()}, rounds,
                                  min_round_s=min_round, warmup=1 if cname == "wide" else 3,
                                  syncs={e: m.sync for e, m in made.items()
                                         if hasattr(m, "sync")})
        results[cname] = {"sizes": sizes, "activation": act, "batch": batch, "loss": loss,
                          "rounds": rounds, "median_s": med,
                          "ratio_to_numpy": {e: med[e] / med["numpy"] for e in med}}
        print_row(cname, results[cname])
        del made
    return results


def print_row(cname, r):
    parts = [f"{cname:7s}"]
    for e, t in r["median_s"].items():
        parts.append(f"{e} {fmt_time(t):>9s} ({r['ratio_to_numpy'][e]:.2f}x)")
    print("  ".join(parts), flush=True)


def fmt_time(t):
    return f"{t * 1e6:.0f} us" if t < 1e-3 else f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def bench_digits_extra(engines, optimizer):
    """predict() on the digits test split, and fit() seconds per epoch on its train split."""
    from graphnet.datasets import load_digits
    data = load_digits()
    xtr, ytr = data["train"]["x"].astype(np.float32), data["train"]["y"].astype(np.int64)
    xte = data["test"]["x"].astype(np.float32)
    sizes, act, batch, loss, _ = CONFIGS["digits"]
    out = {}
    made = {e: ENGINES[e](sizes, act, loss, xtr[:batch], ytr[:batch], optimizer=optimizer)
            for e in engines}
    med, _ = time_interleaved({e: (lambda m=m: m.predict(xte)) for e, m in made.items()}, 21)
    out["predict_s"] = med
    out["predict_rows"] = len(xte)
    line = "  ".join(f"{e} {fmt_time(t)}" for e, t in med.items())
    print(f"predict digits test ({len(xte)} rows): {line}", flush=True)
    # fit: 5 epochs per call (its setup shared), against the same shuffled batches
    # stepped by hand with the numpy baseline; per epoch, median of 5 calls
    epochs, clock = 5, CLOCKS[CLOCK]
    model = GraphnetMLP(sizes, act, loss, xtr, ytr, optimizer=optimizer).model
    opt = gn.optimizer(optimizer, lr=1e-3)
    base = NumpyMLP(sizes, act, loss, xtr[:batch], ytr[:batch], optimizer=optimizer)
    rng = np.random.default_rng(0)

    def numpy_fit():
        for _ in range(epochs):
            order = rng.permutation(len(xtr))
            for s in range(0, len(xtr), batch):
                idx = order[s:s + batch]
                base.x, base.y = xtr[idx], ytr[idx]
                base.rows = np.arange(len(idx))
                base.step()

    def graphnet_fit():
        model.fit({"x": xtr, "y": ytr}, optimizer=opt, epochs=epochs, batch_size=batch,
                  progress=False)

    times = {"numpy": [], "graphnet": []}
    graphnet_fit()
    for _ in range(5):
        for name, fn in (("numpy", numpy_fit), ("graphnet", graphnet_fit)):
            t = clock()
            fn()
            times[name].append((clock() - t) / epochs)
    out["fit_epoch_s"] = {k: statistics.median(v) for k, v in times.items()}
    f = out["fit_epoch_s"]
    print(f"fit digits, per epoch ({len(xtr)} rows, batch {batch}, metrics and NaN guard on): "
          f"graphnet {fmt_time(f['graphnet'])}, numpy loop {fmt_time(f['numpy'])} "
          f"({f['graphnet'] / f['numpy']:.2f}x)", flush=True)
    return out


def bench_phases(configs, optimizer, rounds=15, steps=100):
    """graphnet's step split into its phases (forward with the loss read, backward,
    optimizer update): the median over rounds of each phase's mean by the wall clock."""
    out = {}
    clock = time.perf_counter
    for cname in configs:
        sizes, act, batch, loss, _ = CONFIGS[cname]
        x, y = make_data(sizes, batch, loss)
        m = GraphnetMLP(sizes, act, loss, x, y, optimizer=optimizer)
        model, opt, feeds = m.model, m.opt, m.feeds
        for _ in range(20):
            m.step()
        phases = {"forward": [], "backward": [], "update": []}
        for _ in range(rounds):
            f = b = u = 0.0
            for _ in range(steps):
                t0 = clock()
                float(model.forward(feeds, training=True)["loss"])
                t1 = clock()
                grads = model.backward()
                t2 = clock()
                opt.step(model.params, grads)
                t3 = clock()
                del grads
                f, b, u = f + t1 - t0, b + t2 - t1, u + t3 - t2
            for k, v in zip(phases, (f, b, u)):
                phases[k].append(v / steps)
        out[cname] = {k: statistics.median(v) for k, v in phases.items()}
        print(f"phases {cname:7s} " + "  ".join(f"{k} {fmt_time(v)}" for k, v in
                                                  out[cname].items()), flush=True)
    return out


def bench_memory(engines, optimizer, steps=50):
    """Peak RSS of training mnist-like, each engine in a fresh subprocess (the numpy
    one imports numpy only; graphnet's includes networkx, pluggy and the rest), and
    what training added to the RSS after the imports."""
    out = {}
    for e in engines:
        peak, imported = measure_rss(e, optimizer, steps)
        out[e] = {"peak_bytes": peak * 1024, "after_imports_bytes": imported * 1024,
                  "training_bytes": (peak - imported) * 1024}
    base = out["numpy"]
    mib = 2.0 ** 20
    line = "  ".join(f"{e} {v['peak_bytes'] / mib:.1f} MiB ({v['peak_bytes'] / base['peak_bytes']:.2f}x)"
                     for e, v in out.items())
    print(f"peak RSS training mnist-like: {line}", flush=True)
    line = "  ".join(f"{e} {v['training_bytes'] / mib:.1f} MiB "
                     f"({v['training_bytes'] / base['training_bytes']:.2f}x)"
                     for e, v in out.items())
    print(f"  of which training, over the RSS after imports: {line}", flush=True)
    return out


def bench_scaling(optimizer, path=None, quick=False):
    """Step time and ratio to numpy against width (depth 2 hidden) and depth (width 64)."""
    widths = [64, 128, 256, 512, 1024, 2048, 4096]
    depths = [2, 4, 8, 16, 32, 64]
    if quick:
        widths, depths = widths[:4], depths[:3]
    batch = 64
    rows = {"width": [], "depth": []}
    for kind, values in (("width", widths), ("depth", depths)):
        for v in values:
            sizes = [v] * 3 if kind == "width" else [64] * (v + 1)
            sizes = sizes + [10]
            x, y = make_data(sizes, batch, "ce")
            made = {e: ENGINES[e](sizes, "relu", "ce", x, y, optimizer=optimizer)
                    for e in ("numpy", "graphnet")}
            rounds = 5 if kind == "width" and v >= 2048 else 15
            med, _ = time_interleaved({e: m.step for e, m in made.items()}, rounds,
                                      min_round_s=0.02, warmup=2)
            nodes = len(made["graphnet"].model.nodes)
            rows[kind].append({kind: v, "nodes": nodes, "numpy_s": med["numpy"],
                               "graphnet_s": med["graphnet"],
                               "ratio": med["graphnet"] / med["numpy"],
                               "overhead_per_node_s": (med["graphnet"] - med["numpy"]) / nodes})
            r = rows[kind][-1]
            print(f"{kind} {v:5d}: numpy {fmt_time(r['numpy_s']):>9s}  graphnet "
                  f"{fmt_time(r['graphnet_s']):>9s}  ratio {r['ratio']:.2f}  overhead/node "
                  f"{r['overhead_per_node_s'] * 1e6:+.1f} us", flush=True)
    if path:
        plot_scaling(rows, path)
    return rows


def plot_scaling(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for col, kind in enumerate(("width", "depth")):
        xs = [r[kind] for r in rows[kind]]
        ax = axes[0, col]
        ax.loglog(xs, [r["numpy_s"] * 1e3 for r in rows[kind]], "o-", label="numpy (by hand)")
        ax.loglog(xs, [r["graphnet_s"] * 1e3 for r in rows[kind]], "s-", label="graphnet")
        ax.set_xscale("log", base=2)
        ax.set_ylabel("ms per training step")
        ax.set_title(f"step time against {kind}" + (" (2 hidden layers)" if kind == "width"
                                                    else " (width 64)"))
        ax.legend()
        ax = axes[1, col]
        ax.semilogx(xs, [r["ratio"] for r in rows[kind]], "o-", color="C2")
        ax.set_xscale("log", base=2)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_ylabel("graphnet / numpy")
        ax.set_xlabel(kind + (" (units per hidden layer)" if kind == "width"
                              else " (hidden layers)"))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


LABELS = {"numpy": "numpy by hand", "numpy_min": "numpy, fewest calls", "graphnet": "graphnet",
          "torch": "PyTorch eager", "jax": "JAX jit, loss read every step",
          "jax_device": "JAX jit, loss on the device"}


def plot_steps(steps, path):
    """Each engine's step time per config, as a multiple of the numpy baseline's (log axis)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    configs = list(steps)
    engines = list(steps[configs[0]]["median_s"])
    fig, ax = plt.subplots(figsize=(10, 1.2 + 1.1 * len(configs)))
    height = 0.8 / len(engines)
    for k, e in enumerate(engines):
        ys = [c + (k - (len(engines) - 1) / 2) * height for c in range(len(configs))]
        ratios = [steps[c]["ratio_to_numpy"][e] for c in configs]
        ax.barh(ys, ratios, height, label=LABELS.get(e, e), color=f"C{k}")
        for y, c, r in zip(ys, configs, ratios):
            ax.text(r * 1.03, y, fmt_time(steps[c]["median_s"][e]), va="center", fontsize=7)
    ax.set_xscale("log")
    ticks = [t for t in (0.25, 0.5, 1, 2, 4, 8, 16) if t <= 2 * max(
        r for c in configs for r in steps[c]["ratio_to_numpy"].values())]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.set_yticks(range(len(configs)), [f"{c}\nbatch {steps[c]['batch']}" for c in configs])
    ax.invert_yaxis()
    ax.set_xlabel("training step time / numpy by hand (log scale; labels: time per step)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


def markdown(results):
    """The step table of a --json file as Markdown (for docs/performance.md)."""
    steps = results["steps"]
    engines = list(next(iter(steps.values()))["median_s"])
    head = "| config | " + " | ".join(engines) + " |"
    lines = [head, "|" + "---|" * (len(engines) + 1)]
    for cname, r in steps.items():
        sizes = "-".join(map(str, r["sizes"]))
        cells = [f"{fmt_time(r['median_s'][e])} ({r['ratio_to_numpy'][e]:.2f}x)" for e in engines]
        lines.append(f"| {cname} {sizes} {r['activation']}, batch {r['batch']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine():
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    blas = "?"
    with contextlib.suppress(Exception):
        from threadpoolctl import threadpool_info
        info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if info:
            blas = f"{info[0]['internal_api']} {info[0]['version']} ({info[0].get('architecture')})"
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "numpy": np.__version__, "blas": blas}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    ap.add_argument("--engines", nargs="+", choices=list(ENGINES), default=None,
                    help="default: numpy, graphnet, and torch/jax when installed")
    ap.add_argument("--optimizer", choices=("adam", "sgd"), default=None,
                    help="default adam when graphnet has it, else sgd")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    ap.add_argument("--clock", choices=list(CLOCKS), default="wall",
                    help="wall: elapsed time (default), process: CPU time of all threads")
    ap.add_argument("--rounds", type=float, default=1.0, help="scale the number of rounds")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--no-extra", action="store_true", help="skip predict and fit on digits")
    ap.add_argument("--memory", action="store_true", help="also measure peak RSS (mnist-like)")
    ap.add_argument("--phases", action="store_true",
                    help="also time graphnet's forward, backward and update apart")
    ap.add_argument("--scaling", nargs="?", const="", default=None, metavar="PNG",
                    help="also time width and depth sweeps (and plot them to PNG)")
    ap.add_argument("--plot", metavar="PNG", help="draw the step times per config to PNG")
    ap.add_argument("--quick", action="store_true", help="fewer rounds and sweep points")
    ap.add_argument("--markdown", metavar="JSON", help="print the table of a --json file")
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return None
    optimizer = args.optimizer or ("adam" if has_optimizer("adam") else "sgd")
    global CLOCK
    CLOCK = args.clock
    engines = args.engines or [e for e in ENGINES if available(e)]
    if "numpy" not in engines:
        engines = ["numpy"] + engines
    info = machine()
    print(f"{info['date']}; {info['cpu']}, {info['nproc']} cpus; python {info['python']}, "
          f"numpy {info['numpy']}, BLAS {info['blas']}, {args.threads} BLAS thread(s); "
          f"optimizer {optimizer}; {CLOCK} clock", flush=True)
    scale = args.rounds * (0.3 if args.quick else 1.0)
    results = {"machine": info, "threads": args.threads, "optimizer": optimizer,
               "clock": CLOCK}
    with blas_threads(args.threads):
        results["steps"] = bench_steps(args.configs, engines, optimizer, scale)
        if not args.no_extra:
            results["digits"] = bench_digits_extra(engines, optimizer)
        if args.phases:
            results["phases"] = bench_phases(args.configs, optimizer)
        if args.scaling is not None:
            results["scaling"] = bench_scaling(optimizer, args.scaling or None, args.quick)
    if args.plot:
        plot_steps(results["steps"], args.plot)
    if args.memory:
        results["memory_rss_bytes"] = bench_memory(["numpy", "graphnet", "graphnet_fit"], optimizer)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
