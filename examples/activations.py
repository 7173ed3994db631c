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

numbers = {"activations": names, "derivative_error": {}}
h = 1e-5
xs = x[np.abs(x) > 1e-3]  # away from relu's kink at 0
for name in names:
    up = analysis.activation_table(xs + h, [name])[name][0]
    down = analysis.activation_table(xs - h, [name])[name][0]
    numeric = (up - down) / (2 * h)
    analytic = analysis.activation_table(xs, [name])[name][1]
    numbers["derivative_error"][name] = float(np.max(np.abs(numeric - analytic)))

print("registered activations:", ", ".join(names))
print("largest |f'(x) - finite difference| on [-4, 4]:")
for name in names:
    print(f"  {name:12s} {numbers['derivative_error'][name]:.1e}")

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
