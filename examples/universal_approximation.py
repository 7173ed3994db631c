"""One hidden layer approximates any function given enough width; depth needs fewer neurons.

Width: dense -> relu -> dense nets with 1 to 256 hidden units, trained with
Adam (full batch) on sin(3x), |x| and a step over [-1, 1]; the test error on
a finer grid against the width, log-log, and the fitted curves. One graphnet
sweep over the dataset option f (the target) and fc1.units, on --executor
(processes by default), with a run folder per cell in DIR/universal_approximation/.
Depth: nets with 1, 2 and 3 hidden relu layers sharing the same total number
of neurons, on a sawtooth with four teeth; how many neurons each depth needs
to bring the error under 1e-2 (best of two initializations per size), as cells
mapped over the same executor.
"""

import sys

import numpy as np

import graphnet as gn
from graphnet import analysis
from common import executor, finish, parse_args, pyplot, save

THRESHOLD = 1e-2
TARGETS = ("sin(3x)", "|x|", "step")


def width(args, x):
    widths, steps = ([1, 4, 16, 64], 600) if args.quick else ([1, 2, 4, 8, 16, 32, 64, 128,
                                                               256], 2000)
    n_test = 500 if args.quick else 1000
    out = args.out / "universal_approximation"
    result = analysis.approximation_widths(TARGETS, widths, steps=steps, n_test=n_test, out=out,
                                           progress=sys.stderr.isatty(), **executor(args))
    errors, curves = {}, {}
    for name in TARGETS:
        errors[name] = result[name]["errors"]
        curves[name] = {w: gn.load(out / run / "model.npz").predict({"x": x})["out"][:, 0]
                        for w, run in zip(widths, result[name]["runs"])}
        print(f"{name:8s} test MSE by width " +
              ", ".join(f"{w}: {e:.1e}" for w, e in zip(widths, errors[name])))
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    for name in errors:
        axes[0].loglog(widths, errors[name], "o-", label=name)
    axes[0].set_xlabel("hidden units (one layer)")
    axes[0].set_ylabel("test MSE")
    axes[0].set_title("error falls as the layer widens", fontsize=10)
    axes[0].legend(fontsize=8)
    shown = widths if len(widths) <= 5 else widths[::2]
    for ax, name in zip(axes[1:], errors):
        for w in shown:
            ax.plot(x[:, 0], curves[name][w], lw=1.2, label=f"{w} units")
        ax.plot(x[:, 0], analysis.TARGETS[name](x)[:, 0], "k--", lw=1, label="target")
        ax.set_title(name, fontsize=10)
    axes[1].legend(fontsize=7)
    save(fig, args, "universal_approximation_width.png")
    return {"widths": widths, "width_errors": errors, "width_steps": steps}


def depth(args):
    if args.quick:
        depths, totals, steps, restarts = [1, 2], [12, 48], 1200, 2
    else:
        depths, totals, steps, restarts = [1, 2, 3], [6, 12, 24, 48, 96], 2000, 2
    cells = [{"target": "sawtooth", "hidden": [max(1, n // d)] * d, "n_train": 400,
              "steps": steps, "seed": s} for d in depths for n in totals
             for s in range(restarts)]
    values = iter(analysis.map_values(analysis.approximation_cell, cells, **executor(args)))
    errors = {d: [min(next(values) for _ in range(restarts)) for _ in totals] for d in depths}
    for d in depths:
        print(f"sawtooth, {d} hidden layer(s): test MSE by total neurons " +
              ", ".join(f"{n}: {e:.1e}" for n, e in zip(totals, errors[d])))
    needed = {d: next((n for n, e in zip(totals, errors[d]) if e < THRESHOLD), None)
              for d in depths}
    for d in depths:
        shown = needed[d] if needed[d] is not None else f"more than {totals[-1]}"
        print(f"  neurons for MSE < {THRESHOLD:g} with {d} hidden layer(s): {shown}")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for d in depths:
        ax.loglog(totals, errors[d], "o-", label=f"{d} hidden layer(s)")
    ax.axhline(THRESHOLD, color="grey", ls=":", lw=1)
    ax.set_xlabel("hidden neurons in total")
    ax.set_ylabel("test MSE")
    ax.set_title("sawtooth, 4 teeth: deeper needs fewer neurons", fontsize=10)
    ax.legend(fontsize=8)
    save(fig, args, "universal_approximation_depth.png")
    return {"totals": totals, "depth_errors": {str(d): e for d, e in errors.items()},
            "neurons_needed": {str(d): n for d, n in needed.items()}, "threshold": THRESHOLD}


def main():
    args = parse_args("universal_approximation", __doc__, sweeps=True)
    x = np.linspace(-1, 1, 400)[:, None].astype(np.float32)
    finish(args, {**width(args, x), **depth(args)})


if __name__ == "__main__":
    main()
