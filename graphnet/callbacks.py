"""Callbacks: code that ``fit`` calls at fixed points of training.

Subclass ``Callback`` and override the methods you need; each receives the
``Run`` (the model, the optimizer, the history so far, the epoch and step
counters) and may stop training with ``run.stop_training(reason)``: fit
finishes the current batch (or epoch) and ends cleanly, and the reason lands
in ``history.stop_reason``.

The order of calls::

    on_train_begin(run)
    for every epoch:   on_epoch_begin(run)
        for every batch:   forward, backward, update, then on_batch_end(run, logs)
        validation, then   on_epoch_end(run, logs)
    on_train_end(run)

``logs`` is a dict of floats: in ``on_batch_end`` the batch's ``loss`` and
metrics (computed before the update); in ``on_epoch_end`` the epoch's row of
the History (``loss``, ``accuracy``, ``val_loss``, ..., ``lr``, ``seconds``),
to which a callback may add its own entries.

>>> import graphnet as gn
>>> class PrintLoss(gn.Callback):
...     def on_epoch_end(self, run, logs):
...         print(f"epoch {run.epoch}: {logs['loss']:.3f}")
"""

import numpy as np

from .errors import GraphnetError


class Callback:
    """Base class: every hook does nothing until overridden."""

    def on_train_begin(self, run):
        """Before the first epoch (after a resume has restored its state)."""

    def on_epoch_begin(self, run):
        """Before the first batch of epoch ``run.epoch`` (counted from 1)."""

    def on_batch_end(self, run, logs):
        """After the update of batch ``run.batch`` (from 1); ``logs`` has its loss and metrics."""

    def on_epoch_end(self, run, logs):
        """After the epoch's validation; ``logs`` is the epoch's History row."""

    def on_train_end(self, run):
        """After the last epoch, or after a callback stopped training."""


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    ``monitor`` is a History key ("val_loss" by default: pass ``validation``
    to fit, or monitor "loss"); it improves when it beats the best value so
    far by more than ``min_delta``, downwards for losses and upwards for
    accuracies (``mode`` "min"/"max" overrides the guess). With
    ``restore_best_weights`` the params of the best epoch are copied back into
    the model when training ends, whether it stopped early or not.

    >>> stop = EarlyStopping(patience=3, restore_best_weights=True)
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto",
                 restore_best_weights=False):
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) \
                or patience < 0:
            raise GraphnetError(f"EarlyStopping: patience must be a whole number >= 0, "
                                f"got {patience!r}")
        if mode not in ("auto", "min", "max"):
            raise GraphnetError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', "
                                f"got {mode!r}")
        if not min_delta >= 0:
            raise GraphnetError(f"EarlyStopping: min_delta must be >= 0, got {min_delta!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        self.mode, self.restore_best_weights = mode, restore_best_weights
        self.best = self.best_epoch = self.best_params = None
        self.wait = 0

    def on_train_begin(self, run):
        self.best = self.best_epoch = self.best_params = None
        self.wait = 0

    def _better(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, run, logs):
        value = logs.get(self.monitor)
        if value is None:
            hint = ("pass validation=... to fit, or EarlyStopping(monitor='loss')"
                    if self.monitor.startswith("val_") else "pick one of the History's keys")
            raise GraphnetError(f"EarlyStopping monitors {self.monitor!r}, which this fit does "
                                f"not report (it reports {sorted(logs)}); {hint}")
        if self._better(value):
            self.best, self.best_epoch, self.wait = value, run.epoch, 0
            if self.restore_best_weights:
                if self.best_params is None:
                    self.best_params = {k: v.copy() for k, v in run.model.params.items()}
                else:
                    for k, v in run.model.params.items():
                        np.copyto(self.best_params[k], v)
            return
        self.wait += 1
        if self.wait > self.patience:
            run.stop_training(f"early stopping: {self.monitor} has not improved for "
                              f"{self.wait} epochs (best {self.best:.6g} at epoch "
                              f"{self.best_epoch})")

    def on_train_end(self, run):
        if self.restore_best_weights and self.best_params is not None:
            for k, v in run.model.params.items():
                np.copyto(v, self.best_params[k])


class LearningRateLogger(Callback):
    """Record the learning rate of every update (useful with schedules).

    ``steps`` holds ``(update number, lr)`` pairs, ``epochs`` the lr at the end
    of each epoch; with ``verbose`` it prints the latter. (The History also
    keeps the lr of each epoch's last update under ``"lr"``.)
    """

    def __init__(self, verbose=False):
        self.verbose = verbose
        self.steps, self.epochs = [], []

    def on_batch_end(self, run, logs):
        self.steps.append((run.optimizer.step_count, run.optimizer.lr))

    def on_epoch_end(self, run, logs):
        self.epochs.append(run.optimizer.lr)
        if self.verbose:
            print(f"epoch {run.epoch}: lr {run.optimizer.lr:.6g}")
