"""Train the mnist-like MLP for some steps; print the peak RSS and the RSS after
the imports (before the model is made), in KiB.

Run by ``bench_mlp.py --memory`` in a fresh process per engine, so that each
pays only for what it imports: the numpy baseline never imports graphnet.
``graphnet`` steps the loop of the docs; ``graphnet_fit`` makes the same steps
through ``model.fit`` (the one batch as the whole data, unshuffled, one step
per epoch), so that fit's own imports count too.

    python benchmarks/rss_child.py numpy|graphnet|graphnet_fit [optimizer] [steps]
"""

import resource
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from baselines import NumpyMLP, make_data  # noqa: E402

try:
    from threadpoolctl import threadpool_limits
except ImportError:                      # optional: BLAS then uses its default threads
    import contextlib

    def threadpool_limits(n):
        return contextlib.nullcontext()

SIZES, ACT, BATCH, LOSS = [784, 256, 256, 10], "relu", 128, "ce"


def main(engine, optimizer="adam", steps=50):
    x, y = make_data(SIZES, BATCH, LOSS)
    if engine.startswith("graphnet"):
        from bench_mlp import GraphnetMLP as MLP
        import graphnet
        graphnet.plugins.registry()   # the plugins load on first use: count them as imports
        import graphnet.model         # and so does the engine (networkx with it)
        if engine == "graphnet_fit":
            import graphnet.train
    else:
        MLP = NumpyMLP
    imported = rss_kib("VmRSS")
    with threadpool_limits(1):
        m = MLP(SIZES, ACT, LOSS, x, y, optimizer=optimizer)
        if engine == "graphnet_fit":
            m.model.fit(m.feeds, optimizer=m.opt, epochs=int(steps), batch_size=BATCH,
                        shuffle=False, progress=False)
        else:
            for _ in range(int(steps)):
                m.step()
    print(rss_kib("VmHWM"), imported)


def rss_kib(field):
    """VmRSS (now) or VmHWM (peak) of this process in KiB. Not ru_maxrss: Linux carries
    it over exec from the forked parent, so a big parent would show."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


if __name__ == "__main__":
    main(*sys.argv[1:])
