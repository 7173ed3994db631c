"""Backpropagation is the chain rule, applied in reverse; and why deep sigmoid nets stall.

Part 1, the lecture's chain x -> Dense1 -> Activation1 -> Dense2 -> mse:
every node's output gradient and every param's gradient from backward, next
to central finite differences, and dL/dW of Dense1 once more from the
lecture's chain-rule product with explicit matrices (the d' x d' diagonal and
the d' x d x d' tensor that backpropagation never builds). The graph is
rendered with its gradients overlaid.

Part 2, vanishing gradients: the norm of dL/dweight per layer of a 20-layer
net (32 units a layer) with sigmoid against tanh and relu, at initialization.
"""

import numpy as np

import graphnet as gn
from graphnet import analysis
from common import finish, parse_args, pyplot, render, save

args = parse_args("backprop", __doc__)
plt = pyplot()
rng = np.random.default_rng(0)

# --- part 1: the chain ---------------------------------------------------------
g = gn.Graph("lecture_chain")
x = g.input("x", shape=(3,))
t = g.input("y", shape=(1,))
h = g.add("dense", x, units=4, name="Dense1")
h = g.add("sigmoid", h, name="Activation1")
f = g.add("dense", h, units=1, name="Dense2")
g.add("mse", f, t, name="loss")
g.output(f)
model = gn.Model(g, seed=0, dtype="float64")
feeds = {"x": rng.normal(size=(8, 3)), "y": rng.normal(size=(8, 1))}

pairs = analysis.node_gradients(model, feeds, ["Dense1", "Activation1", "Dense2"])
model.forward(feeds, training=True)
chain = analysis.chain_rule_dense_grad(model, feeds)
grads = model.backward()
table = {key: analysis.relative_error(a, b) for key, (a, b) in pairs.items()}
chain_error = analysis.relative_error(chain, grads["Dense1.weight"])

print("gradient of the loss, backward against central finite differences (float64):")
print(f"  {'with respect to':22s} {'shape':8s} {'|backward|':>11s} {'|numeric|':>11s} "
      f"{'rel. error':>10s}")
for key, (a, b) in pairs.items():
    label = f"{key} (output)" if "." not in key else key
    print(f"  {label:22s} {str(a.shape):8s} {np.linalg.norm(a):11.6f} {np.linalg.norm(b):11.6f} "
          f"{table[key]:10.1e}")
print(f"  dL/dW of Dense1 by the lecture's explicit chain-rule product: relative "
      f"difference to backward {chain_error:.1e}")
model.forward(feeds, training=True)   # the overlay colours each node by its |dL/d output|
path = render(model, args, "backprop_graph.png", overlay="grad", rankdir="LR")

# --- part 2: vanishing gradients -------------------------------------------------
depth, width = 20, 32
batch = {"x": rng.normal(size=(64, width)), "y": rng.normal(size=(64, 1))}
nets = {"sigmoid": "glorot_uniform", "tanh": "glorot_uniform", "relu": "he_normal"}
norms = {}
for act, init in nets.items():
    m = gn.Model(analysis.mlp(width, [width] * depth, 1, activation=act, init=init),
                 seed=0, dtype="float64")
    norms[act] = analysis.layer_grad_norms(m, batch)
ratios = {act: n["fc1"] / n[f"fc{depth}"] for act, n in norms.items()}
print(f"\n||dL/dweight|| in a {depth}-layer net, first hidden layer / last hidden layer:")
for act in nets:
    print(f"  {act:8s} ({nets[act]:14s}) fc1 {norms[act]['fc1']:.1e}, fc{depth} "
          f"{norms[act][f'fc{depth}']:.1e}: ratio {ratios[act]:.1e}")

fig, ax = plt.subplots(figsize=(6, 3.6))
for act, n in norms.items():
    layers = [k for k in n if k != "out"]
    ax.semilogy(range(1, len(layers) + 1), [n[k] for k in layers], "o-", ms=3,
                label=f"{act} ({nets[act]})")
ax.set_xlabel("layer (1 = next to the input)")
ax.set_ylabel("||dL/dweight||")
ax.set_title(f"{depth} layers of {width} units at initialization", fontsize=10)
ax.legend(fontsize=8)
save(fig, args, "backprop_vanishing.png")

finish(args, {"relative_errors": table, "chain_rule_error": chain_error,
              "max_relative_error": max(table.values()),
              "grad_norms": norms, "first_over_last": ratios,
              "graph_rendered": path is not None})
