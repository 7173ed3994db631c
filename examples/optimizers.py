"""SGD, momentum, RMSprop and Adam: paths on 2-D surfaces, learning-rate ranges, digits.

Every path comes from the registered optimizers stepping one 2-vector param
(``gn.optimizer(name, lr=...).step({"p": p}, {"p": grad})``), so the
formulas are the lecture's, as the engine trains with them:
  momentum  m <- beta m + (1 - beta) g;          theta <- theta - lr m
  RMSprop   E <- beta E + (1 - beta) g^2;        theta <- theta - lr g / sqrt(E + eps)
  Adam      momentum and RMSprop, bias-corrected (Kingma and Ba).
For each surface (Rosenbrock's valley, a ravine with curvatures 1 and 100, a
saddle) the learning rate is swept; the paths use each optimizer's best lr.
Then an MLP learns the digits with each optimizer (model.fit, batches of 32).
The lr sweeps (a cell per optimizer and surface) and the four digits runs are
cells mapped over --executor (processes by default), as graphnet sweep's are.
"""

import numpy as np

from graphnet import analysis
from common import executor, finish, parse_args, pyplot, save

NAMES = ["sgd", "momentum", "rmsprop", "adam"]
COLORS = {"sgd": "tab:blue", "momentum": "tab:orange", "rmsprop": "tab:green",
          "adam": "tab:red"}
DIGITS_LR = {"sgd": 0.1, "momentum": 0.1, "rmsprop": 0.001, "adam": 0.001}
TOLERATED = 1e-3  # a run "tolerates" an lr when its final loss is this close to the minimum

def main():
    args = parse_args("optimizers", __doc__, sweeps=True)
    plt = pyplot()
    where = executor(args)
    steps = 500
    lrs = np.logspace(-4, 0.5, 19 if args.quick else 37)
    epochs = 3 if args.quick else 30

    # --- surfaces: lr sweeps and paths ------------------------------------------------
    results = {}
    for name, surf in analysis.SURFACES.items():
        sweep = analysis.lr_sweep(NAMES, name, lrs, steps, **where)
        best = {o: analysis.best_lr(lrs, sweep[o]) for o in NAMES}
        results[name] = {
            "sweep": {o: [float(v) for v in sweep[o]] for o in NAMES},
            "best_lr": best,
            "final_loss": {o: float(np.min(sweep[o])) for o in NAMES},
            "tolerated": {o: analysis.tolerated_range(lrs, sweep[o], TOLERATED) for o in NAMES},
        }
        r = results[name]
        r["path_lr"] = {o: analysis.path_lr(lrs, sweep[o], TOLERATED) for o in NAMES}
        r["paths"] = {o: analysis.trajectory(o, surf, r["path_lr"][o], steps) for o in NAMES}

    print(f"after {steps} steps from the same start, each optimizer at its best lr "
          f"(f - min; lrs tolerated: final f - min < {TOLERATED:g}):")
    for name, r in results.items():
        print(f"  {name} {analysis.SURFACES[name].formula}")
        for o in NAMES:
            span = r["tolerated"][o]
            span = f"lr {span[0]:.2g} to {span[1]:.2g}" if span else "no lr"
            print(f"    {o:9s} best lr {r['best_lr'][o]:<8.3g} f - min {r['final_loss'][o]:.1e}"
                  f"   tolerates {span}")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (name, r) in zip(axes, results.items()):
        surf = analysis.SURFACES[name]
        X, Y, Z = analysis.grid(surf)
        levels = np.quantile(Z, np.linspace(0.01, 0.95, 25))
        ax.contour(X, Y, Z, levels=np.unique(levels), cmap="Greys", linewidths=0.6)
        for i, o in enumerate(NAMES):
            p = r["paths"][o]
            end = analysis.final_loss(surf, p)
            ax.plot(p[:, 0], p[:, 1], ".-", ms=2, lw=1, color=COLORS[o], zorder=10 - i,
                    label=f"{o} (lr {r['path_lr'][o]:.2g}): {end:.0e}")
        ax.plot(*surf.start, "k*", ms=10)
        ax.set_xlim(surf.extent[:2])
        ax.set_ylim(surf.extent[2:])
        ax.set_title(f"{name}: {surf.formula}", fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{steps} steps from the star; each optimizer at the smallest lr that ends "
                 f"within {TOLERATED:g} (or 10x its best) of the minimum; legend: f - min at "
                 f"the end", fontsize=10)
    save(fig, args, "optimizers_paths.png")

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    for ax, (name, r) in zip(axes, results.items()):
        for o in NAMES:
            v = np.array(r["sweep"][o])
            top = 1e3
            shown = np.where(np.isfinite(v), np.minimum(v, top), top)
            ax.loglog(lrs, np.maximum(shown, 1e-16), "o-", ms=3, color=COLORS[o], label=o)
        ax.axhline(TOLERATED, color="grey", ls=":", lw=1)
        ax.set_xlabel("learning rate")
        ax.set_ylabel(f"f - min after {steps} steps")
        ax.set_title(f"{name} (top row: diverged)", fontsize=10)
    axes[0].legend(fontsize=8)
    save(fig, args, "optimizers_lr_sweep.png")

    # --- digits: training curves -----------------------------------------------------
    cells = [{"optimizer": o, "lr": DIGITS_LR[o], "epochs": epochs} for o in NAMES]
    curves = dict(zip(NAMES, analysis.map_values(analysis.digits_curve, cells, **where)))
    print(f"digits, 64-64-10 relu MLP, batches of 32, {epochs} epochs:")
    for o in NAMES:
        print(f"  {o:9s} lr {DIGITS_LR[o]:<6g} train loss {curves[o]['loss'][-1]:.3f}  "
              f"test loss {curves[o]['val_loss'][-1]:.3f}  "
              f"test accuracy {curves[o]['val_accuracy'][-1]:.1%}")

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for o in NAMES:
        e = np.arange(1, epochs + 1)
        left.semilogy(e, curves[o]["loss"], "-", color=COLORS[o], label=f"{o} (lr {DIGITS_LR[o]:g})")
        left.semilogy(e, curves[o]["val_loss"], "--", color=COLORS[o])
        right.plot(e, curves[o]["val_accuracy"], "-", color=COLORS[o], label=o)
    left.set_title("loss (solid: train, dashed: test)", fontsize=10)
    right.set_title("test accuracy", fontsize=10)
    for ax in (left, right):
        ax.set_xlabel("epoch")
    left.legend(fontsize=8)
    save(fig, args, "optimizers_digits.png")

    finish(args, {
        "steps": steps, "lrs": [float(v) for v in lrs], "tolerance": TOLERATED,
        "surfaces": {n: {k: v for k, v in r.items() if k != "paths"} for n, r in results.items()},
        "digits": {o: {"lr": DIGITS_LR[o], "train_loss": c["loss"][-1],
                       "test_loss": c["val_loss"][-1], "test_accuracy": c["val_accuracy"][-1]}
                   for o, c in curves.items()},
        "epochs": epochs,
    })


if __name__ == "__main__":
    main()
