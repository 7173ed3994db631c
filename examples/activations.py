"""The lecture's activation functions and their derivatives, taken from the registry.

Every registered activation is drawn (a plugin's too): its f(x) on the left
and f'(x) as the engine's backward uses it on the right. The derivative is
checked against central differences of f on the plotted points.
"""

import numpy as np

from graphnet import analysis
from common import finish, parse_args, pyplot, save

LECTURE = ["relu", "elu", "softplus", "sigmoid", "tanh"]

args = parse_args("activations", __doc__)
plt = pyplot()
x = np.linspace(-4, 4, 801)
table = analysis.activation_table(x)
names = LECTURE + sorted(n for n in table if n not in LECTURE)

numbers = {"activations": names, "derivative_error": {}, "kinks": {}}
h = 1e-5
for name in names:
    f = lambda z: analysis.activation_table(z, [name])[name][0]  # noqa: E731
    up, mid, down = f(x + h), f(x), f(x - h)
    # at a kink (relu's 0, a hard_sigmoid's corners) the one-sided slopes disagree
    # and f' is one of them by convention: compare only where f is smooth
    smooth = np.abs((up - mid) - (mid - down)) / h < 1e-3
    numeric = (up - down) / (2 * h)
    analytic = analysis.activation_table(x, [name])[name][1]
    numbers["derivative_error"][name] = float(np.max(np.abs(numeric - analytic)[smooth]))
    numbers["kinks"][name] = [float(v) for v in x[~smooth]]

print("registered activations:", ", ".join(names))
print("largest |f'(x) - central difference| on [-4, 4], kinks left out:")
for name in names:
    kinks = numbers["kinks"][name]
    where = f"  (kinks at {', '.join(f'{k:g}' for k in kinks)})" if kinks else ""
    print(f"  {name:12s} {numbers['derivative_error'][name]:.1e}{where}")

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
for name in names:
    y, dy = table[name]
    style = "-" if name in LECTURE else ":"
    left.plot(x, y, style, label=name)
    right.plot(x, dy, style, label=name)
left.set_title("f(x)")
right.set_title("f'(x), as backward uses it")
left.set_ylim(-1.5, 4)
right.set_ylim(-0.1, 1.2)
for ax in (left, right):
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel("x")
left.legend(fontsize=8)
fig.suptitle("Activations from the registry (dotted: not in the lecture)", fontsize=11)
save(fig, args, "activations.png")
finish(args, numbers)
