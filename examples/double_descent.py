"""Double descent: test error against model size, through the interpolation threshold.

Part 1, random ReLU features (fast and exact): y is a noisy nonlinear function
of 5 inputs; a model is p random ReLU features max(0, x W + b) fitted with
minimum-norm least squares (np.linalg.lstsq). Below p = n (the number of
training samples) it is least squares, at p = n it just interpolates the
noise, and beyond it it picks the interpolating fit of smallest norm: the test
error rises to a peak at p = n and falls again (the median over a few draws
of the features).

Part 2, MLPs on the digits with 20% of the training labels flipped: one
hidden relu layer of growing width, trained full-batch with Adam until (for
the wide ones) every noisy training label is fitted, several seeds per width.
It is one graphnet sweep (grid fc1.units x seed, dataset options train_size
and label_noise), so the cells run on --executor (processes by default) and
land as run folders in DIR/double_descent_mlp/; a rerun trains only missing
cells. The interpolation threshold is placed where Belkin et al. (2019) put
it for a K-class net: #params = #train samples x K. Short under --quick.
"""

import sys

import numpy as np

from graphnet import analysis
from common import executor, finish, parse_args, pyplot, save


def random_features(args):
    n_train = 100 if args.quick else 200
    x_tr, y_tr, x_te, y_te = analysis.regression_task(n_train, 2000, dim=5, noise=0.5, seed=0)
    fractions = [0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25, 1.5, 2, 3,
                 5, 10, 20] if not args.quick else [0.1, 0.3, 0.5, 0.7, 0.9, 1.0, 1.1, 1.3, 2,
                                                      5, 20]
    sizes = sorted({max(1, int(round(f * n_train))) for f in fractions})
    rf = analysis.random_features_curve(x_tr, y_tr, x_te, y_te, sizes,
                                        seeds=3 if args.quick else 9)
    peak = sizes[int(np.argmax(rf["test_mse"]))]
    best_under = min(e for p, e in zip(sizes, rf["test_mse"]) if p < n_train)
    best_over = min(e for p, e in zip(sizes, rf["test_mse"]) if p > n_train)
    print(f"random ReLU features, {n_train} noisy training samples (noise variance "
          f"{0.5 ** 2:.2f}):")
    for p, tr, te in zip(sizes, rf["train_mse"], rf["test_mse"]):
        mark = "  <- interpolation threshold p = n" if p == n_train else ""
        print(f"  p = {p:5d}  train MSE {tr:9.2e}  test MSE {te:9.3f}{mark}")
    print(f"  test error peaks at p = {peak} (n = {n_train}); best below the threshold "
          f"{best_under:.3f}, best beyond it {best_over:.3f}")
    return {**rf, "n_train": n_train, "peak": peak, "best_under": best_under,
            "best_over": best_over}


def mlps(args):
    n_train, noise = (100, 0.2) if args.quick else (300, 0.2)
    widths = [1, 2, 4, 8, 16, 32] if args.quick else [1, 2, 3, 4, 6, 8, 10, 12, 16, 24, 32,
                                                          64, 128]
    seeds = [0, 1, 2] if args.quick else [0, 1, 2, 3, 4]
    epochs = 400 if args.quick else 3000
    r = analysis.mlp_double_descent(widths, seeds, train_size=n_train, label_noise=noise,
                                    epochs=epochs, out=args.out / "double_descent_mlp",
                                    progress=sys.stderr.isatty(), **executor(args))
    test, train, loss = r["test_error"], r["train_error"], r["test_loss"]
    print(f"\nMLPs on {n_train} digits with {noise:.0%} of the labels flipped, {epochs} "
          f"full-batch Adam steps, {len(seeds)} seeds per width (mean, min-max):")
    for i, (h, p) in enumerate(zip(widths, r["params"])):
        print(f"  {h:4d} hidden units  {p:6,d} params  train error {train['mean'][i]:5.1%}  "
              f"test error {test['mean'][i]:5.1%} ({test['min'][i]:5.1%}-{test['max'][i]:5.1%})"
              f"  test loss {loss['mean'][i]:6.2f}")
    threshold, fitted, peak = r["threshold"], r["interpolates_from"], r["peak"]
    if peak is None:
        verdict = "the mean test error never rises: no peak in this range"
    else:
        verdict = (f"the mean test error climbs to a peak at {peak:,} params, "
                   f"{peak / threshold:.2g}x the threshold")
        if fitted is not None:
            where = "at" if peak == fitted else "below" if peak < fitted else "beyond"
            verdict += f", {where} the first size that fits every noisy label"
    verdict += (f"; the mean test loss peaks at {r['loss_peak']:,} params"
                if r["loss_peak"] is not None else "; the mean test loss never rises")
    print(f"  interpolation threshold #train x #classes = {n_train} x 10 = {threshold:,} "
          f"params; every seed fits every noisy label from {fitted} params on;\n  {verdict}")
    return {**{k: v for k, v in r.items() if k != "rows"}, "n_train": n_train,
            "label_noise": noise, "epochs": epochs, "verdict": verdict}


def plot(args, rf, mlp):
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    sizes, n_train = rf["sizes"], rf["n_train"]
    left.loglog(sizes, rf["test_mse"], "o-", label="test MSE")
    left.loglog(sizes, np.maximum(rf["train_mse"], 1e-6), "s--", ms=3,
                label="train MSE (floor 1e-6)")
    left.axvline(n_train, color="red", ls=":", label=f"p = n = {n_train}")
    left.axhline(0.25, color="grey", lw=0.8, label="noise variance")
    left.set_xlabel("random ReLU features p")
    left.set_title("random features, min-norm least squares", fontsize=10)
    left.legend(fontsize=8)
    params, test = mlp["params"], mlp["test_error"]
    right.semilogx(params, test["mean"], "o-", label=f"test error (mean of {len(mlp['seeds'])} "
                   f"seeds, band: min-max)")
    right.fill_between(params, test["min"], test["max"], alpha=0.25)
    right.semilogx(params, mlp["train_error"]["mean"], "s--", ms=3,
                   label="train error (noisy labels)")
    ax2 = right.twinx()
    ax2.semilogx(params, mlp["test_loss"]["mean"], "^:", color="tab:purple", label="test loss")
    ax2.set_ylabel("test cross-entropy (mean)", color="tab:purple")
    right.axvline(mlp["threshold"], color="red", ls=":",
                  label=f"#params = #train x 10 = {mlp['threshold']:,}")
    if mlp["interpolates_from"]:
        right.axvline(mlp["interpolates_from"], color="black", ls="--", lw=0.8,
                      label="train error reaches 0 (every seed)")
    right.set_xlabel(f"#params (one hidden layer, width {mlp['widths'][0]} to "
                     f"{mlp['widths'][-1]})")
    right.set_title(f"MLPs, {mlp['n_train']} digits, {mlp['label_noise']:.0%} labels flipped",
                    fontsize=10)
    right.legend(fontsize=7, loc="upper right")
    save(fig, args, "double_descent.png")


def main():
    args = parse_args("double_descent", __doc__, sweeps=True)
    rf = random_features(args)
    mlp = mlps(args)
    plot(args, rf, mlp)
    finish(args, {"random_features": rf, "mlp": mlp})


if __name__ == "__main__":
    main()
