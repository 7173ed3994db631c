"""Learning-rate schedules: the lr as a function of the update number.

A schedule maps ``t``, the number of updates made before this one (0 for
the first update), to a learning rate. Give one to any optimizer as its
``lr``; the optimizer asks it before every step, so a schedule counts
optimizer steps, not epochs (with ``fit``, one step per mini-batch: an
epoch is ``ceil(len(data) / batch_size)`` steps).

>>> import graphnet as gn
>>> s = gn.schedule("warmup", steps=2, schedule={"name": "step", "lr": 0.1, "step_size": 3})
>>> [round(s(t), 4) for t in range(7)]
[0.05, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01]
>>> opt = gn.optimizer("sgd", lr=s)

Schedules are plugins too (the ``graphnet_schedules`` hook): subclass
``Schedule``, set ``name``, pass every setting to ``super().__init__`` (it
keeps them for ``to_dict``) and implement ``value(t)``.
"""

import math
import numbers

from .errors import GraphnetError, PluginError, origin


class Schedule:
    """Base class of every schedule: ``schedule(t)`` is the lr of update ``t`` (from 0).

    >>> class Halving(Schedule):
    ...     name = "halving"
    ...     def __init__(self, lr, every):
    ...         super().__init__(lr=lr, every=every)
    ...     def value(self, t):
    ...         return self.lr * 0.5 ** (t // self.every)
    >>> Halving(1.0, every=10)(25)
    0.25
    """

    name = None

    def __init__(self, **config):
        for key, value in config.items():
            _check(self.name or type(self).__name__, key, value)
            setattr(self, key, value)
        self.config = config

    def value(self, t):
        """The learning rate of update ``t`` (0 for the first)."""
        raise NotImplementedError(f"schedule {self.name!r} does not implement value()")

    def __call__(self, t):
        try:   # a plugin schedule's failure names it (a try costs nothing until it raises)
            lr = self.value(t)
        except GraphnetError:
            raise
        except Exception as exc:
            raise PluginError(f"schedule {self.name!r} from {origin(type(self))} raised "
                              f"{type(exc).__name__} for update {t}: {exc}") from exc
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
            raise PluginError(f"schedule {self.name!r} from {origin(type(self))} returned "
                              f"{lr!r} for update {t}, not a number")
        return lr

    def to_dict(self):
        """Plain data that ``as_schedule`` (and model files) turn back into this schedule."""
        return {"name": self.name, **{k: (v.to_dict() if isinstance(v, Schedule) else v)
                                      for k, v in self.config.items()}}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"


def _check(owner, key, value):
    """Range rules shared by the schedules, by setting name."""
    where = f"schedule {owner!r}"
    if key in ("lr", "min_lr"):
        ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
              and math.isfinite(value) and (value > 0 if key == "lr" else value >= 0))
        if not ok:
            raise GraphnetError(f"{where}: {key} must be a finite number "
                                f"{'> 0' if key == 'lr' else '>= 0'}, got {value!r}")
    elif key in ("steps", "step_size"):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise GraphnetError(f"{where}: {key} must be a whole number of steps >= 1, "
                                f"got {value!r}")
    elif key == "gamma":
        if (isinstance(value, bool) or not isinstance(value, numbers.Real)
                or not 0 < value <= 1):
            raise GraphnetError(f"{where}: gamma must be in (0, 1], got {value!r}")
