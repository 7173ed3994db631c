"""The optimizer interface: state per param name, updates in place.

A subclass sets ``name``, takes its hyperparameters in ``__init__`` (passing
them all to ``super().__init__``, which checks them) and implements
``init_state`` and ``update``; ``step`` walks the params::

    class SignSGD(Optimizer):
        name = "signsgd"
        def __init__(self, lr=0.01):
            super().__init__(lr=lr)
        def init_state(self, param):
            return {}
        def update(self, param, grad, state, step):
            param -= self.lr * np.sign(grad)

What every optimizer gets from this base class, without writing a line:

- checked hyperparameters: ``lr > 0``, every ``beta*`` in [0, 1), ``eps > 0``,
  ``weight_decay >= 0``; a bad one raises ``GraphnetError`` naming it.
  ``graphnet.optimizer(name, **hyper)`` also refuses unknown names, with a
  did-you-mean.
- a learning-rate schedule: ``lr`` may be a ``graphnet.Schedule`` (and, through
  ``graphnet.optimizer``, its dict form ``{"name": "cosine", "lr": 0.1, "steps": 1000}``);
  ``self.lr`` then holds the schedule's value for the update being made.
- gradient clipping by global norm: ``clip_norm=c`` scales the gradients of
  one step together so that their global L2 norm is at most ``c`` (the
  caller's gradient arrays are left untouched).
- ``state_dict()`` / ``load_state_dict()`` with the step count.

An optimizer may override ``step`` to update everything at once (a flat
buffer, one fused expression), as long as it starts with
``grads = self.begin_step(grads)`` and keeps its state keyed by param name in
``state_dict()``.
"""

import functools
import math
import numbers
import operator

import numpy as np

from .errors import GraphnetError, PluginError, did_you_mean, origin
from .lr_schedules import Schedule


def _named_step(step):
    """Wrap an override of ``step`` so that its failures name the optimizer, as the base
    step's do (the base step has its own try: a wrapper costs a call per step)."""
    @functools.wraps(step)
    def named_step(self, *args, **kwargs):
        try:
            return step(self, *args, **kwargs)
        except GraphnetError:
            raise
        except Exception as exc:
            raise self._failure(exc) from exc
    named_step.names_failures = True
    return named_step


class Optimizer:
    """Base class of every optimizer.

    >>> import numpy as np
    >>> class SignSGD(Optimizer):
    ...     name = "signsgd"
    ...     def __init__(self, lr=0.01):
    ...         super().__init__(lr=lr)
    ...     def update(self, param, grad, state, step):
    ...         param -= self.lr * np.sign(grad)
    >>> w = np.array([1.0, -2.0])
    >>> SignSGD(lr=0.5).step({"w": w}, {"w": np.array([3.0, -1.0])})
    >>> w
    array([ 0.5, -1.5])
    """

    name = None
    elementwise = False
    """True when ``update`` treats each element on its own (all the builtins): ``step``
    may then run it once over all the params together, when the params and the
    gradients are views into one flat array each, as a Model's are."""
    flat_chunk = 1 << 18
    """Elements per ``update`` call on flat arrays (1 MiB of float32): a chunk of each
    array stays in the CPU's cache through all the passes of an update, which the
    arrays of a large model would not; small models take one call."""

    def __init__(self, lr=0.01, *, clip_norm=None, **hyper):
        if isinstance(lr, dict):
            raise GraphnetError(f"optimizer {self.name or type(self).__name__!r}: lr {lr!r} is a "
                                f"schedule's data form; build it with graphnet.optimizer(name, "
                                f"lr={{...}}), or pass graphnet.schedule(...) as lr")
        self.schedule = lr if isinstance(lr, Schedule) else None
        self.hyper = {"lr": self.schedule if self.schedule is not None else lr, **hyper}
        for key, value in self.hyper.items():
            _check_hyper(self.name or type(self).__name__, key, value)
        for key, value in hyper.items():
            setattr(self, key, value)
        self.lr = float(self.schedule(0)) if self.schedule is not None else float(lr)
        self.clip_norm = None
        self.set_clip_norm(clip_norm)
        self.state = {}
        self.step_count = 0
        self.last_grad_norm = None
        self._clip_buffers = {}
        self._scratch = {}
        self._check_keys = False
        self._flat = None

    # --- what a subclass implements ---------------------------------------
    def init_state(self, param):
        """Return the per-param state: a dict of arrays (momentum buffers, ...)."""
        return {}

    def update(self, param, grad, state, step):
        """Update one param in place from its grad; ``step`` counts from 1."""
        raise NotImplementedError(f"optimizer {self.name!r} does not implement update()")

    # --- stepping ----------------------------------------------------------
    def step(self, params, grads):
        """Apply one update to every param that has a grad, in place.

        A failure of the optimizer's own code (``init_state``, ``update``, or an
        override of ``step``) is a PluginError naming the optimizer and where it
        comes from."""
        grads = self.begin_step(grads)
        step = self.step_count
        try:   # costs nothing until it raises
            if self.elementwise and self._step_flat(params, grads, step):
                return
            for name, grad in grads.items():
                try:
                    param = params[name]
                except KeyError:
                    raise GraphnetError(f"optimizer {self.name!r}: there is a gradient for "
                                        f"{name!r} but no such param"
                                        f"{did_you_mean(name, params)}") from None
                state = self.state.get(name)
                if state is None:
                    state = self.state[name] = self.init_state(param)
                self.update(param, grad, state, step)
        except GraphnetError:
            raise
        except Exception as exc:
            raise self._failure(exc) from exc

    def __init_subclass__(cls, **kwargs):
        """An override of ``step`` gets the failure naming the base ``step`` has."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("step")
        if callable(own) and not getattr(own, "names_failures", False):
            cls.step = _named_step(own)

    def _failure(self, exc):
        """The PluginError for ``exc``, raised by this optimizer's own code in a step."""
        return PluginError(f"optimizer {self.name!r} from {origin(type(self))} raised "
                           f"{type(exc).__name__} in step {self.step_count}: {exc}")

    def _step_flat(self, params, grads, step):
        """One ``update`` over the flat arrays behind ``params`` and ``grads`` (a few
        numpy calls in all instead of a few per param), or False if they are not
        both intact views of one layout (see graphnet.model.FlatArrays)."""
        layout = getattr(params, "layout", None)
        if (layout is None or getattr(grads, "layout", None) is not layout
                or params.flat.dtype != grads.flat.dtype
                or not params.intact() or not grads.intact()):
            return False
        state = self._flat_state(layout, params.flat)
        P, G, n = params.flat, grads.flat, self.flat_chunk
        if P.size <= n:
            self.update(P, G, state, step)
            return True
        for lo in range(0, P.size, n):   # each chunk stays in cache through all its passes
            self.update(P[lo:lo + n], G[lo:lo + n], {k: a[lo:lo + n] for k, a in state.items()},
                        step)
        return True

    def _flat_state(self, layout, flat_param):
        """The state as flat arrays, with each param's state (what ``state_dict`` shows,
        by name) a view into them; made again, keeping the values, after a load or a
        change of layout."""
        cached = self._flat
        if (cached is not None and cached[0] is layout and cached[1] is self.state
                and all(map(operator.is_, map(self.state.get, cached[3]), cached[4]))):
            return cached[2]
        flat = self.init_state(flat_param)
        keys = []
        for key, offset, size, shape in layout:
            old = self.state.get(key) or {}
            views = {k: a[offset:offset + size].reshape(shape) for k, a in flat.items()}
            for k, v in views.items():
                if k in old:
                    v[...] = old[k]
            self.state[key] = views
            keys.append(key)
        self._flat = (layout, self.state, flat, tuple(keys), tuple(map(self.state.get, keys)))
        return flat

    def begin_step(self, grads):
        """Count the step, set ``self.lr`` from the schedule, clip; return the grads to use.

        ``step`` calls this first; an override of ``step`` must too.
        """
        if self._check_keys:
            self._check_loaded(grads)
        if self.schedule is not None:
            self.lr = float(self.schedule(self.step_count))
        self.step_count += 1
        if self.clip_norm is not None:
            grads = self._clip(grads)
        return grads

    def scratch(self, param, index=0):
        """A reusable work array of ``param``'s shape and dtype (not part of the state).

        Updates run one param at a time, so params of one shape share it;
        ``index`` picks another buffer when an update needs two.
        """
        key = (param.shape, param.dtype, index)
        buf = self._scratch.get(key)
        if buf is None:
            buf = self._scratch[key] = np.empty_like(param)
        return buf

    def set_clip_norm(self, clip_norm):
        """Clip the global gradient norm of every later step to ``clip_norm`` (None: off)."""
        if clip_norm is not None:
            _check_positive(self.name, "clip_norm", clip_norm)
            clip_norm = float(clip_norm)
        self.clip_norm = clip_norm
        if clip_norm is None:
            self.hyper.pop("clip_norm", None)
        else:
            self.hyper["clip_norm"] = clip_norm

    def _clip(self, grads):
        norm = global_norm(grads)
        self.last_grad_norm = norm
        if not norm > self.clip_norm or not math.isfinite(norm):
            return grads  # a non-finite norm is the NaN guard's business, not clipping's
        scale = self.clip_norm / norm
        out = {}
        for name, g in grads.items():
            buf = self._clip_buffers.get(name)
            if buf is None or buf.shape != g.shape or buf.dtype != g.dtype:
                buf = self._clip_buffers[name] = np.empty_like(g)
            out[name] = np.multiply(g, scale, out=buf)
        return out

    # --- saving --------------------------------------------------------------
    def state_dict(self):
        """The state as plain data, copied.

        ``{"name": ..., "step": n, "hyper": {...}, "state": {param: {key: array}}}``;
        ``hyper`` holds plain values (a schedule in its dict form), so that
        ``optimizer(name, **hyper)`` builds the same optimizer again.
        """
        hyper = {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in self.hyper.items()}
        return {"name": self.name, "step": self.step_count, "hyper": hyper,
                "state": {p: {k: np.array(v) for k, v in s.items()}
                          for p, s in self.state.items()}}

    def load_state_dict(self, data):
        """Restore what ``state_dict`` returned (copying the arrays).

        The hyperparameters stay this optimizer's own. The next ``step``
        checks that the state is for the same params, with the same shapes.
        """
        if not isinstance(data, dict) or "step" not in data or "state" not in data:
            raise GraphnetError("optimizer state must be a dict with 'step' and 'state', as "
                                "Optimizer.state_dict() returns")
        if data.get("name") not in (None, self.name):
            raise GraphnetError(f"optimizer state is for {data.get('name')!r}, not {self.name!r}; "
                                f"build a {data.get('name')!r} optimizer to load it")
        step = data["step"]
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise GraphnetError(f"optimizer state: 'step' must be a count >= 0, got {step!r}")
        state = data["state"]
        if not isinstance(state, dict) or not all(isinstance(s, dict) for s in state.values()):
            raise GraphnetError("optimizer state: 'state' must map param names to dicts of arrays")
        self.step_count = int(step)
        self.state = {p: {k: np.array(v) for k, v in s.items()} for p, s in state.items()}
        if self.schedule is not None:
            self.lr = float(self.schedule(max(self.step_count - 1, 0)))
        self._check_keys = True

    def _check_loaded(self, grads):
        """After a load: the state must be for exactly these params, in their shapes."""
        self._check_keys = False
        if not self.state and self.step_count == 0:
            return
        missing = sorted(set(grads) - set(self.state))
        extra = sorted(set(self.state) - set(grads))
        if (missing and self.step_count > 0) or extra:
            hint = []
            if missing:
                hint.append(f"no state for {missing}")
            if extra:
                hint.append(f"state for params this model lacks: {extra}")
            raise GraphnetError(f"optimizer {self.name!r}: the loaded state is for a different "
                                f"set of params ({'; '.join(hint)}); load state saved with this "
                                f"model, or start a fresh optimizer")
        for pname, s in self.state.items():
            shape = np.shape(grads[pname])
            for key, arr in s.items():
                if np.ndim(arr) and np.shape(arr) != shape:
                    raise GraphnetError(f"optimizer {self.name!r}: loaded state {key!r} of param "
                                        f"{pname!r} has shape {np.shape(arr)}, the param has "
                                        f"{shape}; the state was saved for another model")

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({args})"


def global_norm(grads):
    """The L2 norm of all the gradients together, as a float (allocates nothing large)."""
    total = 0.0
    for g in grads.values():
        flat = np.ravel(g)
        total += float(np.dot(flat, flat))
    return math.sqrt(total)


def clip_grad_norm(grads, max_norm):
    """Scale ``grads`` in place so that their global norm is at most ``max_norm``.

    Returns the norm before clipping (as torch.nn.utils.clip_grad_norm_), for
    hand-written loops; ``Optimizer(clip_norm=...)`` does the same inside
    ``step`` without touching the caller's arrays.

    >>> g = {"w": np.array([3.0, 4.0])}
    >>> clip_grad_norm(g, 1.0), g["w"]
    (5.0, array([0.6, 0.8]))
    """
    _check_positive("clip_grad_norm", "max_norm", max_norm)
    norm = global_norm(grads)
    if norm > max_norm and math.isfinite(norm):
        for g in grads.values():
            g *= max_norm / norm
    return norm


def _check_positive(owner, key, value):
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value <= 0):
        raise GraphnetError(f"{owner}: {key} must be a finite number > 0, got {value!r}")


def _check_hyper(owner, key, value):
    """The range rules shared by every optimizer, by hyperparameter name."""
    where = f"optimizer {owner!r}"
    if key == "lr":
        if not isinstance(value, Schedule):
            _check_positive(where, "lr", value)
    elif key.startswith("beta"):
        if (isinstance(value, bool) or not isinstance(value, numbers.Real)
                or not 0 <= value < 1):
            raise GraphnetError(f"{where}: {key} must be in [0, 1), got {value!r}")
    elif key == "eps":
        _check_positive(where, "eps", value)
    elif key == "weight_decay":
        if (isinstance(value, bool) or not isinstance(value, numbers.Real)
                or not math.isfinite(value) or value < 0):
            raise GraphnetError(f"{where}: weight_decay must be a finite number >= 0, "
                                f"got {value!r}")
    elif key == "nesterov":
        if not isinstance(value, (bool, np.bool_)):
            raise GraphnetError(f"{where}: nesterov must be True or False, got {value!r}")
