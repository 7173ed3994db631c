"""The training loop: mini-batches, metrics, validation, callbacks, checkpoints.

>>> import numpy as np, graphnet as gn
>>> g = gn.Graph("xor")
>>> x, t = g.input("x", shape=(2,)), g.input("y", shape=(1,))
>>> y = g.add("dense", g.add("tanh", g.add("dense", x, units=8)), units=1, name="out")
>>> _ = g.add("binary_cross_entropy", y, t, name="loss"); _ = g.output(y)
>>> model = gn.Model(g, seed=0)
>>> X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]]); Y = np.array([[0], [1], [1], [0]])
>>> history = model.fit({"x": X, "y": Y}, optimizer=gn.optimizer("adam", lr=0.05),
...                     epochs=300, batch_size=4, progress=False)
>>> history.last["accuracy"]
1.0

What one epoch does: draw a permutation of the samples from the shuffle
generator (unless ``shuffle=False``), walk the data in that order in chunks of
``batch_size`` (the last chunk smaller if the size does not divide), and for
each chunk run forward (training mode), backward, the NaN/Inf guard, one
optimizer step and the ``on_batch_end`` callbacks; then evaluate the
validation data, if any, and record a History row.

What ``seed`` covers: the order of the samples in every epoch, and nothing
else. The initial params and the dropout noise come from the model's own
seed (``Model(graph, seed=...)``; dropout draws from ``model.rng``, which goes
on across fit calls). ``seed=None`` derives the shuffle seed from
``model.seed``, so one seed given to Model makes a whole run reproducible:
same seeds, same data, same settings give bit-identical params.
"""

import logging
import math
import numbers
import shutil
import sys
import time

import numpy as np

from .callbacks import Callback
from .errors import (CheckpointError, DataError, FeedError, GraphnetError, TrainingError,
                     did_you_mean, raise_if_interrupted)
from .history import History
from .optim import Optimizer
from .plugins import optimizer as make_optimizer
from .scheduler import check_batch_size, sample_count

CLASSIFICATION_LOSSES = ("softmax_cross_entropy", "binary_cross_entropy")
EVAL_BATCH_SIZE = 1024
_log = logging.getLogger(__name__)  # library code reports, the caller decides what to show


# --- metrics -----------------------------------------------------------------
def accuracy(loss_op, pred, target):
    """The fraction of right answers of a classification loss's prediction.

    softmax_cross_entropy: argmax of the logits against the integer labels
    (or the argmax of target probabilities); binary_cross_entropy: logit > 0
    against target > 0.5, over every output.
    """
    fn = _ACCURACY.get(loss_op)
    if fn is None:
        raise GraphnetError(f"accuracy is defined for the losses {list(CLASSIFICATION_LOSSES)}, "
                            f"not {loss_op!r}")
    return fn(pred, target)


def _softmax_accuracy(pred, target):
    guess = pred.argmax(axis=1)
    truth = target if target.ndim == 1 else target.argmax(axis=1)
    return np.count_nonzero(guess == truth) / len(guess)


def _binary_accuracy(pred, target):
    return np.count_nonzero((pred > 0) == (target > 0.5)) / pred.size


_ACCURACY = {"softmax_cross_entropy": _softmax_accuracy,
             "binary_cross_entropy": _binary_accuracy}


class _Measure:
    """What fit and evaluate compute per batch: the losses and the metrics of each loss node."""

    def __init__(self, model, metrics):
        self.losses = list(model.losses)
        if not self.losses:
            raise GraphnetError(f"model {model.name!r} has no loss node; add one (e.g. "
                                f"g.add('mse', prediction, target)) to train or evaluate it")
        nodes = model.nodes
        self.mean = {l: nodes[l].attrs.get("reduction", "mean") != "sum" for l in self.losses}
        self.metrics = []        # (key, loss node, fn(pred, target), pred node, target node)
        several = len(self.losses) > 1
        if metrics == "auto":
            wanted = ["accuracy"]
            strict = False
        elif metrics is None:
            wanted, strict = [], False
        elif isinstance(metrics, str):
            wanted, strict = [metrics], True
        elif isinstance(metrics, dict):
            wanted, strict = list(metrics.items()), True
        else:
            wanted, strict = list(metrics), True
        for item in wanted:
            name, fn = item if isinstance(item, tuple) else (item, None)
            if fn is None and name != "accuracy":
                raise GraphnetError(f"unknown metric {name!r}{did_you_mean(name, ['accuracy'])}; "
                                    f"give your own as metrics={{{name!r}: fn(pred, target)}}")
            found = False
            for l in self.losses:
                op = nodes[l].op.name
                if fn is None and op not in CLASSIFICATION_LOSSES:
                    continue
                pred, target = nodes[l].inputs[:2]
                key = f"{l}_{name}" if several else name
                self.metrics.append((key, l, _ACCURACY[op] if fn is None else fn, pred,
                                     target))
                found = True
            if strict and not found:
                raise GraphnetError(f"metric {name!r} needs a classification loss "
                                    f"({', '.join(CLASSIFICATION_LOSSES)}); the model's losses "
                                    f"are {self.losses}")
        extra = [n for _, _, _, p, t in self.metrics for n in (p, t)]
        self.targets = tuple(dict.fromkeys(self.losses + extra))   # a plan key as it is
        self.model = model
        self.plan = self.own = None

    def batch(self, outs):
        """The batch's logs: each loss as its node reduced it, the total, the metrics."""
        logs = {}
        total = 0.0
        for l in self.losses:
            value = float(outs[l])
            total += value
            if len(self.losses) > 1:
                logs[f"loss/{l}"] = value
        logs["loss"] = total
        for key, loss, fn, pred, target in self.metrics:
            value = self._own_accuracy(loss) if fn is _softmax_accuracy else None
            logs[key] = float(fn(outs[pred], outs[target]) if value is None else value)
        return logs

    def _own_accuracy(self, loss):
        """The accuracy the loss op reads off its last forward (softmax cross-entropy's
        ``accuracy(ctx)``), or None where it cannot tell and argmax decides."""
        plan = self.model._last[0]
        if plan is not self.plan:
            self.plan, self.own = plan, {node.name: (getattr(node.op, "accuracy", None), ctx)
                                         for node, ctx in zip(plan.nodes, plan.contexts)}
        read, ctx = self.own[loss]
        return None if read is None else read(ctx)


class _Shuffled:
    """The training data in an epoch's order, taken into arrays kept from epoch to epoch
    (no new copy of the data per epoch)."""

    def __init__(self, arrays):
        self.arrays, self.kept = arrays, None

    def take(self, order):
        if self.kept is None:
            self.kept = {k: np.empty(v.shape, v.dtype) for k, v in self.arrays.items()}
        for k, v in self.arrays.items():   # the order is a permutation: no index to check
            np.take(v, order, axis=0, out=self.kept[k], mode="clip")
        return self.kept


class _Totals:
    """Batch values turned into whole-data values.

    A metric or a mean-reduced loss is averaged over the samples (each batch
    weighted by its size); a sum-reduced loss is summed over the batches.
    """

    def __init__(self, measure):
        summed = {f"loss/{l}" for l in measure.losses if not measure.mean[l]}
        if not all(measure.mean.values()):
            summed.add("loss")
        self.summed = summed
        self.sums = {}
        self.count = 0

    def add(self, logs, n):
        self.count += n
        sums = self.sums
        for k, v in logs.items():
            sums[k] = sums.get(k, 0.0) + (v if k in self.summed else v * n)

    def result(self):
        return {k: (s if k in self.summed else s / self.count) for k, s in self.sums.items()}


# --- the run -------------------------------------------------------------------
class Run:
    """What callbacks see: the model, the optimizer, the history and where training is.

    ``epoch`` counts from 1, ``batch`` from 1 within the epoch, ``batches`` is
    the number of batches per epoch, ``epochs`` the epoch fit stops after.
    """

    def __init__(self, model, optimizer, history, epochs, batches):
        self.model, self.optimizer, self.history = model, optimizer, history
        self.epochs, self.batches = epochs, batches
        self.epoch = self.batch = 0
        self.stop = False

    def stop_training(self, reason="stopped by a callback"):
        """Ask fit to stop after the current batch; ``reason`` goes to ``history.stop_reason``."""
        self.stop = True
        self.history.stop_reason = reason


def fit(model, data, optimizer=None, epochs=1, batch_size=32, shuffle=True, validation=None,
        metrics="auto", callbacks=(), progress=True, seed=None, checkpoint=None, resume=None,
        nan_guard=True, checkpoint_every=1):
    """Train ``model`` on ``data`` with mini-batch gradient descent; return a History.

    data, validation: dicts of input name -> array, samples along axis 0.
    optimizer: an Optimizer, a registered name, or a dict ``{"name": ..., **hyper}``
        (default: adam with lr=0.001, or the checkpoint's optimizer on resume).
    batch_size: 1 is the lecture's SGD, ``len(data)`` (or more) full-batch descent.
    metrics: "auto" (accuracy for classification losses), None, a list of
        names, or ``{name: fn(pred, target) -> float}`` for each loss node.
    callbacks: Callback objects (see graphnet.callbacks).
    progress: a tqdm bar per epoch when stdout is a terminal, a widget in Jupyter.
    seed: the shuffle seed (see the module doc for what it covers); on resume the
        checkpoint's generator states go on instead.
    checkpoint: a path; after every epoch the model, optimizer state, history
        and training state (epoch, generator states) are saved there.
    resume: a checkpoint path to continue from: params, optimizer state,
        history and generators are restored and training goes on at the next
        epoch, up to ``epochs`` in all. A finished checkpoint trains nothing.
    checkpoint_every: write the checkpoint only every this many epochs (each
        write is fsynced: it dominates short epochs). The last epoch is always
        written, and so is the last finished one when training is interrupted
        (Ctrl-C, SIGTERM, an error): no finished epoch is lost.
    nan_guard: stop with TrainingError, naming the node, when a loss, an output
        or a gradient goes NaN or infinite (checked before the update, so the
        params stay those of the last good step).

    Before the first epoch, ops that learn statistics from the data and have
    not yet (``normalize``) are adapted to ``data`` (see ``adapt``).
    """
    epochs = _whole(epochs, "epochs", 0)
    checkpoint_every = _whole(checkpoint_every, "checkpoint_every", 1)
    measure = _Measure(model, metrics)
    train_data, n = _prepare(model, data, "data")
    val_data = _prepare(model, validation, "validation")[0] if validation is not None else None
    for what, arrays in (("data", train_data), ("validation", val_data)):
        if arrays is not None:
            check_labels(model, arrays, what)
    batch_size = min(check_batch_size(batch_size), n)
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    callbacks = list(callbacks)
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise GraphnetError(f"callbacks must be graphnet.Callback objects, got {cb!r}")
    shuffle_rng = np.random.default_rng(_shuffle_seed(model, seed))
    history, start, opt = History(), 0, None
    if resume is not None:
        history, start, opt, finished = _resume(model, resume, optimizer, shuffle_rng)
        if finished or start >= epochs:
            why = finished or f"it holds {start} of the {epochs} epochs asked for"
            _log.info("checkpoint %s has finished training (%s); nothing more to train",
                      resume, why)
            return history
    if opt is None:
        opt = _make(optimizer)
    adapt(model, train_data, only_new=True)
    batches = math.ceil(n / batch_size)
    run = Run(model, opt, history, epochs, batches)
    bar_on = progress and (_isatty() or _in_notebook())
    kept = _Checkpoints(checkpoint, checkpoint_every, model, opt, history, shuffle_rng,
                        epochs, batch_size, shuffle)
    shuffled = _Shuffled(train_data)
    for cb in callbacks:
        cb.on_train_begin(run)
    try:
        for epoch in range(start, epochs):
            raise_if_interrupted()   # a Ctrl-C that Python dropped (see errors.on_sigint)
            run.epoch, run.batch = epoch + 1, 0
            t0 = time.perf_counter()
            for cb in callbacks:
                cb.on_epoch_begin(run)
            arrays = shuffled.take(shuffle_rng.permutation(n)) if shuffle else train_data
            bar = _bar(bar_on, batches, epoch + 1, epochs)
            try:
                totals = _epoch(run, arrays, n, batch_size, measure, callbacks, nan_guard, bar)
                row = {"epoch": epoch + 1, **totals.result()}
                if val_data is not None:
                    row.update({f"val_{k}": v for k, v in
                                _evaluate(model, val_data, measure, EVAL_BATCH_SIZE).items()})
                row["lr"] = float(opt.lr)
                row["seconds"] = time.perf_counter() - t0
                for cb in callbacks:
                    cb.on_epoch_end(run, row)
                history.append(row)
                if bar is not None:
                    bar.set_postfix(_fmt({k: v for k, v in row.items()
                                          if k not in ("epoch", "seconds")}))
            finally:
                if bar is not None:
                    bar.close()
            if not (run.stop or epoch + 1 == epochs):   # the last epoch is saved below
                kept.epoch_end(epoch + 1)
            if run.stop:
                break
        for cb in callbacks:
            cb.on_train_end(run)
    except BaseException:
        kept.interrupted()
        raise
    if checkpoint is not None and history.rows and len(history) > start:
        _save_checkpoint(checkpoint, model, opt, history, shuffle_rng, history.rows[-1]["epoch"],
                         epochs, history.stop_reason or "done", batch_size, shuffle)
    return history


def _epoch(run, arrays, n, batch_size, measure, callbacks, nan_guard, bar):
    """One pass over the (shuffled) arrays in mini-batches; return the epoch's _Totals.

    Per batch this adds to the bare forward/backward/step only what reads values the
    step computed anyway: the loss and metric floats from the engine's own output
    arrays (softmax cross-entropy's accuracy from the loss's own values, no argmax),
    the NaN/Inf guard on that loss and one dot product of the flat gradient, and (in a
    terminal) the progress bar, redrawn at most every 0.1 s.
    """
    model, opt = run.model, run.optimizer
    forward, backward, targets = model.forward, model.backward, measure.targets
    totals = _Totals(measure)
    shown, done = time.monotonic(), 0
    grads = None
    for b in range(run.batches):
        run.batch = b + 1
        lo = b * batch_size
        outs = forward({k: v[lo:lo + batch_size] for k, v in arrays.items()}, outputs=targets,
                       training=True, copy=False)
        grads = backward(out=grads)   # last step's arrays, refilled: no allocation
        logs = measure.batch(outs)
        if nan_guard and not (math.isfinite(logs["loss"]) and _flat_finite(grads.flat)):
            _diverged(model, logs["loss"], grads, opt, run.epoch, b + 1)
        opt.step(model.params, grads)
        totals.add(logs, min(batch_size, n - lo))
        for cb in callbacks:
            cb.on_batch_end(run, logs)
        if bar is not None:
            now = time.monotonic()
            if now - shown >= 0.1:   # tqdm redraws at most every 0.1 s; so does the postfix
                bar.set_postfix(_fmt(totals.result()), refresh=False)
                bar.update(b + 1 - done)
                shown, done = now, b + 1
        if run.stop:
            break
    if bar is not None:
        bar.update(run.batch - done)
    return totals


def adapt(model, data, batch_size=EVAL_BATCH_SIZE, only_new=False):
    """Set the buffers that ops learn from data (``normalize``'s mean and variance).

    Nodes go in topological order, each seeing its input computed by the
    nodes before it (already adapted), in inference mode and in batches.
    ``only_new`` leaves the nodes whose op says they are adapted already (what
    fit does, so that a resumed or further trained model keeps its statistics).

    >>> import numpy as np, graphnet as gn
    >>> g = gn.Graph("norm"); x = g.input("x", shape=(2,))
    >>> _ = g.output(g.add("normalize", x, name="nz"))
    >>> model = gn.Model(g, dtype="float64")
    >>> model.adapt({"x": np.array([[1.0, 10.0], [3.0, 30.0]])})
    >>> model.buffers["nz.mean"], model.buffers["nz.variance"]
    (array([ 2., 20.]), array([  1., 100.]))
    """
    arrays, n = _prepare(model, data, "data")
    for node in model.nodes.values():
        buffers = {b: model.buffers[f"{node.name}.{b}"] for b in node.buffers}
        if not buffers or (only_new and node.op.adapted(buffers)):
            continue
        src = node.inputs[0]
        batches = (model.forward({k: v[lo:lo + batch_size] for k, v in arrays.items()},
                                 outputs=[src])[src] for lo in range(0, n, batch_size))
        node.op.adapt(buffers, batches)


def evaluate(model, data, batch_size=EVAL_BATCH_SIZE, metrics="auto"):
    """The loss and metrics of ``model`` on ``data`` (inference mode, in batches).

    Returns ``{"loss": float, "accuracy": float, ...}``: a mean-reduced loss
    averaged over all the samples, a sum-reduced one summed, the metrics
    averaged over the samples.
    """
    batch_size = check_batch_size(batch_size)
    measure = _Measure(model, metrics)
    arrays, _ = _prepare(model, data, "data")
    return _evaluate(model, arrays, measure, int(batch_size))


def _evaluate(model, arrays, measure, batch_size):
    n = len(next(iter(arrays.values())))
    totals = _Totals(measure)
    for lo in range(0, n, batch_size):
        feeds = {k: v[lo:lo + batch_size] for k, v in arrays.items()}
        outs = model.forward(feeds, outputs=measure.targets, training=False)
        totals.add(measure.batch(outs), min(batch_size, n - lo))
    return totals.result()


# --- the NaN/Inf guard ---------------------------------------------------------
def find_nonfinite(model, grads=None):
    """Say where the last forward (and ``grads``) first went NaN or infinite, or None.

    Looks at the fed inputs, then every node's output in the order the
    forward pass ran them, then the param gradients in the order backward
    produced them (nearest the loss first). Returns a sentence naming the
    input, node or param.
    """
    if model._last is None:
        return None
    plan, vals = model._last
    for name, slot, node in plan.feeds:
        v = vals[slot]
        if v.dtype.kind == "f" and not _finite(v):
            return f"input {name!r} holds {_count(v)}"
    nodes = model.nodes
    for _, _, ctx, _, out in plan.steps:
        v = vals[out]
        if not _finite(v):
            return f"node {ctx.node!r} ({nodes[ctx.node].op.name}) output holds {_count(v)}"
    if grads:
        for _, _, ctx, _, _ in reversed(plan.steps):
            for key in nodes[ctx.node].param_keys():
                g = grads.get(key)
                if g is not None and not _finite(g):
                    return (f"the gradient of param {key!r} of node {ctx.node!r} "
                            f"({nodes[ctx.node].op.name}) holds {_count(g)}")
    return None


def _finite(a):
    """True if every value is finite: a cheap sum first, the exact check only if it fails
    (a sum of finite values can overflow; a NaN or an infinity always shows in it)."""
    a = np.asarray(a)
    return math.isfinite(np.add.reduce(a, axis=None)) or bool(np.isfinite(a).all())


def _flat_finite(flat):
    """The guard's per-batch check of every gradient (fit's come from backward(out=),
    always whole): the dot product of the flat gradient with itself, one BLAS pass (a NaN
    or an infinity always shows in it); the exact check only if that is not finite, since
    squares of finite values can overflow."""
    return math.isfinite(np.dot(flat, flat)) or bool(np.isfinite(flat).all())


def _count(a):
    nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    parts = ([f"{nan} NaN"] if nan else []) + ([f"{inf} infinite"] if inf else [])
    return " and ".join(parts) + f" of {np.size(a)} values"


def _diverged(model, loss, grads, opt, epoch, batch):
    """Raise the guard's TrainingError, naming where the batch first went non-finite."""
    where = find_nonfinite(model, grads) or f"the loss is {loss}"
    raise TrainingError(
        f"training diverged at epoch {epoch}, step {batch} (update {opt.step_count + 1}): "
        f"{where}; the loss is {loss}. The params are those before this update. Lower the "
        f"learning rate (lr={opt.lr:g}), clip the gradients (clip_norm=...), or check the "
        f"data for NaN or huge values")


# --- checkpoints ---------------------------------------------------------------
def _save(model, path, optimizer=None, history=None, train_state=None):
    from .checkpoint import save
    return save(model, path, optimizer=optimizer, history=history, train_state=train_state)


def _load_checkpoint(path):
    from .checkpoint import load_checkpoint
    return load_checkpoint(path)


def _save_checkpoint(path, model, opt, history, shuffle_rng, epoch, epochs, finished,
                     batch_size, shuffle):
    """Save after an epoch. train_state is plain JSON-able data: the epochs done and asked
    for, why training finished (None while it goes on, "done" after the last epoch, or a
    callback's stop reason), the update count, the batching, and both generators' states."""
    state = {"epoch": int(epoch), "epochs": int(epochs), "finished": finished,
             "step": int(opt.step_count), "batch_size": int(batch_size), "shuffle": bool(shuffle),
             "rng": {"shuffle": shuffle_rng.bit_generator.state,
                     "model": model.rng.bit_generator.state}}
    _save(model, path, optimizer=opt, history=history.to_dict(), train_state=state)


class _Checkpoints:
    """fit's checkpoints every ``every`` epochs. Between writes the state after the last
    finished epoch is kept in memory (params, optimizer, generators: small copies), so
    that an interrupt writes it: the file is then the one an every-epoch run has."""

    def __init__(self, path, every, model, opt, history, shuffle_rng, epochs, batch_size,
                 shuffle):
        self.path, self.every, self.model, self.opt = path, every, model, opt
        self.history, self.shuffle_rng = history, shuffle_rng
        self.save_args = (epochs, None, batch_size, shuffle)
        self.kept = None

    def epoch_end(self, epoch):
        if self.path is None:
            return
        if epoch % self.every == 0:
            self._write(epoch)
            self.kept = None
        else:
            self.kept = (epoch, self._state())

    def interrupted(self):
        """Write the kept epoch, leaving the model, optimizer and generators as they are."""
        if self.kept is None:
            return
        (epoch, state), self.kept = self.kept, None
        now = self._state()
        self._restore(state)
        try:
            self._write(epoch)
        finally:
            self._restore(now)

    def _write(self, epoch):
        rows, self.history.rows = self.history.rows, self.history.rows[:epoch]
        try:
            _save_checkpoint(self.path, self.model, self.opt, self.history, self.shuffle_rng,
                             epoch, *self.save_args)
        finally:
            self.history.rows = rows

    def _state(self):
        m = self.model
        return ({k: v.copy() for k, v in m.params.items()},
                {k: v.copy() for k, v in m.buffers.items()}, self.opt.state_dict(),
                self.shuffle_rng.bit_generator.state, m.rng.bit_generator.state)

    def _restore(self, state):
        params, buffers, opt, shuffle, rng = state
        for store, saved in ((self.model.params, params), (self.model.buffers, buffers)):
            for k, v in saved.items():
                np.copyto(store[k], v)
        self.opt.load_state_dict(opt)
        self.shuffle_rng.bit_generator.state = shuffle
        self.model.rng.bit_generator.state = rng


def _resume(model, path, optimizer, shuffle_rng):
    """Restore a checkpoint into model and generators: (history, epoch, optimizer, finished)."""
    from .checkpoint import TRAIN_STATE
    ckpt = _load_checkpoint(path)
    state = getattr(ckpt, "train_state", None)
    if state is None:
        raise CheckpointError(f"checkpoint {path} holds no training state (it was saved "
                              f"outside fit); load it with gn.load and fit afresh instead")
    missing = [k for k in TRAIN_STATE if k not in state]  # their types: checked on load
    if missing:
        raise CheckpointError(f"checkpoint {path}: entry 'train_state' lacks {missing}; the "
                              f"file is corrupted")
    history = ckpt.history if ckpt.history is not None else History()
    if len(history) != state["epoch"]:
        raise CheckpointError(f"checkpoint {path}: entry 'history' holds {len(history)} epochs, "
                              f"entry 'train_state' says {state['epoch']}; the file is corrupted")
    params = ckpt.model.params
    if set(params) != set(model.params):
        raise CheckpointError(f"checkpoint {path} is for other params than this model's: "
                              f"missing {sorted(set(model.params) - set(params))}, extra "
                              f"{sorted(set(params) - set(model.params))}")
    for key, value in model.params.items():
        if np.shape(params[key]) != value.shape:
            raise CheckpointError(f"checkpoint {path}: param {key!r} has shape "
                                  f"{np.shape(params[key])}, the model needs {value.shape}")
    for key, value in model.params.items():
        np.copyto(value, params[key])
    for key, value in model.buffers.items():   # the same graph: the same buffers
        np.copyto(value, ckpt.model.buffers[key])
    saved = ckpt.optimizer
    saved_state = saved.state_dict() if isinstance(saved, Optimizer) else saved
    if optimizer is None:
        if saved is None:
            raise CheckpointError(f"checkpoint {path} holds no optimizer; pass optimizer=...")
        opt = _make(saved_state and {"name": saved_state["name"], **saved_state["hyper"]})
    else:
        opt = _make(optimizer)
    if saved_state is not None:
        opt.load_state_dict(saved_state)
    shuffle_rng.bit_generator.state = state["rng"]["shuffle"]
    model.rng.bit_generator.state = state["rng"]["model"]
    finished = state.get("finished")
    if finished == "done":
        finished = None  # all its epochs done: more epochs may still be asked for
    return history, int(state["epoch"]), opt, finished


# --- helpers -------------------------------------------------------------------
def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _make(optimizer):
    if optimizer is None:
        return make_optimizer("adam", lr=0.001)
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        return make_optimizer(optimizer)
    if isinstance(optimizer, dict) and isinstance(optimizer.get("name"), str):
        hyper = {k: v for k, v in optimizer.items() if k != "name"}
        return make_optimizer(optimizer["name"], **hyper)
    raise GraphnetError(f"optimizer must be a graphnet.Optimizer, a registered name or "
                        f"{{'name': ..., **hyperparameters}}, got {optimizer!r}")


def _prepare(model, data, what):
    """Check a dict of arrays once and convert float inputs to the model's dtype.

    A dataset's split (arrays ``x`` and ``y``) is matched to the model's inputs
    by role, as the CLI does: see ``graphnet.datasets.to_feeds``.
    """
    if not isinstance(data, dict) or not data:
        raise FeedError(f"{what} must be a non-empty dict of input name -> array, got "
                        f"{type(data).__name__}")
    inputs = model.inputs
    if set(data) - set(inputs) and set(data) - set(inputs) <= {"x", "y"}:
        from .datasets import to_feeds
        data = to_feeds(model, data, source=what)
    arrays = {}
    for key, value in data.items():
        if key not in inputs:
            raise FeedError(f"{what}: {key!r} is not an input of model {model.name!r}"
                            f"{did_you_mean(key, inputs)}; its inputs are {inputs}")
        arr = np.asarray(value)
        if arr.ndim == 0:
            raise FeedError(f"{what}: input {key!r} needs a batch axis (samples first), got a "
                            f"scalar")
        if model.nodes[key].dtype.startswith("float") and arr.dtype.kind in "fiub" \
                and arr.dtype != model.dtype:
            arr = arr.astype(model.dtype)
        arrays[key] = arr
    n = sample_count({k: len(v) for k, v in arrays.items()}, what)
    if n == 0:
        raise FeedError(f"{what} holds no samples")
    return arrays, n


def check_labels(model, arrays, what="data"):
    """Refuse integer labels that the predictions they are scored against cannot cover.

    A loss reading (predictions of shape (classes,), integer labels) needs every
    label in [0, classes); checked on the whole data before training starts, so
    the message names the node to widen instead of failing in the first batch.
    """
    for loss in model.losses:
        pred, *targets = model.nodes[loss].inputs
        shape = model.nodes[pred].shape
        for name in targets:
            labels = arrays.get(name)
            if (labels is None or not labels.size or labels.dtype.kind not in "iu"
                    or len(shape) != 1 or labels.shape[1:] != ()):
                continue
            lo, hi, classes = int(labels.min()), int(labels.max()), shape[0]
            if lo >= 0 and hi < classes:
                continue
            units = model.nodes[pred].attrs.get("units")
            has = f"{units} units" if units == classes else f"{classes} outputs per sample"
            fix = (f"widen {pred!r} to units={hi + 1}" if units == classes and lo >= 0
                   else "labels must be class numbers from 0")
            raise DataError(f"{what}: the labels of input {name!r} range from {lo} to {hi}, "
                            f"but node {pred!r}, which loss {loss!r} scores them against, has "
                            f"{has} (classes 0 to {classes - 1}); {fix}")


def _shuffle_seed(model, seed):
    if seed is None:
        return np.random.SeedSequence(model.seed, spawn_key=(2,))  # siblings: init, model.rng
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise GraphnetError(f"seed must be a whole number >= 0 or None, got {seed!r}")
    return np.random.SeedSequence(int(seed))


def _whole(value, name, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise GraphnetError(f"{name} must be a whole number >= {low}, got {value!r}")
    return int(value)


def _isatty():
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _in_notebook():
    """True inside a Jupyter kernel, where stdout is no terminal but a bar can be drawn."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _bar(on, total, epoch, epochs):
    """A progress bar for one epoch: tqdm's notebook widget in Jupyter, text in a terminal."""
    if not on:
        return None
    from tqdm.auto import tqdm
    # fit counts the batches up at most every 0.1 s: each update is then drawn
    kwargs = {"total": total, "desc": f"epoch {epoch}/{epochs}", "unit": "batch",
              "mininterval": 0.1, "miniters": 1, "leave": True}
    if _in_notebook():
        return tqdm(**kwargs)
    # the size from shutil, which falls back to 80x24 where a pseudo-terminal reports
    # 0x0 (tqdm would then draw nothing at all)
    cols, rows = shutil.get_terminal_size()
    return tqdm(**kwargs, file=sys.stdout, ncols=cols, nrows=rows)


def _fmt(values):
    return {k: f"{v:.4g}" for k, v in values.items() if isinstance(v, float)}
