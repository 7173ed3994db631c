"""Declaring a model: a named DAG of op nodes over a NetworkX DiGraph.

Each node of ``g.nx`` carries ``op`` (a registered op name), ``attrs`` (a
dict) and ``inputs`` (the ordered list of the nodes it reads; a name may
repeat, as in ``g.add("mul", h, h)``). Edges mirror ``inputs`` for NetworkX
algorithms. The graph's ``name`` and ``outputs`` live in ``g.nx.graph``.

>>> g = Graph("mlp")
>>> x = g.input("x", shape=(2,))
>>> h = g.add("dense", x, units=16, name="fc1")
>>> h = g.add("tanh", h)
>>> h
'tanh_1'
"""

import copy as _copy
import re

import networkx as nx

from .errors import CycleError, GraphError, did_you_mean

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_/\-]*$")
MODEL_NAME = re.compile(r"^(?!\.\.?$)[^/\\\x00-\x1f]+$")
"""A model's name is also its folder, runs/<name>: no path separators, no '.' or '..'."""


class Graph:
    """A model declaration: inputs, op nodes, outputs. Build it, then give it to Model."""

    def __init__(self, name="model"):
        if not isinstance(name, str) or not MODEL_NAME.match(name):
            raise GraphError(f"model name {name!r} is not valid: it names the run's folder "
                             f"(runs/<name>), so it must be non-empty text without '/', '\\', "
                             f"control characters, and not '.' or '..'")
        self.nx = nx.DiGraph(name=name, outputs=[])
        self._counters = {}

    # --- building ----------------------------------------------------------
    @property
    def name(self):
        return self.nx.graph["name"]

    @property
    def outputs(self):
        return list(self.nx.graph["outputs"])

    def input(self, name, shape, dtype="float32"):
        """Declare an input fed at run time; ``shape`` is per sample (no batch axis)."""
        try:
            shape = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            raise GraphError(f"input {name!r}: shape must be a sequence of ints, "
                             f"got {shape!r}") from None
        return self._add_node(name, "input", [], {"shape": shape, "dtype": str(dtype)})

    def add(self, op, *inputs, name=None, **attrs):
        """Add a node running ``op`` on ``inputs`` (node names); return its name."""
        if not isinstance(op, str) or not op:
            raise GraphError(f"op must be a registered op name, got {op!r}")
        for i in inputs:
            if not isinstance(i, str):
                raise GraphError(f"inputs of {name or op!r} must be node names (strings), got {i!r}")
            if i not in self.nx:
                raise GraphError(f"node {name or op!r} reads unknown node {i!r}"
                                 f"{did_you_mean(i, self.nx.nodes)}; add that node first")
        if name is None:
            name = self._auto_name(op)
        return self._add_node(name, op, list(inputs), attrs)

    def output(self, *names):
        """Mark nodes as the model's outputs (what ``predict`` returns)."""
        if not names:
            raise GraphError("output() needs at least one node name, e.g. g.output(y)")
        for n in names:
            if n not in self.nx:
                raise GraphError(f"output {n!r} is not a node{did_you_mean(n, self.nx.nodes)}")
            if n not in self.nx.graph["outputs"]:
                self.nx.graph["outputs"].append(n)
        return names[0] if len(names) == 1 else names

    def _auto_name(self, op):
        k = self._counters.get(op, 0)
        while True:
            k += 1
            name = f"{op}_{k}"
            if name not in self.nx:
                self._counters[op] = k
                return name

    def _add_node(self, name, op, inputs, attrs, link=True):
        if not isinstance(name, str) or not NAME.match(name):
            raise GraphError(f"node name {name!r} is not valid: use letters, digits, '_', '-' "
                             f"and '/' (for groups), starting with a letter or '_'")
        if name in self.nx:
            raise GraphError(f"duplicate node name {name!r}: every node needs its own name")
        self.nx.add_node(name, op=op, attrs=dict(attrs), inputs=list(inputs))
        if link:  # a loader that allows forward references links after adding every node
            for i in inputs:
                self.nx.add_edge(i, name)
        return name

    def link(self):
        """Add the edges that the nodes' ``inputs`` lists imply (after loading)."""
        for n, data in list(self.nx.nodes(data=True)):
            for i in data.get("inputs", []):
                self.nx.add_edge(i, n)

    # --- reading -----------------------------------------------------------
    def node(self, name):
        """The node's data: {"op", "attrs", "inputs"}."""
        return self.nx.nodes[name]

    def nodes(self):
        """Node names in declaration order."""
        return list(self.nx.nodes)

    def inputs(self):
        """Names of the input nodes, in declaration order."""
        return [n for n, d in self.nx.nodes(data=True) if d.get("op") == "input"]

    def check(self):
        """Structural checks: every input exists, no cycles, outputs are nodes.

        Raises GraphError or CycleError naming the node. Model calls this; ops,
        attrs and shapes are checked there against the registry.
        """
        for name, data in self.nx.nodes(data=True):
            if "op" not in data:
                users = [s for s in self.nx.successors(name)]
                user = users[0] if users else name
                raise GraphError(f"node {user!r} reads unknown node "
                                 f"{name!r}{did_you_mean(name, self._declared())}", node=user)
            for i in data.get("inputs", []):
                if i not in self.nx or "op" not in self.nx.nodes[i]:
                    raise GraphError(f"node {name!r} reads unknown node {i!r}"
                                     f"{did_you_mean(i, self._declared())}", node=name)
        try:
            cycle = nx.find_cycle(self.nx)
        except nx.NetworkXNoCycle:
            cycle = None
        if cycle:
            names = [u for u, _ in cycle] + [cycle[0][0]]
            raise CycleError("the graph has a cycle: " + " -> ".join(names) +
                             "; a model must be a DAG, so break the loop", node=names[0])
        for out in self.outputs:
            if out not in self.nx or "op" not in self.nx.nodes[out]:
                raise GraphError(f"output {out!r} is not a node{did_you_mean(out, self._declared())}")

    def _declared(self):
        return [n for n, d in self.nx.nodes(data=True) if "op" in d]

    # --- conversions -------------------------------------------------------
    def copy(self):
        """An independent deep copy."""
        other = Graph(self.name)
        other.nx = _copy.deepcopy(self.nx)
        other._counters = dict(self._counters)
        return other

    @classmethod
    def from_networkx(cls, G, name=None, outputs=None):
        """Adopt a NetworkX DiGraph whose nodes carry ``op`` and optional ``attrs``.

        A node's inputs are its ``inputs`` attribute if present, else its
        predecessors ordered by the edge attribute ``index`` (then insertion
        order); in a MultiDiGraph, parallel edges repeat an input. Input nodes
        use op "input" with ``shape`` (and ``dtype``) either in ``attrs`` or as
        node attributes. Outputs come from
        ``outputs``, ``G.graph["outputs"]``, or else the sinks that are not losses.
        """
        if not isinstance(G, nx.DiGraph):  # MultiDiGraph is a DiGraph too
            raise GraphError(f"from_networkx needs a networkx.DiGraph or MultiDiGraph, "
                             f"got {type(G).__name__}")
        g = cls(name or G.graph.get("name", "model"))
        for n, data in G.nodes(data=True):
            if "op" not in data:
                raise GraphError(f"networkx node {n!r} has no 'op' attribute; "
                                 f"set G.nodes[{n!r}]['op'] to an op name")
            attrs = dict(data.get("attrs", {}))
            if data["op"] == "input":
                for key in ("shape", "dtype"):
                    if key in data and key not in attrs:
                        attrs[key] = data[key]
                attrs["shape"] = tuple(attrs.get("shape", ()))
                attrs.setdefault("dtype", "float32")
            if "inputs" in data:
                inputs = list(data["inputs"])
            else:
                preds = list(G.in_edges(n, data=True))
                preds.sort(key=lambda e: e[2].get("index", 0))
                inputs = [u for u, _, _ in preds]
            g._add_node(str(n), data["op"], [str(i) for i in inputs], attrs, link=False)
        g.link()
        outs = outputs if outputs is not None else G.graph.get("outputs")
        if outs is None:
            outs = [n for n in g.nx if g.nx.out_degree(n) == 0
                    and g.nx.nodes[n]["op"] not in _loss_names()]
        g.nx.graph["outputs"] = [str(o) for o in outs]
        return g

    def to_dict(self):
        """The JSON form as a dict (see graphnet.serialize)."""
        from .serialize import graph_to_dict
        return graph_to_dict(self)

    def to_json(self, path=None):
        """The JSON form as text; with a path, also write it there."""
        from .serialize import graph_to_json
        return graph_to_json(self, path)

    @classmethod
    def from_dict(cls, data):
        """A Graph from the JSON form's dict, checked against the schema."""
        from .serialize import graph_from_dict
        return graph_from_dict(data)

    @classmethod
    def from_json(cls, path_or_text):
        """A Graph from a model file's path or from JSON text."""
        from .serialize import graph_from_json
        return graph_from_json(path_or_text)

    def _repr_mimebundle_(self, include=None, exclude=None):
        """Show the graph as SVG in Jupyter."""
        from .render import render
        return render(self)._repr_mimebundle_(include=include, exclude=exclude)

    def __repr__(self):
        return (f"<Graph {self.name!r}: {self.nx.number_of_nodes()} nodes, "
                f"outputs {self.outputs}>")


def _loss_names():
    from .plugins import registry
    return {name for name, e in registry().tables()["op"].items() if e.obj.kind == "loss"}
