"""Draw the images of docs/rendering.md with graphnet's public API.

Run from the repository root: ``python docs/make_images.py`` (needs graphviz's dot).
Every model is seeded, so the images only change when the drawing code does.
"""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # the graphnet of this checkout, not an installed one
import graphnet as gn  # noqa: E402

IMAGES = ROOT / "docs" / "images"


def mlp():
    """The lecture's chain: Dense1 -> Activation1 -> Dense2, trained with mse."""
    g = gn.Graph("mlp")
    x = g.input("x", shape=(4,))
    t = g.input("y", shape=(1,))
    h = g.add("dense", x, units=16, name="dense1")
    h = g.add("elu", h, name="activation1")
    h = g.add("dropout", h, rate=0.2, name="dropout1")
    y = g.add("dense", h, units=1, name="dense2")
    g.add("mse", y, t, name="loss")
    g.output(y)
    return g


def residual(blocks=6, width=32):
    """A deep residual net whose blocks are named block<k>/...: clusters, then collapse."""
    g = gn.Graph("residual")
    h = g.add("dense", g.input("x", shape=(8,)), units=width, name="stem")
    label = g.input("label", shape=(), dtype="int64")
    for k in range(1, blocks + 1):
        a = g.add("relu", g.add("dense", h, units=width, name=f"block{k}/fc1"),
                  name=f"block{k}/act1")
        a = g.add("dropout", a, rate=0.1, name=f"block{k}/drop")
        a = g.add("dense", a, units=width, name=f"block{k}/fc2")
        h = g.add("add", h, a, name=f"block{k}/skip")
    logits = g.add("dense", h, units=10, name="logits")
    g.add("softmax_cross_entropy", logits, label, name="loss")
    g.output(logits)
    return g


def deep(act, layers=12, width=32, seed=0):
    """A deep plain MLP after one forward pass on random data (for the overlays)."""
    g = gn.Graph(f"deep_{act}")
    h = g.input("x", shape=(16,))
    t = g.input("y", shape=(1,))
    for i in range(1, layers + 1):
        h = g.add(act, g.add("dense", h, units=width, name=f"fc{i}"), name=f"{act}{i}")
    y = g.add("dense", h, units=1, name="out")
    g.add("mse", y, t, name="loss")
    g.output(y)
    model = gn.Model(g, seed=seed)
    rng = np.random.default_rng(seed)
    model.forward({"x": rng.normal(size=(256, 16)), "y": rng.normal(size=(256, 1))},
                  training=True)
    return model


def main():
    IMAGES.mkdir(exist_ok=True)
    gn.render(gn.Model(mlp()), IMAGES / "mlp.svg", legend=True)
    gn.render(gn.Model(gn.Graph.from_json(ROOT / "examples" / "models" / "digits_cnn.json")),
              IMAGES / "digits_cnn.svg")
    gn.render(residual(blocks=2), IMAGES / "residual_clusters.svg")
    gn.render(residual(), IMAGES / "residual_collapsed.svg", collapse=True)
    for act in ("sigmoid", "relu"):
        gn.render(deep(act), IMAGES / f"grad_{act}.svg", overlay="grad", collapse=True,
                  rankdir="LR")
    gn.render(deep("relu"), IMAGES / "activation_relu.svg", overlay="activation",
              collapse=True, rankdir="LR")
    for path in sorted(IMAGES.glob("*.svg")):
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
