"""Stacked linear layers collapse into one linear model; one nonlinearity breaks that.

The lecture: y = w^T (W x) = (w^T W) x = w'^T x. Here two and ten dense
layers without activations are multiplied into a single (W, b)
(graphnet.analysis.collapse_dense) and the model's outputs are compared with
x @ W + b; then a relu between the layers makes the same comparison fail.
"""

import numpy as np

import graphnet as gn
from graphnet import analysis
from common import finish, parse_args, pyplot, render, save

args = parse_args("linear_collapse", __doc__)
plt = pyplot()
rng = np.random.default_rng(0)
x = rng.normal(size=(256, 2))

numbers = {}
models = {}
for depth in (2, 10):
    for dtype in ("float64", "float32"):
        m = gn.Model(analysis.mlp(2, [8] * (depth - 1), 1, activation=None,
                                  name=f"linear{depth}"), seed=depth, dtype=dtype)
        numbers[f"linear_{depth}_{dtype}"] = analysis.collapse_error(m, x)
    models[f"linear{depth}"] = m = gn.Model(
        analysis.mlp(2, [8] * (depth - 1), 1, activation=None, name=f"linear{depth}"),
        seed=depth, dtype="float64")
nonlinear = gn.Model(analysis.mlp(2, [8], 1, activation="relu", name="relu2"), seed=2,
                     dtype="float64")
numbers["relu_2_float64"] = analysis.collapse_error(nonlinear, x)
scale = float(np.max(np.abs(nonlinear.predict({"x": x})["out"])))
numbers["relu_2_output_scale"] = scale

print("largest |model(x) - (x @ W + b)| over 256 random inputs:")
for depth in (2, 10):
    print(f"  {depth:2d} dense layers, no activation: {numbers[f'linear_{depth}_float64']:.2e} "
          f"(float64), {numbers[f'linear_{depth}_float32']:.2e} (float32)")
print(f"   2 dense layers with relu between: {numbers['relu_2_float64']:.3f} "
      f"(outputs reach {scale:.3f}): no single linear model")

# A slice through input space: x = (s, 0.5). The linear stacks are straight lines,
# exactly the collapsed model; the relu net bends.
s = np.linspace(-3, 3, 301)
xs = np.stack([s, np.full_like(s, 0.5)], axis=1)
fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
for ax, (label, m) in zip(axes, [("2 linear layers", models["linear2"]),
                                 ("10 linear layers", models["linear10"]),
                                 ("dense -> relu -> dense", nonlinear)]):
    W, b = analysis.collapse_dense(m)
    ax.plot(s, m.predict({"x": xs})["out"][:, 0], lw=3, alpha=0.6, label="the network")
    ax.plot(s, xs @ W[:, 0] + b[0], "k--", lw=1.2, label="x @ W + b (collapsed)")
    err = analysis.collapse_error(m, x)
    ax.set_title(f"{label}\nmax difference {err:.1e}", fontsize=10)
    ax.set_xlabel("x1 (x2 = 0.5)")
axes[0].set_ylabel("output")
axes[0].legend(fontsize=8)
fig.suptitle("Stacked linear layers are one linear model; a nonlinearity is not", fontsize=11, y=1.06)
save(fig, args, "linear_collapse.png")
render(models["linear2"], args, "linear_collapse_graph_linear.png", rankdir="LR")
render(nonlinear, args, "linear_collapse_graph_relu.png", rankdir="LR")
finish(args, numbers)
