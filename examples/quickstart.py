"""The smallest complete graphnet program: an MLP learns XOR with plain SGD."""

import numpy as np

import graphnet as gn

g = gn.Graph("xor")
x = g.input("x", shape=(2,))
t = g.input("y", shape=(1,))
h = g.add("dense", x, units=8, name="fc1")
h = g.add("tanh", h)
y = g.add("dense", h, units=1, name="out")
g.add("binary_cross_entropy", y, t, name="loss")
g.output(y)

model = gn.Model(g, seed=0)
print(model.summary())
X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
Y = np.array([[0], [1], [1], [0]], dtype=np.float32)
opt = gn.optimizer("sgd", lr=0.5)
for step in range(2000):
    loss = model.forward({"x": X, "y": Y}, training=True)["loss"]
    opt.step(model.params, model.backward())
pred = model.predict({"x": X})["out"] > 0
print(f"loss {float(loss):.4f}, accuracy {np.mean(pred == (Y > 0.5)):.0%}")
