"""The ``graphnet`` command: train, sweep, evaluate, predict, summary, render, plugins, gradcheck, schema.

Every problem a user's input can cause (a missing file, a model that does
not validate, data that does not fit the model, a bad flag) ends the command
with one line on stderr that names it, and exit code 2; ``--debug`` adds the
traceback. A failed gradient check exits with 1.

    graphnet train examples/models/digits_mlp.json
    graphnet summary runs/digits_mlp/model.npz
"""

import argparse
import json
import math
import os
import signal
import sys
import threading
import traceback
import warnings

import numpy as np

from .errors import (DataError, GraphnetError, Terminated, interrupt_seen, on_sigterm,
                     one_line)
from .util import atomic_write

PROG = "graphnet"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(GraphnetError):
    """A bad command line: an unknown flag, a missing argument, a bad value."""

    def __init__(self, message, prog=PROG):
        super().__init__(message)
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')", self.prog)


# --- flag value types: checked by argparse, reported as one line -----------------

def _number_type(name, convert, ok, expected):
    """An argparse type called ``name``: ``convert(text)``, refused unless ``ok(value)``.

    Both a text that does not convert and a value out of range get the same
    one-line message, "expected <expected>, got '<text>'".
    """
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = parse.__qualname__ = name
    return parse


positive_int = _number_type("positive_int", int, lambda v: v >= 1, "a positive integer")
natural_int = _number_type("natural_int", int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number_type("positive_float", float,
                              lambda v: math.isfinite(v) and v > 0, "a positive number")


def key_value(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


# --- loading models and data ------------------------------------------------------

def _existing(path, what):
    if not os.path.exists(path):
        raise DataError(f"{what} {path!r} does not exist")
    if os.path.isdir(path):
        raise DataError(f"{what} {path!r} is a folder, not a file")
    return path


def read_graph(path):
    """The Graph of a JSON model file (checked by graphnet.serialize)."""
    from .graph import Graph
    return Graph.from_json(_existing(path, "model file"))


def load_trained(path, command):
    """The Model of a checkpoint; a JSON model file holds no trained weights, so it is refused."""
    if not path.lower().endswith((".npz", ".onnx")):
        raise UsageError(f"{path!r} is a model file, which holds no trained weights "
                         f"(its params would be random); pass a checkpoint, e.g. "
                         f"runs/<name>/model.npz, which 'graphnet train {path}' writes",
                         f"{PROG} {command}")
    return load_model(path)


def load_model(path, seed=0):
    """A Model from a JSON model file (fresh params from ``seed``), a checkpoint (.npz)
    or an ONNX file (.onnx, with its weights)."""
    from .model import Model
    if path.lower().endswith(".npz"):
        from .checkpoint import load
        return load(_existing(path, "checkpoint"))
    if path.lower().endswith(".onnx"):
        from .onnx import from_onnx
        return from_onnx(_existing(path, "ONNX file"), seed=seed)
    return Model(read_graph(path), seed=seed)


def load_drawable(path):
    """What ``render`` draws, and the problem that keeps it from compiling (or None): a
    checkpoint's Model, or a model file's Graph, which is drawn even if it does not compile."""
    if path.lower().endswith((".npz", ".onnx")):
        return load_model(path), None
    try:
        return read_graph(path), None
    except GraphnetError as exc:   # JSON that parses and follows the schema is still drawn
        from .serialize import graph_from_json
        return graph_from_json(path, compile=False), exc


# --- commands -----------------------------------------------------------------------

def cmd_summary(args):
    print(load_model(args.model).summary())


def cmd_plugins(args):
    from . import plugins
    rows = []
    for e in plugins.entries():
        kind = e.kind
        if kind == "op":
            if e.name in plugins.registry().tables()["activation"]:
                continue  # the elementwise op an activation became: listed as the activation
            kind = "loss" if getattr(e.obj, "kind", None) == "loss" else "op"
        if args.kind and kind != args.kind:
            continue
        rows.append({"kind": kind, "name": e.name, "plugin": e.plugin,
                     "distribution": e.distribution, "version": e.version})
    order = list_kinds()
    rows.sort(key=lambda r: (order.index(r["kind"]) if r["kind"] in order else 99, r["name"]))
    failures = [{"plugin": p, "distribution": d, "message": m} for p, d, m in plugins.failures()]
    if args.json:
        print(json.dumps({"plugins": rows, "failures": failures}, indent=2))
        return
    header = ("kind", "name", "plugin", "distribution")
    table = [header] + [(r["kind"], r["name"], r["plugin"],
                         f"{r['distribution'] or '-'} {r['version'] or ''}".strip())
                        for r in rows]
    widths = [max(len(t[i]) for t in table) for i in range(4)]
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t, widths)).rstrip())
    for f in failures:
        print(f"FAILED to load: {f['message']}")


def list_kinds():
    """The kinds ``graphnet plugins`` lists: the registry's, with losses apart from ops."""
    from .plugins import KINDS
    kinds = list(KINDS)
    kinds.insert(kinds.index("activation") + 1, "loss")
    return kinds


def random_feeds(model, batch, rng):
    """Random data shaped by a model's inputs: normal features, targets in range.

    An integer input gets labels in [0, classes), where classes is the width
    of the predictions of the loss that reads it (2 if none does); a float
    target of a loss gets values in [0, 1) (valid for binary cross-entropy).
    """
    from .datasets import input_roles
    _, targets = input_roles(model)
    feeds = {}
    for name in model.inputs:
        node = model.nodes[name]
        shape = (batch, *node.shape)
        if node.dtype.startswith("int"):
            classes = 2
            for other in model.nodes.values():
                if other.kind == "loss" and name in other.inputs[1:]:
                    pred = model.nodes[other.inputs[0]].shape
                    classes = pred[-1] if pred else 2
                    break
            feeds[name] = rng.integers(0, classes, size=shape)
        elif name in targets:
            feeds[name] = rng.uniform(0, 1, size=shape)
        else:
            feeds[name] = rng.normal(size=shape)
    return feeds


def cmd_gradcheck(args):
    from .gradients import gradcheck
    model = load_model(args.model, seed=args.seed)
    if args.model.lower().endswith(".onnx") and not model.losses:
        from .onnx import with_loss   # an ONNX file has no loss: check against mse
        model = with_loss(model, "mse", output=model.outputs[0])
    if not model.losses:
        raise GraphnetError(f"model {model.name!r} has no loss node, so there is no gradient "
                            f"to check; add a loss such as mse or softmax_cross_entropy")
    feeds = random_feeds(model, args.batch, np.random.default_rng(args.seed))
    report = gradcheck(model, feeds, inputs=True, tolerance=args.tolerance, seed=args.seed)
    print(f"gradcheck of {model.name!r} on a random batch of {args.batch}:")
    print(report)
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_schema(args):
    from .schema import model_schema
    schema = model_schema()
    text = json.dumps(schema, indent=2) + "\n"
    if args.output:
        atomic_write(args.output, lambda f: f.write(text.encode()), GraphnetError)
        print(f"wrote {args.output}")
    else:
        print(text, end="")


def cmd_render(args):
    from .render import render
    suffix = os.path.splitext(args.output)[1].lower()
    if suffix not in (".svg", ".png", ".pdf", ".dot"):
        raise UsageError(f"render: output {args.output!r} must end in .svg, .png, .pdf or .dot")
    drawable, problem = load_drawable(args.model)
    render(drawable, args.output, rankdir=args.rankdir, collapse=args.collapse)
    print(f"wrote {args.output}")
    if problem is not None:   # drawn with the failing node marked; the check failed: exit 1
        _print_error(problem)
        return EXIT_FAILED


def cmd_export(args):
    from .onnx import to_onnx
    if not args.output.lower().endswith(".onnx"):
        raise UsageError(f"export: output {args.output!r} must end in .onnx")
    model = load_model(args.model)
    proto = to_onnx(model, args.output, opset=args.opset)
    print(f"wrote {args.output} (ONNX opset {proto.opset_import[0].version}, inputs "
          f"{', '.join(i.name for i in proto.graph.input)}, outputs "
          f"{', '.join(o.name for o in proto.graph.output)})")


def _settings(args):
    """train_run's settings from the flags train and sweep share."""
    return dict(dataset=args.dataset, data=args.data, test_data=args.test_data, x=args.x,
                y=args.y, dataset_options=dict(args.dataset_option or []) or None,
                optimizer=args.optimizer, lr=args.lr, epochs=args.epochs,
                batch_size=args.batch_size, seed=args.seed, attrs=dict(args.set or []) or None,
                out=args.out)


def cmd_train(args):
    from .runs import train_run
    result = train_run(args.model, **_settings(args), resume=args.resume,
                       checkpoint_every=args.checkpoint_every,
                       log=lambda line: print(line, flush=True), progress=not args.quiet,
                       log_epochs=not args.quiet and not sys.stdout.isatty())
    for note in result.notes:
        print(f"{PROG}: {note}", file=sys.stderr)


def cmd_sweep(args):
    from .sweep import parse_grid, sweep
    settings = _settings(args)
    out = settings.pop("out")
    grid = parse_grid(args.grid)
    say = None if args.quiet else (lambda line: print(line, flush=True))
    try:
        rows = sweep(args.model, grid, executor=args.executor, workers=args.workers,
                     scheduler=args.scheduler, out=out, progress=not args.quiet and
                     sys.stderr.isatty(), log=say, checkpoint_every=args.checkpoint_every,
                     **settings)
    except KeyboardInterrupt:
        interrupt_seen()
        print(f"{PROG}: interrupted; run the same command again to train what is left",
              file=sys.stderr)
        return 130
    failed = [r for r in rows if r["error"]]
    folder = out or os.path.join("runs", f"{_model_name(args.model)}-sweep")
    print(f"{len(rows)} cells, {len(failed)} failed; wrote {folder}/results.csv")
    return EXIT_FAILED if failed else EXIT_OK


def _model_name(path):
    return read_graph(path).name


def cmd_evaluate(args):
    from . import datasets as ds
    from .runs import format_scores, scores
    from .train import evaluate
    model = load_trained(args.checkpoint, "evaluate")
    if args.checkpoint.lower().endswith(".onnx") and not model.losses:
        model = _onnx_with_loss(model, args)
    if args.dataset:
        options = dict(args.dataset_option or [])
        feeds = ds.to_feeds(model, ds.load(args.dataset, **options)["test"],
                            source=f"dataset {args.dataset!r}")
        split = "test"
    elif args.data:
        arrays = ds.load_file(args.data, x=args.x, y=args.y)
        feeds = ds.to_feeds(model, arrays, source=f"data file {args.data!r}")
        split = "all"
    else:
        raise UsageError("evaluate: pass --dataset NAME (its test split) or --data FILE")
    s = scores(evaluate(model, feeds, batch_size=args.batch_size))
    n = len(_first(feeds))
    if args.json:
        print(json.dumps({**s, "samples": n, "split": split}))
    else:
        print(f"{split} ({n} samples): {format_scores(s)}")


def _onnx_with_loss(model, args):
    """An imported model scored by the loss its data calls for, on its first output:
    integer labels take softmax_cross_entropy (binary_cross_entropy for one logit),
    others mse."""
    from . import datasets as ds
    from .onnx import with_loss
    if args.dataset:
        y = ds.load(args.dataset, **dict(args.dataset_option or []))["test"].get("y")
    else:
        y = ds.load_file(args.data, x=args.x, y=args.y).get("y") if args.data else None
    if y is None:
        return model
    output = model.outputs[0]
    units = model.nodes[output].shape[-1:]
    if np.asarray(y).dtype.kind in "iu":
        loss = "binary_cross_entropy" if units == (1,) else "softmax_cross_entropy"
    else:
        loss = "mse"
    return with_loss(model, loss, output=output, target="y")


def cmd_predict(args):
    from . import datasets as ds
    model = load_trained(args.checkpoint, "predict")
    arrays = ds.load_file(args.data, x=args.x, y=args.y)
    feeds = ds.to_feeds(model, arrays, source=f"data file {args.data!r}", targets=False)
    features, _ = ds.input_roles(model)
    feeds = {k: v for k, v in feeds.items() if k in features}
    suffix = os.path.splitext(args.output)[1].lower()
    if suffix not in (".npy", ".csv", ".npz"):
        raise UsageError(f"predict: output {args.output!r} must end in .npy, .csv or .npz")
    outputs = model.predict(feeds, batch_size=args.batch_size)
    if suffix == ".npz":
        atomic_write(args.output, lambda f: np.savez(f, **outputs), GraphnetError)
    else:
        if len(outputs) != 1:
            raise UsageError(f"model {model.name!r} has {len(outputs)} outputs "
                             f"({', '.join(outputs)}); write them to a .npz file")
        (name, values), = outputs.items()
        if suffix == ".npy":
            atomic_write(args.output, lambda f: np.save(f, values), GraphnetError)
        else:
            flat = values.reshape(len(values), math.prod(values.shape[1:]))  # 0 rows too
            cols = [name] if flat.shape[1] == 1 and values.ndim == 1 else [
                f"{name}_{i}" for i in range(flat.shape[1])]
            if args.classes:  # argmax of logits; a single logit (binary) is class 1 above 0
                cols.append("class")
                guess = flat.argmax(1) if flat.shape[1] > 1 else (flat[:, 0] > 0)
                flat = np.column_stack([flat, guess.astype(flat.dtype)])
            text = "\n".join([",".join(cols)] + [",".join(f"{v:.9g}" for v in row)
                                                  for row in flat]) + "\n"
            atomic_write(args.output, lambda f: f.write(text.encode()), GraphnetError)
    n = len(_first(feeds))
    print(f"wrote {args.output} ({', '.join(f'{k} {v.shape}' for k, v in outputs.items())} "
          f"for {n} samples)")


# --- helpers ------------------------------------------------------------------------

def _first(feeds):
    return next(iter(feeds.values()))


def _print_error(exc, prog=PROG):
    """One line per problem on stderr: a model file's several problems each get theirs."""
    for problem in getattr(exc, "problems", None) or [exc]:
        print(f"{prog}: error: {one_line(problem)}", file=sys.stderr)


def _print_warning(message, category, filename, lineno, file=None, line=None):
    """warnings.showwarning for the command: one line, without the source line quoted."""
    print(f"{PROG}: warning: {one_line(message)}", file=sys.stderr)


# --- the parser -----------------------------------------------------------------------

EXAMPLES = {
    "train": "graphnet train examples/models/digits_mlp.json --epochs 40 --out runs/digits",
    "sweep": "graphnet sweep examples/models/digits_mlp.json --grid lr=0.001,0.01 "
             "--grid seed=0,1,2 --epochs 5",
    "evaluate": "graphnet evaluate runs/digits_mlp/model.npz --dataset digits",
    "predict": ("graphnet predict runs/digits_mlp/model.npz --data "
                "examples/data/new_digits.csv -o predictions.csv"),
    "summary": "graphnet summary examples/models/digits_mlp.json",
    "render": "graphnet render examples/models/digits_mlp.json -o digits_mlp.svg",
    "plugins": "graphnet plugins --kind optimizer",
    "gradcheck": "graphnet gradcheck examples/models/digits_mlp.json",
    "schema": "graphnet schema -o model-1.json",
    "export": "graphnet export runs/digits_mlp/model.npz -o digits_mlp.onnx",
}


def _data_flags(p, dataset=True, test_data=False):
    group = p.add_mutually_exclusive_group()
    if dataset:
        group.add_argument("--dataset", metavar="NAME",
                           help="a registered dataset: digits, moons, spirals, xor, sine, or "
                                "one a plugin adds (see 'graphnet plugins --kind dataset')")
    group.add_argument("--data", metavar="FILE",
                       help=".npz file (arrays named after the model's inputs, or x and y) or "
                            ".csv file (see --x and --y)")
    if dataset:
        p.add_argument("--dataset-option", metavar="KEY=VALUE", type=key_value, action="append",
                       help="an option of the dataset, e.g. noise=0.2 or n=500 (repeatable)")
    if test_data:
        p.add_argument("--test-data", metavar="FILE",
                       help="a separate test file for --data (default: a fixed 20%% of --data)")
    p.add_argument("--x", metavar="COLS",
                   help="CSV feature columns: header names or 0-based indices, comma-separated, "
                        "ranges as 0:64 (default: every column but the target)")
    p.add_argument("--y", metavar="COL",
                   help="CSV target column (default: the column headed y, label, target or "
                        "class)")


def _training_flags(p, out_help):
    """The model, data and training flags that train and sweep share."""
    p.add_argument("model", metavar="MODEL.json")
    _data_flags(p, test_data=True)
    p.add_argument("--optimizer", metavar="NAME", help="a registered optimizer (default adam)")
    p.add_argument("--lr", type=positive_float, metavar="X", help="learning rate")
    p.add_argument("--epochs", type=positive_int, metavar="N", help="total epochs")
    p.add_argument("--batch-size", type=positive_int, metavar="N")
    p.add_argument("--seed", type=natural_int, metavar="N",
                   help="seeds the params and the shuffles")
    p.add_argument("--set", metavar="NODE.ATTR=VALUE", type=key_value, action="append",
                   help="change a node's attr before training, e.g. fc1.units=32 "
                        "(repeatable)")
    p.add_argument("--checkpoint-every", type=positive_int, metavar="K",
                   help="write model.npz every K epochs, not after each one (the last epoch "
                        "and, on Ctrl-C, the finished ones are always written)")
    p.add_argument("--out", metavar="DIR", help=out_help)


def build_parser():
    from . import __version__
    debug = Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback of an error")
    parser = Parser(prog=PROG, description="graphnet: a graph-based neural-network engine. "
                    "MODEL is a JSON model file, a checkpoint (.npz) or an ONNX file (.onnx).",
                    epilog="example: graphnet train examples/models/digits_mlp.json",
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"graphnet {__version__}")
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def command(name, func, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[debug],
                           epilog=f"example:\n  {EXAMPLES[name]}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    p = command("train", cmd_train, "train a JSON model; flags override its training block")
    _training_flags(p, "output folder (default runs/<model name>)")
    p.add_argument("--resume", metavar="CKPT",
                   help="continue from a checkpoint (DIR/model.npz) to the same result as an "
                        "uninterrupted run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = command("sweep", cmd_sweep, "train a JSON model once per cell of a grid of settings, "
                "on local processes or a dask cluster; a rerun trains only what is missing")
    _training_flags(p, "sweep folder (default runs/<model name>-sweep)")
    p.add_argument("--grid", metavar="KEY=V1,V2,...", action="append", required=True,
                   help="a swept setting: lr, epochs, batch_size, seed, optimizer, "
                        "optimizer.<hyper>, dataset.<option> or <node>.<attr> (repeatable; "
                        "the cells are every combination)")
    p.add_argument("--executor", choices=["serial", "processes", "dask"],
                   help="where cells run (default processes; dask with --scheduler)")
    p.add_argument("--workers", type=positive_int, metavar="N",
                   help="processes (default: one per core); dask: workers of the local cluster")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a running dask.distributed scheduler, e.g. tcp://10.0.0.5:8786 "
                        "(implies --executor dask; without it dask starts a local cluster)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no line per cell")

    p = command("evaluate", cmd_evaluate, "loss and accuracy of a checkpoint on data "
                "(--dataset: its test split; --data: the whole file)")
    p.add_argument("checkpoint", metavar="CKPT")
    _data_flags(p)
    p.add_argument("--batch-size", type=positive_int, default=1024, metavar="N")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("predict", cmd_predict, "run a checkpoint on a data file and write its outputs")
    p.add_argument("checkpoint", metavar="CKPT")
    _data_flags(p, dataset=False)
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help=".npy (one output), .csv (one output, a column per unit) or .npz")
    p.add_argument("--classes", action="store_true",
                   help="CSV: add a column with the predicted class (the argmax of the "
                        "logits; with one logit, 1 where it is above 0)")
    p.add_argument("--batch-size", type=positive_int, default=1024, metavar="N")

    p = command("summary", cmd_summary, "print the model's table of nodes, shapes and params")
    p.add_argument("model", metavar="MODEL")

    p = command("render", cmd_render, "draw the model with graphviz")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="FILE.svg, .png, .pdf or .dot (the format follows the suffix)")
    p.add_argument("--rankdir", choices=["TB", "LR", "BT", "RL"], default="TB",
                   help="direction of the drawing (default TB: top to bottom)")
    p.add_argument("--collapse", action="store_true",
                   help="fold each layer with the activations that follow it into one box")

    p = command("plugins", cmd_plugins, "list every registered op, activation, loss, "
                "optimizer, schedule, initializer and dataset with the plugin and "
                "distribution it came from, and plugins that failed to load")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--kind", choices=list_kinds(), help="list only this kind")

    p = command("gradcheck", cmd_gradcheck, "check the model's backward pass against finite "
                "differences on random data shaped by its inputs (exit 1 if it fails)")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--batch", type=positive_int, default=4, metavar="N")
    p.add_argument("--seed", type=natural_int, default=0, metavar="N")
    p.add_argument("--tolerance", type=positive_float, default=1e-6, metavar="X")

    p = command("export", cmd_export, "write the model's inference graph (outputs, no "
                "losses) with its weights as ONNX, for onnxruntime, Netron and other tools")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("-o", "--output", required=True, metavar="FILE.onnx")
    p.add_argument("--opset", type=positive_int, metavar="N",
                   help="the ONNX opset to write (default 18)")

    p = command("schema", cmd_schema, "print the JSON Schema of model files (with every "
                "installed plugin's ops and attrs)")
    p.add_argument("-o", "--output", metavar="FILE", help="write it to FILE instead")
    return parser


def main(argv=None):
    """Run the command line; return the exit code (0 ok, 1 check failed, 2 bad input)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    # numpy's floating-point warnings are not shown: what they warn of (a diverging run,
    # non-finite params) ends the command as one line from the NaN guard and the checks
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.showwarning = _print_warning
        return _run(argv, debug)


def _run(argv, debug):
    previous = on_sigterm() if threading.current_thread() is threading.main_thread() else None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        debug = debug or getattr(args, "debug", False)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return args.func(args) or EXIT_OK
    except BrokenPipeError:  # `graphnet plugins | head`: the reader left; say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except (GraphnetError, OSError) as exc:
        if debug:
            traceback.print_exc()
        what = exc if isinstance(exc, GraphnetError) else f"{exc.strerror or exc}" + (
            f": {exc.filename!r}" if getattr(exc, "filename", None) else "")
        _print_error(what, getattr(exc, "prog", PROG))
        return EXIT_USAGE
    except MemoryError as exc:  # sizes the input asked for (--batch 10**9) beyond the machine
        if debug:
            traceback.print_exc()
        _print_error(f"out of memory ({one_line(exc)}); ask for less: a smaller batch, model "
                     f"or data file")
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
        interrupt_seen()
        terminated = isinstance(exc, Terminated)
        print(f"{PROG}: interrupted{' (SIGTERM)' if terminated else ''}", file=sys.stderr)
        return 143 if terminated else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
