"""What every lecture example shares: its command line, matplotlib, and its outputs.

Each example runs as ``python examples/<name>.py [--quick] [--out DIR]``: it
prints its headline numbers, writes its figures (PNG) into DIR (default
examples/out/) and the same numbers as DIR/<name>.json, which the smoke test
(tests/test_examples.py) checks. The examples that sweep (many trainings or
many trajectories) take ``--executor serial|processes|dask``, ``--workers N``
and ``--scheduler ADDRESS``, as ``graphnet sweep`` does: the same cells give
the same numbers on any executor.
"""

import argparse
import io
import json
import sys
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "out"
DPI = 80


def parse_args(name, description, sweeps=False):
    """Parse --quick and --out (and with ``sweeps`` the executor flags); return the args
    with ``out`` made and ``started`` set."""
    parser = argparse.ArgumentParser(prog=f"examples/{name}.py", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a smaller, faster run (under 20 seconds), as CI runs it")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"folder for the figures and {name}.json (default: examples/out)")
    if sweeps:
        parser.add_argument("--executor", choices=("serial", "processes", "dask"),
                            default=None, help="where the sweep's cells run (default: "
                            "processes; dask when --scheduler is given)")
        parser.add_argument("--workers", type=int, default=None,
                            help="worker processes (default: one per core)")
        parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                            help="a running dask.distributed scheduler, e.g. "
                                 "tcp://10.0.0.5:8786 (implies --executor dask)")
    args = parser.parse_args()
    if sweeps and args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    args.out.mkdir(parents=True, exist_ok=True)
    args.name = name
    args.started = time.perf_counter()
    return args


def executor(args):
    """The sweep keywords (executor, workers, scheduler) from the command line."""
    return {"executor": args.executor, "workers": args.workers, "scheduler": args.scheduler}


def pyplot():
    """matplotlib.pyplot on the Agg backend, or exit with how to install it."""
    try:
        import matplotlib
    except ImportError:
        sys.exit("this example draws figures with matplotlib, which is not installed; "
                 "install it with: pip install 'graphnet[plot]' (or pip install matplotlib)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, args, filename):
    """Write a figure as DIR/filename and close it: a PNG at a modest dpi, reduced to
    a 256-colour palette (a third of the bytes; plots have few colours anyway)."""
    path = args.out / filename
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    from PIL import Image  # matplotlib depends on Pillow
    image = Image.open(buffer).convert("RGB")
    image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
        path, optimize=True)
    fig.clf()
    import matplotlib.pyplot as plt
    plt.close(fig)
    print(f"wrote {path}")
    return path


def render(model_or_graph, args, filename, **kwargs):
    """Render a graph with graphnet.render into DIR/filename; say so if it cannot."""
    import graphnet as gn
    path = args.out / filename
    try:
        gn.render(model_or_graph, str(path), **kwargs)
    except Exception as exc:  # graphviz's dot missing, say, must not stop the lecture
        print(f"could not render {filename}: {type(exc).__name__}: {exc}")
        return None
    print(f"wrote {path}")
    return path


def finish(args, numbers):
    """Write DIR/<name>.json with the headline numbers and the seconds taken."""
    numbers = dict(numbers, quick=bool(args.quick),
                   seconds=round(time.perf_counter() - args.started, 2))
    path = args.out / f"{args.name}.json"
    path.write_text(json.dumps(numbers, indent=2, default=float) + "\n")
    print(f"wrote {path} ({numbers['seconds']} s)")
    return numbers
