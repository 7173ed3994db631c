"""What each import on the path of ``bench_mlp.py --memory``'s training costs, in RSS.

    python benchmarks/bench_imports.py

One fresh process imports, in order, what the graphnet side of the memory
benchmark (``rss_child.py graphnet``) imports, and prints the resident set
size after each step and what the step added: first what both sides import
(numpy, the harness), then pluggy, importlib.metadata, NetworkX, graphnet's
plugin layer, the registry (builtins, then installed entry points) and the
engine. A second process splits NetworkX's own cost by subpackage (each as
``import networkx`` runs it, what it imports included). A third shows what
the path does not import, each step on top of the path: fit (graphnet.train)
and the libraries graphnet imports only when a command needs them. Last, the
peak of training against numpy's, and against numpy's with NetworkX imported
too (the least an engine whose models are NetworkX graphs can take).

Every child runs twice, the second measured: the first writes the bytecode
cache (see ``rss_child.measure``).
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from rss_child import bytecode_env, measure  # noqa: E402

PATH = [
    ("python itself", ""),
    ("numpy", "import numpy"),
    ("the harness (threadpoolctl, baselines)", "import threadpoolctl, baselines"),
    ("pluggy", "import pluggy"),
    ("importlib.metadata", "import importlib.metadata"),
    ("networkx", "import networkx"),
    ("graphnet.plugins (ops, optim, hookspecs)", "import graphnet.plugins"),
    ("registry: builtin plugins", "graphnet.plugins.registry().load(entry_points=False)"),
    ("registry: installed entry points",
     "r = graphnet.plugins.registry(); r._loaded = False; r.load()"),
    ("graphnet.model (graph, scheduler)", "import graphnet.model"),
    ("the benchmark's MLP (graphnet_mlp)", "import graphnet_mlp"),
]
NOT_ON_PATH = [
    ("graphnet.train (fit)", "import graphnet.train"),
    ("jsonschema (checking a model file)", "import jsonschema"),
    ("tqdm (a progress bar)", "import tqdm.auto"),
    ("graphviz (rendering)", "import graphviz"),
    ("matplotlib (curves)", "import matplotlib.figure"),
]

# the children's RSS reading, defined in each child's own code (importing it would count)
RSS = '''
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
'''

CHILD = r"""
import sys, time, json
sys.path.insert(0, {here!r})
""" + RSS + r"""out = []
for label, code in {steps!r}:
    t = time.perf_counter()
    exec(code)
    out.append((label, rss(), time.perf_counter() - t))
print(json.dumps(out))
"""

# RSS added by each subpackage of networkx as `import networkx` executes it
NETWORKX = r"""
import importlib.abc, json, sys
import numpy
""" + RSS + r"""cost = {}
class Meter(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.count(".") != 1 or not name.startswith("networkx."):
            return None
        for finder in sys.meta_path[1:]:
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                run = spec.loader.exec_module
                def exec_module(module, run=run, name=name):
                    before = rss()
                    run(module)
                    cost[name] = rss() - before
                spec.loader.exec_module = exec_module
                return spec
sys.meta_path.insert(0, Meter())
before = rss()
import networkx
print(json.dumps([rss() - before, sorted(cost.items(), key=lambda kv: -kv[1])]))
"""


# the modules from outside NetworkX that `import networkx` adds (numpy and the rest of
# the path before it imported), then their RSS apart from NetworkX's own modules
OUTSIDE = r"""
import json, sys
import numpy, threadpoolctl, baselines, pluggy, importlib.metadata
before = set(sys.modules)
import networkx
print(json.dumps(sorted(m for m in set(sys.modules) - before
                        if m.split(".")[0] != "networkx" and not m.startswith("_"))))
"""
SPLIT = r"""
import json
""" + RSS + r"""import numpy, threadpoolctl, baselines, pluggy, importlib.metadata
base = rss()
for m in {modules!r}:
    __import__(m)
outside = rss()
import networkx
print(json.dumps([outside - base, rss() - outside]))
"""


def run(code):
    """The child's printed result; its second run, once the first has cached the bytecode
    (as rss_child.measure does)."""
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=HERE, env=bytecode_env())
    return __import__("json").loads(out.stdout.splitlines()[-1])


def table(steps, title, shown=0):
    """Run the steps in one fresh process; print the rows from ``shown`` on."""
    print(title)
    rows = run(CHILD.format(here=str(HERE), steps=steps))
    for i, (label, rss, seconds) in enumerate(rows):
        if i >= shown:
            added = (f"+{(rss - rows[i - 1][1]) / 2**20:5.1f} MiB  {seconds * 1e3:6.1f} ms"
                     if i else "")
            print(f"  {label:44s} {rss / 2**20:6.1f} MiB  {added}")
    return rows


def main():
    table(PATH, "RSS after each import of the memory benchmark's graphnet path:")
    total, parts = run(NETWORKX)
    print(f"\nnetworkx by subpackage (of {total / 2**20:.1f} MiB, numpy imported before):")
    for name, cost in parts:
        if cost >= 0.1 * 2**20:
            print(f"  {name:44s} +{cost / 2**20:5.1f} MiB")
    modules = run(OUTSIDE)
    outside, own = run(SPLIT.format(modules=modules))
    print(f"networkx: +{outside / 2**20:.1f} MiB for the modules from outside it that it "
          f"imports ({', '.join(m for m in modules if '.' not in m)}), "
          f"+{own / 2**20:.1f} MiB for its own")
    table(PATH + NOT_ON_PATH, "\nnot on that path (each on top of the path and the ones before):",
          shown=len(PATH))
    print("\npeak RSS training mnist-like (rss_child.py), and the RSS after its imports:")
    base = None
    for engine in ("numpy", "numpy_networkx", "graphnet"):
        peak, imported = measure(engine)
        base = base or peak
        print(f"  {engine:16s} {peak / 1024:6.1f} MiB ({peak / base:.2f}x)  after imports "
              f"{imported / 1024:6.1f} MiB")


if __name__ == "__main__":
    main()
