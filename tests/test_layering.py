"""The layers of graphnet: each module imports only from its own layer or below.

Every import is read with ``ast``, those inside functions included, so a lazy
import cannot hide a reach upward. The only upward imports are the thin facade
methods in FACADES, each a few lines of delegation. docs/architecture.md
describes the same table in prose.
"""

import ast
from pathlib import Path

import networkx as nx
import pytest

import graphnet

PACKAGE = Path(__file__).resolve().parents[1] / "graphnet"

LAYERS = [
    ("errors and shared pieces", ["errors", "util", "version", "npzfile"]),
    ("interfaces", ["ops", "optim", "lr_schedules", "hookspecs"]),
    ("registry and builtins", ["plugins", "builtin", "builtin.*", "datasets"]),
    ("engine", ["graph", "scheduler", "model"]),
    ("files", ["schema", "serialize", "checkpoint", "history", "onnx", "render"]),
    ("training and analysis", ["train", "callbacks", "gradients", "analysis", "testing",
                               "sweep", "runs"]),
    ("command line", ["cli", "__main__", ""]),  # "" is graphnet itself
]

# (module, function, imported module): the methods that reach up, by design.
FACADES = {
    ("graph", "Graph.to_dict", "serialize"),
    ("graph", "Graph.to_json", "serialize"),
    ("graph", "Graph.from_dict", "serialize"),
    ("graph", "Graph.from_json", "serialize"),
    ("graph", "Graph._repr_mimebundle_", "render"),
    ("model", "Model.fit", "train"),
    ("model", "Model.evaluate", "train"),
    ("model", "Model.adapt", "train"),
    ("model", "Model._repr_mimebundle_", "render"),
}
FACADE_STATEMENTS = 3  # a docstring aside: the import, the call, at most one more line


def layer_of(module):
    """The layer index of a module name relative to graphnet ("builtin.ops"), or None."""
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            if module == name or (name.endswith(".*") and module.startswith(name[:-1])):
                return index
    return None


def modules():
    """Every module of the package, as a name relative to graphnet, with its path."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


class _Imports(ast.NodeVisitor):
    """(function qualname or "", imported graphnet module) for every import in a file."""

    def __init__(self, module, is_package, known):
        parts = module.split(".") if module else []
        self.package = parts if is_package else parts[:-1]
        self.known, self.scope, self.found = known, [], []

    def _visit_scope(self, node):
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _visit_scope

    def _add(self, target):
        if target in self.known:
            self.found.append((".".join(self.scope), target))

    def visit_Import(self, node):
        for alias in node.names:
            if alias.name == "graphnet" or alias.name.startswith("graphnet."):
                self._add(alias.name[len("graphnet."):] if "." in alias.name else "")

    def visit_ImportFrom(self, node):
        if node.level:
            base = self.package[:len(self.package) - node.level + 1]
        elif node.module and (node.module == "graphnet" or node.module.startswith("graphnet.")):
            base = []
        else:
            return
        base = ".".join([*base, *(node.module.split(".") if node.module else [])])
        if node.level == 0:
            base = base[len("graphnet"):].lstrip(".")
        for alias in node.names:  # `from . import plugins` imports the module graphnet.plugins
            sub = f"{base}.{alias.name}" if base else alias.name
            self._add(sub if sub in self.known else base)


def imports():
    """{module: [(function, imported module)]} for every module of graphnet."""
    known = modules()
    out = {}
    for module, path in known.items():
        visitor = _Imports(module, path.name == "__init__.py", known)
        visitor.visit(ast.parse(path.read_text(), str(path)))
        out[module] = [(fn, target) for fn, target in visitor.found if target != module]
    # graphnet itself imports its public names' modules by name, on first use
    out[""] += sorted(("", target) for target in set(graphnet._HOMES.values()))
    return out


def test_every_module_has_a_layer():
    missing = [m or "graphnet" for m in modules() if layer_of(m) is None]
    assert not missing, (f"modules without a layer: {missing}; add each to LAYERS in "
                         f"tests/test_layering.py (and to docs/architecture.md)")


def test_no_module_imports_from_a_layer_above():
    upward = []
    for module, found in imports().items():
        for fn, target in found:
            if (layer_of(target) or 0) > (layer_of(module) or 0) and (
                    (module, fn, target) not in FACADES):
                upward.append(f"{module or 'graphnet'}{':' + fn if fn else ''} imports "
                              f"{target} ({LAYERS[layer_of(target)][0]} is above "
                              f"{LAYERS[layer_of(module)][0]})")
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    g = nx.DiGraph()
    for module, found in imports().items():
        g.add_node(module)
        for fn, target in found:
            if (module, fn, target) not in FACADES:
                g.add_edge(module, target)
    cycles = list(nx.simple_cycles(g))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join([*c, c[0]]) for c in cycles)


@pytest.mark.parametrize("module, fn, target", sorted(FACADES))
def test_each_facade_is_a_few_lines_that_delegate(module, fn, target):
    tree = ast.parse(modules()[module].read_text())
    node = tree
    for name in fn.split("."):
        node = next(n for n in ast.iter_child_nodes(node)
                    if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name == name)
    body = node.body[1:] if ast.get_docstring(node) else node.body
    assert len(body) <= FACADE_STATEMENTS, f"{module}.{fn} is more than a thin facade"
    assert (fn, target) in imports()[module], f"{module}.{fn} no longer imports {target}"


def test_the_reader_sees_lazy_and_package_imports():
    """The test can fail: a function-level import, a `from . import x` and `graphnet` itself."""
    found = imports()
    assert ("Model.fit", "train") in found["model"]
    assert ("", "datasets") in found["builtin.datasets"]
    assert ("", "render") in found[""]
    assert layer_of("builtin.layers") == layer_of("plugins") and layer_of("nonesuch") is None
