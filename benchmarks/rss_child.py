"""Train the mnist-like MLP for some steps and print the peak RSS in KiB.

Run by ``bench_mlp.py --memory`` in a fresh process per engine, so that each
pays only for what it imports: the numpy baseline never imports graphnet.

    python benchmarks/rss_child.py numpy|graphnet [optimizer] [steps]
"""

import resource
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from threadpoolctl import threadpool_limits  # noqa: E402

from baselines import NumpyMLP, make_data  # noqa: E402

SIZES, ACT, BATCH, LOSS = [784, 256, 256, 10], "relu", 128, "ce"


def main(engine, optimizer="adam", steps=50):
    x, y = make_data(SIZES, BATCH, LOSS)
    with threadpool_limits(1):
        if engine == "graphnet":
            from bench_mlp import GraphnetMLP
            m = GraphnetMLP(SIZES, ACT, LOSS, x, y, optimizer=optimizer)
        else:
            m = NumpyMLP(SIZES, ACT, LOSS, x, y, optimizer=optimizer)
        for _ in range(int(steps)):
            m.step()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


if __name__ == "__main__":
    main(*sys.argv[1:])
