"""The loss landscape around a trained net, after Li et al., NeurIPS 2018.

"Visualizing the Loss Landscape of Neural Nets" (Li, Xu, Taylor, Studer,
Goldstein): plot L(theta* + a d1 + b d2) on a grid of (a, b) around the
trained params theta*, with d1 and d2 random Gaussian directions that are
filter-normalized (graphnet.analysis.filter_normalized_direction): for a dense
weight of shape (in, units), each unit's column of the direction is rescaled
to the norm of the same column of theta*. Biases are zeroed in the directions,
as the paper's reference code does with ignore='biasbn'. The loss is the
training loss. A narrow and a wide MLP, trained alike on the digits, side by
side: the wide one sits in a wider, flatter basin.
"""

import numpy as np

import graphnet as gn
from graphnet import analysis
from graphnet.datasets import load_digits
from common import finish, parse_args, pyplot, save

args = parse_args("loss_landscape", __doc__)
plt = pyplot()
digits = load_digits()
n = 500 if args.quick else len(digits["train"]["y"])
train = {k: v[:n] for k, v in digits["train"].items()}
test = digits["test"]
points = 11 if args.quick else 31
epochs = 10 if args.quick else 40
alphas = betas = np.linspace(-1, 1, points)
nets = {"narrow": 12, "wide": 256}

surfaces, numbers = {}, {}
for label, width in nets.items():
    model = gn.Model(analysis.mlp(64, [width], 10, activation="relu",
                                  loss="softmax_cross_entropy", name=f"mlp_{width}"),
                     seed=0, dtype="float64")
    model.fit(train, optimizer=gn.optimizer("adam", lr=1e-2), epochs=epochs, batch_size=64,
              progress=False, seed=0)
    rng = np.random.default_rng(1)
    d1 = analysis.filter_normalized_direction(model.params, rng)
    d2 = analysis.filter_normalized_direction(model.params, rng)
    surface = analysis.loss_surface(model, train, d1, d2, alphas, betas)
    surfaces[label] = surface
    centre = surface[points // 2, points // 2]
    test_acc = float(np.mean(model.predict({"x": test["x"]})["out"].argmax(1) == test["y"]))
    half = np.abs(alphas) <= 0.5
    numbers[label] = {
        "hidden_units": width, "params": model.param_count(),
        "train_loss": float(centre), "test_accuracy": test_acc,
        "mean_rise": analysis.sharpness(surface, alphas, betas),
        "mean_rise_within_0.5": float(np.mean(surface[np.ix_(half, half)]) - centre),
        "max_loss": float(np.max(surface)),
    }
    r = numbers[label]
    print(f"{label:6s} ({width:3d} hidden units, {r['params']:6,d} params): train loss "
          f"{r['train_loss']:.3f}, test accuracy {r['test_accuracy']:.1%}; mean rise of the "
          f"loss over the grid {r['mean_rise']:.2f} (within |a|,|b| <= 0.5: "
          f"{r['mean_rise_within_0.5']:.2f})")

A, B = np.meshgrid(alphas, betas)
top = max(np.max(s) for s in surfaces.values())
levels = np.linspace(0, min(top, 10), 30)
fig = plt.figure(figsize=(11, 8.5))
for i, (label, surface) in enumerate(surfaces.items()):
    ax = fig.add_subplot(2, 2, i + 1)
    cs = ax.contour(A, B, surface, levels=levels, cmap="viridis", linewidths=0.8)
    ax.clabel(cs, cs.levels[::4], fontsize=6, fmt="%.1f")
    ax.plot(0, 0, "r*", ms=8)
    ax.set_title(f"{label}: {nets[label]} hidden units, mean rise "
                 f"{numbers[label]['mean_rise']:.2f}", fontsize=10)
    ax.set_xlabel("a (along d1)")
    ax.set_ylabel("b (along d2)")
    ax3 = fig.add_subplot(2, 2, i + 3, projection="3d")
    ax3.plot_surface(A, B, np.minimum(surface, 10), cmap="viridis", linewidth=0,
                     antialiased=False)
    ax3.set_zlim(0, min(top, 10))
    ax3.set_xlabel("a")
    ax3.set_ylabel("b")
    ax3.set_zlabel("train loss")
fig.suptitle("L(theta* + a d1 + b d2), filter-normalized Gaussian directions, biases "
             "not moved (Li et al. 2018)", fontsize=11)
save(fig, args, "loss_landscape.png")
finish(args, {"grid": points, "epochs": epochs, "train_samples": n, **numbers})
