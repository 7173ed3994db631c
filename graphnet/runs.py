"""One training run: a model and its settings in, a run folder out.

``train_run`` is what ``graphnet train`` does, as a library function that the
command line, ``gn.sweep`` and the lecture's experiments all call: settings
given here override the model file's ``training`` block, the model trains
with a checkpoint after every epoch, and the run folder gets::

    model.npz      the checkpoint (params, optimizer state, history, position)
    metrics.json   train and test loss and accuracy, epochs, seconds, settings
    history.json   one row per epoch
    graph.svg      the model drawn (needs graphviz's dot)
    curves.png     the learning curves (needs matplotlib)

It prints nothing: lines for a person go to ``log`` (a callable), and what
could not be written (graph.svg without graphviz, curves.png without
matplotlib) is listed in ``RunResult.notes``.

>>> import graphnet as gn, tempfile
>>> g = gn.Graph("xor"); x, t = g.input("x", shape=(2,)), g.input("y", shape=(1,))
>>> y = g.add("dense", g.add("tanh", g.add("dense", x, units=8, name="fc1")), units=1)
>>> _ = g.add("binary_cross_entropy", y, t, name="loss"); _ = g.output(y)
>>> result = gn.train_run(g, dataset="xor", epochs=3, lr=0.05, attrs={"fc1.units": 4},
...                       out=tempfile.mkdtemp())
>>> result.metrics["epochs"], result.settings["attrs"]
(3, {'fc1.units': 4})
"""

import json
import math
import os
import time
from dataclasses import dataclass, field

from .callbacks import Callback
from .errors import DataError, GraphnetError, did_you_mean, one_line
from .util import atomic_write

CHECKPOINT = "model.npz"


@dataclass
class RunResult:
    """What ``train_run`` returns.

    ``metrics`` is what metrics.json holds (``train`` and ``test`` scores,
    ``epochs``, ``seconds``, ``settings``), ``history`` the run's History,
    ``out`` the run folder, ``model`` the trained Model, ``notes`` the
    outputs that could not be written and why.
    """

    out: str
    metrics: dict
    history: object
    model: object = None
    notes: list = field(default_factory=list)

    @property
    def settings(self):
        return self.metrics["settings"]


def resolve(model, *, dataset=None, data=None, test_data=None, x=None, y=None,
            dataset_options=None, optimizer=None, optimizer_options=None, lr=None,
            epochs=None, batch_size=None, seed=None, attrs=None, out=None):
    """The graph and the complete settings of a run: arguments over the training block.

    Returns ``(graph, settings)``; ``settings`` is plain JSON data naming
    every choice the run makes (what metrics.json records), so two runs with
    equal settings train the same model bit for bit. ``optimizer`` set to
    another name than the file's drops the file's hyperparameters (they are
    those of its own optimizer); ``optimizer_options`` and ``lr`` go on top.
    ``dataset_options`` go on top of the file's, for the file's dataset.
    """
    from .serialize import training_block
    graph, base = _graph(model)
    if attrs:
        graph = with_attrs(graph, attrs)
    block = training_block(graph) or {}
    spec = block.get("optimizer", {})
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    if optimizer and optimizer != spec.get("name"):
        spec = {"name": optimizer}
    spec.setdefault("name", "adam")
    spec.update(optimizer_options or {})
    if lr is not None:
        spec["lr"] = lr
    if dataset is None and data is None:
        dataset = block.get("dataset")
        if dataset is None and block.get("data"):
            data = os.path.join(base, block["data"])
    if dataset is not None and dataset == block.get("dataset"):
        dataset_options = {**block.get("dataset_options", {}), **(dataset_options or {})}
    if dataset is None and data is None:
        raise DataError("no data to use: pass --dataset NAME or --data FILE "
                        "(or set training.dataset in the model file)")
    if data is not None and dataset_options:
        raise DataError("--dataset-option applies to --dataset, not to --data files")
    settings = {
        "model": graph.name, "optimizer": spec,
        "epochs": epochs if epochs is not None else block.get("epochs", 10),
        "batch_size": batch_size if batch_size is not None else block.get("batch_size", 32),
        "seed": seed if seed is not None else block.get("seed", 0),
        "shuffle": block.get("shuffle", True),
        "validation_split": block.get("validation_split"),
        "dataset": dataset, "dataset_options": dict(dataset_options or {}),
        "data": data and os.path.abspath(data),
        "test_data": test_data and os.path.abspath(test_data), "x": x, "y": y,
        "attrs": dict(attrs or {}),
        "out": os.path.abspath(out or os.path.join("runs", graph.name)),
    }
    return graph, settings


def train_run(model, *, resume=None, checkpoint_every=None, figures=True, log=None,
              log_epochs=False, progress=False, callbacks=(), **settings):
    """Train ``model`` (a model file's path, a Graph or a JSON dict) once; a RunResult.

    settings (each overrides the model file's training block): ``dataset``
    (a registered name) with ``dataset_options``, or ``data`` (a .npz or .csv
    file, with ``x``/``y`` columns and an optional ``test_data`` file; else a
    fixed 80/20 split); ``optimizer`` (a name), ``optimizer_options``
    (its hyperparameters), ``lr``, ``epochs``, ``batch_size``, ``seed`` (of
    the params and the shuffles); ``attrs`` (``{"fc1.units": 32}``: node
    attrs changed before the model is built); ``out`` (the run folder,
    default runs/<model name>).

    resume: None trains from scratch; a checkpoint path continues from it;
    ``"auto"`` continues from the run folder's own checkpoint if there is
    one (a finished one trains nothing more). Either way the result is the
    one of an uninterrupted run. checkpoint_every: write model.npz every this
    many epochs (default: the training block's ``checkpoint_every``, else 1);
    the last epoch and an interrupted one's finished epochs are always
    written. It changes no result, so it is no setting of metrics.json.
    figures: False writes no graph.svg and curves.png (drawing them costs
    more than a small model's training; also no setting).
    log: called with each line for a person;
    log_epochs: also a line per epoch. progress: fit's progress bar (on a
    terminal); callbacks: more graphnet Callbacks for fit.
    """
    from . import datasets as ds
    from .model import Model
    from .plugins import optimizer as make_optimizer
    from .serialize import training_block
    from .train import evaluate, fit

    say = log or (lambda line: None)
    graph, s = resolve(model, **settings)
    block = training_block(graph) or {}
    out = s["out"]
    if os.path.exists(out) and not os.path.isdir(out):
        raise DataError(f"out {out!r} is a file; name a folder")
    checkpoint = os.path.join(out, CHECKPOINT)
    if resume == "auto":
        resume = checkpoint if os.path.exists(checkpoint) else None
    elif resume is not None and not os.path.isfile(resume):
        raise DataError(f"checkpoint {resume!r} does not exist")

    net = Model(graph, seed=s["seed"])
    if not net.losses:
        raise GraphnetError(f"model {graph.name!r} has no loss node, so there is nothing to "
                            f"train; add one, e.g. softmax_cross_entropy(logits, label)")
    splits = load_splits(net, s)
    validation, watched = splits["test"], "test"
    if s["validation_split"]:
        parts = ds.split(splits["train"], s["validation_split"], seed=s["seed"])
        splits["train"], validation, watched = parts["train"], parts["test"], "val"
    spec = dict(s["optimizer"])
    opt = make_optimizer(spec.pop("name"), **spec)
    os.makedirs(out, exist_ok=True)
    n = len(next(iter(splits["train"].values())))
    say(f"training {graph.name!r} ({net.param_count():,} params) on {n} samples: {opt}, "
        f"{s['epochs']} epochs, batch size {s['batch_size']}, seed {s['seed']} -> "
        f"{settings.get('out') or os.path.relpath(out)}/")
    if resume is not None:
        say(_resume_line(resume, s["epochs"]))
    start = time.perf_counter()
    history = fit(net, splits["train"], optimizer=opt, epochs=s["epochs"],
                  batch_size=s["batch_size"], shuffle=s["shuffle"], seed=s["seed"],
                  validation=validation, progress=progress,
                  callbacks=[*callbacks, *([_EpochLines(say, watched)] if log_epochs else [])],
                  checkpoint=checkpoint, resume=resume,
                  checkpoint_every=checkpoint_every or block.get("checkpoint_every", 1))
    seconds = time.perf_counter() - start
    metrics = {**{split: scores(evaluate(net, splits[split])) for split in ("train", "test")},
               "epochs": len(history), "seconds": round(seconds, 3), "settings": s}
    write_json(os.path.join(out, "metrics.json"), metrics)
    write_json(os.path.join(out, "history.json"), history.to_dict())
    notes = [note for note in (_render(net, os.path.join(out, "graph.svg")),
                               _plot(history, os.path.join(out, "curves.png"), watched))
             if note] if figures else []
    say(f"train {format_scores(metrics['train'])}")
    say(f"test {format_scores(metrics['test'])}  ({seconds:.1f} s; wrote "
        f"{settings.get('out') or os.path.relpath(out)}/)")
    return RunResult(out=out, metrics=metrics, history=history, model=net, notes=notes)


def load_splits(model, s):
    """The train and test feeds of ``model`` from resolved settings ``s``.

    A named dataset comes with its fixed test split. A data file is split
    80/20 with a fixed seed, unless ``test_data`` names a separate test file.
    """
    from . import datasets as ds
    if s["dataset"] is not None:
        splits = ds.load(s["dataset"], **s["dataset_options"])
        source = f"dataset {s['dataset']!r}"
        return {k: ds.to_feeds(model, splits[k], source=source) for k in ("train", "test")}
    data, test = s["data"], s["test_data"]
    feeds = ds.to_feeds(model, ds.load_file(data, x=s["x"], y=s["y"]),
                        source=f"data file {data!r}")
    if not test:
        return ds.split(feeds)
    return {"train": feeds, "test": ds.to_feeds(model, ds.load_file(test, x=s["x"], y=s["y"]),
                                                source=f"data file {test!r}")}


def with_attrs(graph, attrs):
    """A copy of ``graph`` with node attrs changed: ``{"fc1.units": 32, ...}``.

    Values given as text (from a command line) are read as JSON where they
    parse (``32``, ``0.5``, ``true``) and kept as text otherwise (``relu``).
    The changed model is checked like a model file.
    """
    from .graph import Graph
    data = graph.to_dict()
    nodes = {node["name"]: node for node in data["nodes"]}
    for key, value in attrs.items():
        name, dot, attr = str(key).rpartition(".")
        if not dot or not name or not attr:
            raise GraphnetError(f"attr override {key!r} must be NODE.ATTR, e.g. fc1.units")
        if name not in nodes:
            raise GraphnetError(f"attr override {key!r}: model {graph.name!r} has no node "
                                f"{name!r}{did_you_mean(name, nodes)}")
        nodes[name].setdefault("attrs", {})[attr] = parse_value(value)
    return Graph.from_dict(data)


def parse_value(value):
    """A command line's text as the JSON value it spells, else the text; others unchanged."""
    if not isinstance(value, str):
        return value
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):   # not JSON, or nested past Python's stack
        return value
    return parsed if not isinstance(parsed, float) or math.isfinite(parsed) else value


def scores(result):
    """The loss and accuracy (None for a model without a classification loss) of what
    ``graphnet.train.evaluate`` returns, as plain floats."""
    accuracy = result.get("accuracy")
    return {"loss": float(result["loss"]),
            "accuracy": None if accuracy is None else float(accuracy)}


def format_scores(s):
    text = f"loss {s['loss']:.4f}"
    if s["accuracy"] is not None:
        text += f", accuracy {s['accuracy']:.2%}"
    return text


def write_json(path, data):
    """Write JSON atomically: a reader (or a rerun after a crash) never sees half a file."""
    text = json.dumps(data, indent=2) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()), GraphnetError)


def read_json(path):
    """The JSON data of ``path``, or None if it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _graph(model):
    """(Graph, folder that relative data paths in its training block start from)."""
    from .graph import Graph
    if isinstance(model, Graph):
        return model, os.getcwd()
    if isinstance(model, dict):
        return Graph.from_dict(model), os.getcwd()
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if path.lower().endswith(".npz"):
            raise DataError("train takes a JSON model file; to continue a run from a "
                            "checkpoint pass the model file with --resume CKPT")
        if not os.path.exists(path):
            raise DataError(f"model file {path!r} does not exist")
        if os.path.isdir(path):
            raise DataError(f"model file {path!r} is a folder, not a file")
        return Graph.from_json(path), os.path.dirname(os.path.abspath(path))
    raise GraphnetError(f"train_run needs a model file's path, a graphnet.Graph or a JSON "
                        f"dict, got {type(model).__name__}")


def _resume_line(path, epochs):
    from .checkpoint import load_checkpoint
    state = load_checkpoint(path).train_state or {}
    done = state.get("epoch", 0)
    finished = state.get("finished")
    if (finished and finished != "done") or done >= epochs:
        return f"checkpoint {path} has finished training ({finished or 'done'}); " \
               f"nothing more to train"
    return f"resuming from {path} after epoch {done} of {epochs}"


class _EpochLines(Callback):
    """A line per epoch for ``say``; ``watched`` names fit's validation data: the test
    split, or the part of the training data the training block's validation_split holds."""

    def __init__(self, say, watched):
        self.say, self.watched = say, watched

    def on_epoch_end(self, run, logs):
        shown = ", ".join(f"{k.replace('val_', self.watched + '_')} {v:.4g}"
                          for k, v in logs.items()
                          if k not in ("epoch", "lr", "seconds") and isinstance(v, float))
        self.say(f"epoch {run.epoch}/{run.epochs}: {shown}")


def _render(model, path):
    """Draw graph.svg; a missing graphviz must not lose a finished training run."""
    from .render import render
    try:
        render(model, path)
    except GraphnetError as exc:
        return "warning: graph.svg not written: " + one_line(exc)
    return None


def _plot(history, path, watched):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return ("note: curves.png not written: matplotlib is not installed "
                "(pip install 'graphnet[plot]')")
    history.plot(path, validation_label="test split" if watched == "test" else "validation")
    return None
