"""The History of a fit: one row of plain floats per epoch.

It lives below training and files so that ``fit`` returns one and a
checkpoint hands one back (``gn.load_checkpoint(path).history``).
"""

import numbers

from .errors import GraphnetError


def _is_number(v):
    """A history value: None or a real number, not a bool (plain floats and ints, what fit
    writes, are told apart first: checkpoints check every row of a long run)."""
    return v is None or type(v) in (float, int) or (isinstance(v, numbers.Real)
                                                    and not isinstance(v, bool))


class History:
    """Per-epoch records of a fit: one dict per epoch, plain floats.

    Each row has ``epoch`` (from 1), ``loss`` and the metrics on the training
    data (averaged over the epoch's batches, each measured before its update),
    ``val_loss`` and ``val_<metric>`` when fit has validation data, ``lr`` (of
    the epoch's last update) and ``seconds``. ``history["loss"]`` is the list
    of one key over the epochs.
    """

    def __init__(self, rows=None, stop_reason=None):
        self.rows = [dict(r) for r in rows or []]
        self.stop_reason = stop_reason

    def __getitem__(self, key):
        if not any(key in r for r in self.rows):
            raise KeyError(f"{key!r} is not in this history; it has {self.keys()}")
        return [r.get(key) for r in self.rows]

    def __len__(self):
        return len(self.rows)

    def __contains__(self, key):
        return any(key in r for r in self.rows)

    def keys(self):
        """Every key of any row, in order of first appearance."""
        return list(dict.fromkeys(k for r in self.rows for k in r))

    @property
    def last(self):
        """The last epoch's row (an empty dict before the first epoch)."""
        return dict(self.rows[-1]) if self.rows else {}

    def append(self, row):
        self.rows.append(dict(row))

    def to_dict(self):
        """Plain JSON-able data: ``{"epochs": [row, ...], "stop_reason": str or None}``."""
        return {"epochs": [dict(r) for r in self.rows], "stop_reason": self.stop_reason}

    @classmethod
    def from_dict(cls, data):
        """The inverse of ``to_dict``."""
        if (not isinstance(data, dict) or not isinstance(data.get("epochs"), list)
                or not all(isinstance(r, dict) for r in data["epochs"])):
            raise GraphnetError("a history dict needs a list of dicts under 'epochs', as "
                                "History.to_dict() writes it")
        for i, row in enumerate(data["epochs"]):
            if not all(isinstance(k, str) and _is_number(v) for k, v in row.items()):
                raise GraphnetError(f"history row {i} must map names to numbers, got "
                                    f"{row!r:.80}")
        stop = data.get("stop_reason")
        if stop is not None and not isinstance(stop, str):
            raise GraphnetError(f"a history's stop_reason is text or null, got {stop!r:.80}")
        return cls(data["epochs"], stop)

    def plot(self, path=None, validation_label="validation"):
        """Draw the loss (and accuracy) curves per epoch, train and validation.

        Writes the picture to ``path`` (any format matplotlib knows from the
        suffix: .png, .svg, .pdf) if given; returns the matplotlib Figure.
        ``validation_label`` names the second curve in the legend (``graphnet
        train`` validates on the dataset's test split and says "test").
        Needs matplotlib (``pip install matplotlib``).
        """
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise GraphnetError("History.plot needs matplotlib, which is not installed; "
                                "install it with `pip install matplotlib` (or "
                                "`pip install graphnet[plot]`)") from None
        metrics = [k for k in self.keys() if k not in ("epoch", "lr", "seconds")
                   and not k.startswith("val_") and not k.startswith("loss")]
        panels = ["loss"] + metrics
        fig = Figure(figsize=(5 * len(panels), 3.6), layout="constrained")
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        epochs = self["epoch"] if self.rows else []
        for ax, key in zip(axes, panels):
            for k, style in ((key, "-"), (f"val_{key}", "--")):
                if k in self:
                    ax.plot(epochs, self[k], style, marker="o", markersize=3,
                            label=validation_label if k.startswith("val_") else "train")
            ax.set_xlabel("epoch")
            ax.set_ylabel(key)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend()
        if path is not None:
            fig.savefig(path)
        return fig

    def __repr__(self):
        last = ", ".join(f"{k}={v:.4g}" for k, v in self.last.items()
                         if isinstance(v, float) and k != "seconds")
        return f"<History: {len(self.rows)} epochs{'; ' + last if last else ''}>"
