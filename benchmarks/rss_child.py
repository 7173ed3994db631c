"""Train the mnist-like MLP for some steps; print the peak RSS and the RSS after
the imports (before the model is made), in KiB.

Run by ``bench_mlp.py --memory`` in a fresh process per engine, so that each
pays only for what it imports: the numpy baseline never imports graphnet.
``graphnet`` steps the loop of the docs; ``graphnet_fit`` makes the same steps
through ``model.fit`` (the one batch as the whole data, unshuffled, one step
per epoch), so that fit's own imports count too.

``numpy_networkx`` is the numpy loop with NetworkX imported too: the least an engine
whose models are NetworkX graphs can take.

    python benchmarks/rss_child.py numpy|numpy_networkx|graphnet|graphnet_fit [optimizer] [steps]
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
        from graphnet_mlp import GraphnetMLP as MLP
        import graphnet
        graphnet.plugins.registry()   # the plugins load on first use: count them as imports
        import graphnet.model         # and so does the engine (networkx with it)
        if engine == "graphnet_fit":
            import graphnet.train
    else:
        if engine == "numpy_networkx":   # the floor of an engine whose model is a NetworkX graph
            import networkx  # noqa: F401
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


def measure(engine, optimizer="adam", steps=50):
    """(peak, after-import) KiB of a fresh process training with ``engine``.

    Its modules' bytecode is cached (in the temp dir), as an installed package's is,
    even where PYTHONDONTWRITEBYTECODE is set: otherwise every run compiles
    graphnet's source (and the harness's) anew, and the compiler's memory stays in
    the RSS (2.3 MiB of graphnet's after-import RSS). The first run writes the
    cache, the second is the one measured."""
    import subprocess   # here, not at the top: the children measured import this file
    for _ in range(2):
        out = subprocess.run([sys.executable, __file__, engine, optimizer, str(steps)],
                             env=bytecode_env(), capture_output=True, text=True, check=True)
    peak, imported = map(int, out.stdout.split()[-2:])
    return peak, imported


def bytecode_env():
    """The environment of a measured child: bytecode written to and read from a cache."""
    import os
    import tempfile
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "graphnet-bench-pycache")
    return env


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
