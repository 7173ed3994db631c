"""The optimizer interface: state per param name, updates in place.

A subclass sets ``name``, takes its hyperparameters in ``__init__`` and
implements ``init_state`` and ``update``; ``step`` walks the params. An
optimizer may override ``step`` to update everything at once, as long as its
state stays keyed by param name in ``state_dict()``.
"""

import numpy as np

from .errors import GraphnetError


class Optimizer:
    """Base class of every optimizer.

    >>> class SignSGD(Optimizer):
    ...     name = "signsgd"
    ...     def __init__(self, lr=0.01):
    ...         super().__init__(lr=lr)
    ...     def init_state(self, param):
    ...         return {}
    ...     def update(self, param, grad, state, step):
    ...         param -= self.lr * np.sign(grad)
    """

    name = None

    def __init__(self, lr=0.01, **hyper):
        self.lr = lr
        self.hyper = {"lr": lr, **hyper}
        for key, value in hyper.items():
            setattr(self, key, value)
        self.state = {}
        self.step_count = 0

    def init_state(self, param):
        """Return the per-param state: a dict of arrays (momentum buffers, ...)."""
        return {}

    def update(self, param, grad, state, step):
        """Update one param in place from its grad; ``step`` counts from 1."""
        raise NotImplementedError

    def step(self, params, grads):
        """Apply one update to every param that has a grad, in place."""
        self.step_count += 1
        for name, grad in grads.items():
            param = params[name]
            state = self.state.get(name)
            if state is None:
                state = self.state[name] = self.init_state(param)
            self.update(param, grad, state, self.step_count)

    def state_dict(self):
        """The state as plain data: {"step": n, "hyper": {...}, "state": {param: {key: array}}}."""
        return {"name": self.name, "step": self.step_count, "hyper": dict(self.hyper),
                "state": {p: {k: np.array(v) for k, v in s.items()} for p, s in self.state.items()}}

    def load_state_dict(self, data):
        """Restore what ``state_dict`` returned (copies the arrays)."""
        if data.get("name") not in (None, self.name):
            raise GraphnetError(f"optimizer state is for {data.get('name')!r}, not {self.name!r}")
        self.step_count = int(data["step"])
        self.state = {p: {k: np.array(v) for k, v in s.items()} for p, s in data["state"].items()}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({args})"


def optimizer(name, **hyper):
    """Build a registered optimizer by name: ``optimizer("adam", lr=1e-3)``."""
    from .plugins import get
    return get("optimizer", name)(**hyper)
