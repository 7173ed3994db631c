"""Gradient checking: backward against central finite differences, in float64.

>>> report = gradcheck(model, {"x": X, "y": Y})   # doctest: +SKIP
>>> report.ok, report.max_error                    # doctest: +SKIP
(True, 3.1e-10)
"""

from dataclasses import dataclass, field

import numpy as np


@dataclass
class GradcheckReport:
    """What gradcheck found. ``errors`` maps each param (and input) to its worst
    relative error ``|analytic - numeric| / max(|analytic|, |numeric|, floor)``;
    ``buffers`` names the model's non-trainable arrays, held fixed and not checked."""

    ok: bool
    max_error: float
    errors: dict = field(default_factory=dict)
    worst: str = None
    tolerance: float = 1e-6
    checked: int = 0
    buffers: list = field(default_factory=list)

    def __str__(self):
        width = max([len(k) for k in [*self.errors, *self.buffers]] + [4])
        lines = [f"{'name'.ljust(width)}  worst relative error"]
        for k, v in self.errors.items():
            flag = "" if v <= self.tolerance else "  <-- above tolerance"
            lines.append(f"{k.ljust(width)}  {v:.3e}{flag}")
        for k in self.buffers:
            lines.append(f"{k.ljust(width)}  (buffer, not trained: not checked)")
        verdict = "OK" if self.ok else "FAILED"
        lines.append(f"{verdict}: max error {self.max_error:.3e} (tolerance {self.tolerance:g}) "
                     f"over {self.checked} checked entries")
        return "\n".join(lines)


def gradcheck(model, feeds, loss=None, inputs=False, eps=1e-5, tolerance=1e-6,
              max_per_param=64, training=False, seed=0):
    """Compare ``model.backward`` with central differences of the loss.

    Runs on a float64 copy of the model whatever its dtype, so float32 models
    are checked without float32 noise. Each param (and with ``inputs=True``
    each float input) is probed at up to ``max_per_param`` entries chosen with
    ``seed``. With ``training=True`` dropout masks are kept fixed by replaying
    the model's rng for every evaluation, and buffers (batch_norm's running
    statistics) are put back before each, so every evaluation sees the model
    as it was. Returns a GradcheckReport; never raises for a failed check.
    """
    from .model import Model

    m = Model(model.graph, seed=model.seed, dtype="float64")
    for key, value in model.params.items():
        np.copyto(m.params[key], value)
    saved = {key: np.array(value, dtype=np.float64) for key, value in model.buffers.items()}
    rng_state = model.rng.bit_generator.state
    floats = {n for n in m.inputs if m.nodes[n].dtype.startswith("float")}
    feeds = {k: np.array(v, dtype=np.float64) if k in floats else np.asarray(v)
             for k, v in feeds.items()}
    losses = [loss] if loss else m.losses

    def value():
        m.rng.bit_generator.state = rng_state
        for key, array in saved.items():
            np.copyto(m.buffers[key], array)
        outs = m.forward(feeds, outputs=losses, training=training)
        return float(sum(np.sum(outs[l]) for l in losses))

    scale = max(1.0, abs(value()))
    analytic = m.backward(loss=loss, inputs=inputs)
    floor = 1e-4 * scale
    pick = np.random.default_rng(seed)
    errors = {}
    checked = 0
    targets = list(m.params.items())
    if inputs:
        targets += [(k, v) for k, v in feeds.items() if k in floats]
    for key, array in targets:
        flat = array.reshape(-1)
        # an input the checked loss does not read has no analytic gradient: zero
        grad = np.asarray(analytic.get(key, np.zeros_like(array))).reshape(-1)
        idx = np.arange(flat.size)
        if flat.size > max_per_param:
            idx = pick.choice(flat.size, size=max_per_param, replace=False)
        worst = 0.0
        for i in idx:
            numeric = _central_difference(value, flat, i, eps)
            err = abs(grad[i] - numeric) / max(abs(grad[i]), abs(numeric), floor)
            worst = max(worst, err)
            checked += 1
        errors[key] = worst
    max_error = max(errors.values(), default=0.0)
    worst_name = max(errors, key=errors.get) if errors else None
    return GradcheckReport(bool(max_error <= tolerance), max_error, errors, worst_name,
                           tolerance, checked, list(saved))


def _central_difference(f, flat, i, eps):
    """(f() with flat[i] + eps  -  f() with flat[i] - eps) / (2 eps); flat[i] is restored.

    ``flat`` is a writable flat view of an array that the scalar ``f()`` reads.
    Shared by gradcheck and ``analysis.finite_differences``.
    """
    old = flat[i]
    flat[i] = old + eps
    up = f()
    flat[i] = old - eps
    down = f()
    flat[i] = old
    return (up - down) / (2 * eps)
