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
the wide ones) every noisy training label is fitted. Short under --quick.
"""

import numpy as np

import graphnet as gn
from graphnet import analysis
from graphnet.datasets import load_digits
from common import finish, parse_args, pyplot, save

args = parse_args("double_descent", __doc__)
plt = pyplot()

# --- part 1: random ReLU features ------------------------------------------------
n_train = 100 if args.quick else 200
x_tr, y_tr, x_te, y_te = analysis.regression_task(n_train, 2000, dim=5, noise=0.5, seed=0)
fractions = [0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25, 1.5, 2, 3, 5,
             10, 20] if not args.quick else [0.1, 0.3, 0.5, 0.7, 0.9, 1.0, 1.1, 1.3, 2, 5, 20]
sizes = sorted({max(1, int(round(f * n_train))) for f in fractions})
rf = analysis.random_features_curve(x_tr, y_tr, x_te, y_te, sizes, seeds=3 if args.quick else 9)
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

# --- part 2: MLPs on noisy digits --------------------------------------------------
digits = load_digits()
n_mlp = 150 if args.quick else 300
rng = np.random.default_rng(0)
x_d = digits["train"]["x"][:n_mlp]
y_clean = digits["train"]["y"][:n_mlp]
y_noisy = analysis.noisy_labels(y_clean, 0.2, 10, rng)
widths = [1, 2, 4, 8, 16, 32] if args.quick else [1, 2, 3, 4, 6, 8, 10, 12, 16, 24, 32,
                                                      64, 128]
steps = 600 if args.quick else 3000
mlp = {"widths": widths, "params": [], "train_error": [], "test_error": [], "test_loss": []}
test = digits["test"]
for h in widths:
    model = gn.Model(analysis.mlp(64, [h], 10, activation="relu",
                                  loss="softmax_cross_entropy", name=f"digits_{h}"), seed=0)
    analysis.fit_steps(model, {"x": x_d, "y": y_noisy}, optimizer="adam", lr=1e-2, steps=steps)
    pred_tr = model.predict({"x": x_d})["out"].argmax(1)
    out = model.forward(test)
    mlp["params"].append(model.param_count())
    mlp["train_error"].append(float(np.mean(pred_tr != y_noisy)))
    mlp["test_error"].append(float(np.mean(out["out"].argmax(1) != test["y"])))
    mlp["test_loss"].append(float(out["loss"]))
fits = [p for p, e in zip(mlp["params"], mlp["train_error"]) if e == 0]
mlp["interpolates_from"] = fits[0] if fits else None
mlp_peak = mlp["params"][int(np.argmax(mlp["test_loss"]))]
rise = analysis.rise_peak(mlp["test_error"])
mlp["test_error_peak"] = mlp["params"][rise] if rise is not None else None
print(f"\nMLPs on {n_mlp} digits with 20% of the labels flipped, {steps} full-batch Adam steps:")
for h, p, tr, te, tl in zip(widths, mlp["params"], mlp["train_error"], mlp["test_error"],
                            mlp["test_loss"]):
    print(f"  {h:4d} hidden units  {p:6,d} params  train error {tr:5.1%}  "
          f"test error {te:5.1%}  test loss {tl:6.2f}")
print(f"  the noisy labels are all fitted from {mlp['interpolates_from']} params on; "
      f"test error climbs to a peak at {mlp['test_error_peak']} params, test loss peaks at "
      f"{mlp_peak} params; #train samples = {n_mlp}")

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
left.loglog(sizes, rf["test_mse"], "o-", label="test MSE")
left.loglog(sizes, np.maximum(rf["train_mse"], 1e-6), "s--", ms=3, label="train MSE (floor 1e-6)")
left.axvline(n_train, color="red", ls=":", label=f"p = n = {n_train}")
left.axhline(0.25, color="grey", lw=0.8, label="noise variance")
left.set_xlabel("random ReLU features p")
left.set_title("random features, min-norm least squares", fontsize=10)
left.legend(fontsize=8)
right.semilogx(mlp["params"], mlp["test_error"], "o-", label="test error")
right.semilogx(mlp["params"], mlp["train_error"], "s--", ms=3, label="train error (noisy labels)")
ax2 = right.twinx()
ax2.semilogx(mlp["params"], mlp["test_loss"], "^:", color="tab:purple", label="test loss")
ax2.set_ylabel("test cross-entropy", color="tab:purple")
right.axvline(n_mlp, color="red", ls=":", label=f"#params = #train = {n_mlp}")
if mlp["interpolates_from"]:
    right.axvline(mlp["interpolates_from"], color="black", ls="--", lw=0.8,
                  label="train error reaches 0")
right.set_xlabel("#params (one hidden layer, width " + f"{widths[0]} to {widths[-1]})")
right.set_title(f"MLPs, {n_mlp} digits, 20% labels flipped", fontsize=10)
right.legend(fontsize=7, loc="upper right")
save(fig, args, "double_descent.png")

finish(args, {"random_features": {**rf, "n_train": n_train, "peak": peak,
                                  "best_under": best_under, "best_over": best_over},
              "mlp": {**mlp, "n_train": n_mlp, "steps": steps, "peak_params": mlp_peak}})
