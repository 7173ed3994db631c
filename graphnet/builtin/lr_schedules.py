"""Builtin learning-rate schedules; ``t`` counts updates from 0."""

import math

from ..errors import GraphnetError
from ..hookspecs import hookimpl
from ..plugins import as_schedule
from ..lr_schedules import Schedule


class Constant(Schedule):
    """lr, always."""

    name = "constant"

    def __init__(self, lr):
        super().__init__(lr=lr)

    def value(self, t):
        return self.lr


class Step(Schedule):
    """lr * gamma ** (t // step_size): multiply by gamma every step_size updates (torch's StepLR)."""

    name = "step"

    def __init__(self, lr, step_size, gamma=0.1):
        super().__init__(lr=lr, step_size=step_size, gamma=gamma)

    def value(self, t):
        return self.lr * self.gamma ** (t // self.step_size)


class Exponential(Schedule):
    """lr * gamma ** t: multiply by gamma every update (torch's ExponentialLR, per step)."""

    name = "exponential"

    def __init__(self, lr, gamma):
        super().__init__(lr=lr, gamma=gamma)

    def value(self, t):
        return self.lr * self.gamma ** t


class Cosine(Schedule):
    """Half a cosine from lr down to min_lr over ``steps`` updates, then min_lr (SGDR without restarts)."""

    name = "cosine"

    def __init__(self, lr, steps, min_lr=0.0):
        super().__init__(lr=lr, steps=steps, min_lr=min_lr)
        if min_lr > lr:
            raise GraphnetError(f"schedule 'cosine': min_lr ({min_lr}) must not exceed lr ({lr})")

    def value(self, t):
        frac = min(t, self.steps) / self.steps
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))


class Warmup(Schedule):
    """Linear warmup in front of another schedule (or a constant lr).

    For ``t < steps`` the lr rises linearly, ``schedule(0) * (t + 1) / steps``,
    so the first update is small but not wasted; from then on it is
    ``schedule(t - steps)``: the inner schedule starts its own count when the
    warmup ends (a cosine over the rest of training composes this way).
    """

    name = "warmup"

    def __init__(self, schedule, steps):
        inner = as_schedule(schedule, where="schedule 'warmup': schedule")
        super().__init__(schedule=inner, steps=steps)

    def value(self, t):
        if t < self.steps:
            return self.schedule(0) * (t + 1) / self.steps
        return self.schedule(t - self.steps)


@hookimpl
def graphnet_schedules():
    return [Constant, Step, Exponential, Cosine, Warmup]
