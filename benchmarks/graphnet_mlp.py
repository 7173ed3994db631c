"""graphnet's side of the MLP benchmarks: the graph and the loop of the docs.

Apart from bench_mlp.py so that ``rss_child.py graphnet`` imports what graphnet's
training needs and nothing of the benchmark's own harness (argparse, json,
subprocess, statistics, ...), which the numpy side does not import either.
"""

import graphnet as gn
from baselines import init_params

LOSS_OP = {"mse": "mse", "ce": "softmax_cross_entropy"}


def build_graph(sizes, act, loss, name="mlp"):
    """The benchmark MLP as a graphnet Graph: dense layers named fc0, fc1, ..."""
    g = gn.Graph(name)
    h = g.input("x", shape=(sizes[0],))
    if loss == "mse":
        y = g.input("y", shape=(sizes[-1],))
    else:
        y = g.input("y", shape=(), dtype="int64")
    for i, units in enumerate(sizes[1:]):
        h = g.add("dense", h, units=units, name=f"fc{i}")
        if i < len(sizes) - 2:
            h = g.add(act, h)
    g.add(LOSS_OP[loss], h, y, name="loss")
    g.output(h)
    return g


class GraphnetMLP:
    """graphnet on the same params, data and optimizer as the numpy baseline."""

    def __init__(self, sizes, act, loss, x, y, optimizer="adam", lr=1e-3, seed=0):
        self.model = gn.Model(build_graph(sizes, act, loss), seed=seed)
        for i, p in enumerate(init_params(sizes, seed)):
            self.model.params[f"fc{i // 2}.{'weight' if i % 2 == 0 else 'bias'}"][...] = p
        self.opt = gn.optimizer(optimizer, lr=lr)
        self.feeds = {"x": x, "y": y}
        self.out = self.model.outputs[0]

    def step(self):
        loss = float(self.model.forward(self.feeds, training=True)["loss"])
        self.opt.step(self.model.params, self.model.backward())
        return loss

    def predict(self, x):
        return self.model.predict({"x": x})[self.out]
