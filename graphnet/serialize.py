"""Models as JSON: a Graph to its JSON form and back, every mistake named.

The JSON form (DESIGN.md) is what people write by hand, so a mistake in it
must come back as one clear sentence: the file, the JSON path
(``nodes[3].attrs.units``), the node, what was expected and what was found,
with a did-you-mean. Validation runs the JSON Schema generated from the
plugin registry (graphnet.schema) through jsonschema, then the checks a
schema cannot express (names that must exist or be unique), then the
engine's own shape inference.

>>> import graphnet as gn
>>> g = gn.Graph("tiny")
>>> x = g.input("x", shape=(2,))
>>> _ = g.output(g.add("dense", x, units=3, name="fc"))
>>> gn.Graph.from_json(g.to_json()).to_dict() == g.to_dict()
True
"""

import copy
import json
import math
import os

import numpy as np

from .errors import GraphnetError, SchemaError, UnknownNameError, did_you_mean
from .graph import Graph
from .ops import check_attr
from .plugins import optimizer, registry
from .schema import FORMAT, _validator
from .scheduler import Program
from .util import atomic_write, plain



# =============================================================================
# Graph -> JSON
# =============================================================================

def graph_to_dict(graph):
    """The JSON form of ``graph`` as plain dicts and lists, in a stable key order.

    Attr values are normalised the way the engine reads them (tuples become
    lists, ``alpha=1`` of a float attr becomes ``1.0``), so that
    ``from_dict(to_dict(g)).to_dict() == to_dict(g)``.
    """
    ops = registry().tables()["op"]
    inputs, nodes = [], []
    for name, data in graph.nx.nodes(data=True):
        if "op" not in data:   # a name some node reads but nobody declared
            continue
        op, attrs = data["op"], dict(data.get("attrs") or {})
        where = f"node {name!r}"
        if op == "input":
            shape = plain(attrs.get("shape", []), f"{where}: shape")
            inputs.append({"name": name, "shape": shape,
                           "dtype": str(attrs.get("dtype", "float32"))})
            continue
        node = {"name": name, "op": op, "inputs": list(data.get("inputs", []))}
        entry = ops.get(op)
        out = {}
        for key in sorted(attrs):
            value = attrs[key]
            spec = entry.obj.attrs.get(key) if entry is not None else None
            if spec is not None:
                try:
                    value = check_attr(where, key, spec, value)
                except GraphnetError:
                    pass  # written as given; loading the file will name the problem
            out[key] = plain(value, f"{where}: attr {key!r}")
        if out:
            node["attrs"] = out
        nodes.append(node)
    result = {"format": FORMAT, "name": graph.name, "inputs": inputs, "nodes": nodes,
              "outputs": list(graph.outputs)}
    training = graph.nx.graph.get("training")
    if training is not None:
        result["training"] = plain(training, "training block")
    return result


def graph_to_json(graph, path=None):
    """The JSON text of ``graph`` (indent 2, trailing newline); with ``path``, also write it."""
    text = json.dumps(graph_to_dict(graph), indent=2, allow_nan=False) + "\n"
    if path is not None:
        data = text.encode("utf-8")
        atomic_write(path, lambda f: f.write(data), GraphnetError)
    return text


def training_block(graph):
    """The validated ``training`` block a graph was loaded with (a dict), or None."""
    block = graph.nx.graph.get("training")
    return copy.deepcopy(block) if block is not None else None


# =============================================================================
# JSON -> Graph
# =============================================================================

def graph_from_json(path_or_text, compile=True):
    """A Graph from a model file (a path) or from JSON text (a str starting with '{').

    ``compile=False`` skips the engine's check (shapes, dtypes, arity), so that
    ``graphnet render`` can still draw a model that does not compile.
    """
    if isinstance(path_or_text, bytes):
        return _from_text(path_or_text, "<json text>", compile)
    if isinstance(path_or_text, str) and path_or_text.lstrip().startswith(("{", "[")):
        return _from_text(path_or_text, "<json text>", compile)
    if not isinstance(path_or_text, (str, os.PathLike)):
        raise SchemaError(f"from_json needs a file path or JSON text, got "
                          f"{type(path_or_text).__name__}")
    path = os.fspath(path_or_text)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise SchemaError(f"model file {path!r} does not exist") from None
    except (OSError, ValueError) as exc:   # ValueError: a NUL in the path
        raise SchemaError(f"model file {path!r} cannot be read: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    return _from_text(raw, path, compile)


def graph_from_dict(data, source="<dict>", compile=True):
    """A Graph from the JSON form's dict, checked against the schema and the engine.

    Raises SchemaError (or the engine's ShapeError, CycleError, UnknownNameError,
    GraphError) naming ``source``, the JSON path and the node.
    """
    data = _plain_input(data, source)
    _check_schema(data, source)
    _check_names(data, source)
    return _build(data, source, compile)


def _from_text(raw, source, compile=True):
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SchemaError(f"{source}: not UTF-8 text (byte {exc.start}); save the model "
                              f"file as UTF-8") from None
    try:
        data = json.loads(raw, parse_constant=float, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: "
                          f"{exc.msg}") from None
    except RecursionError:
        raise SchemaError(f"{source}: invalid JSON: nested too deeply") from None
    except ValueError as exc:   # e.g. an integer with more digits than Python converts
        raise SchemaError(f"{source}: invalid JSON: {exc}") from None
    return graph_from_dict(data, source, compile)


class _Object(dict):
    """A JSON object that had a key twice (json keeps the last one silently)."""

    duplicates = ()


def _object(pairs):
    obj = _Object(pairs)
    if len(obj) != len(pairs):
        seen, dups = set(), []
        for k, _ in pairs:
            if k in seen and k not in dups:
                dups.append(k)
            seen.add(k)
        obj.duplicates = dups
    return obj


def _plain_input(data, source):
    """Check and copy a user's dict as JSON data, refusing what JSON cannot hold."""
    if not isinstance(data, dict):
        raise SchemaError(f"{source}: a model is a JSON object with \"format\", \"inputs\" and "
                          f"\"nodes\"; found {_found(data)}")
    return plain(data, source, problem=lambda path, text: _error(source, path, data, text))


def _check_schema(data, source):
    errors = list(_validator().iter_errors(data))
    if not errors:
        return
    errors.sort(key=lambda pe: _order(data, *pe))
    found = [_translate(*pe, data, source) for pe in errors]
    err = found[0]
    err.problems = list(dict.fromkeys(str(e) for e in found))  # one line each, no repeats
    if len(err.problems) > 1:
        err.args = ("\n".join(err.problems),)
    raise err


_PRIORITY = {"additionalProperties": 0, "required": 1, "type": 2, "const": 3, "enum": 4}


def _order(data, path, error):
    """Sort errors in document order (then the most basic complaint first)."""
    key, cur = [], data
    for p in path:
        if isinstance(cur, dict):
            keys = list(cur)
            key.append(keys.index(p) if p in keys else len(keys))
        else:
            key.append(p if isinstance(p, int) else 0)
        try:
            cur = cur[p]
        except (KeyError, IndexError, TypeError):
            break
    return key, _PRIORITY.get(error.validator, 9)


def _translate(path, error, data, source):
    """A jsonschema error as a graphnet message: path, node, expected, found."""
    v, value, schema = error.validator, error.instance, error.schema
    node = _node_of(data, path)
    cls = SchemaError
    if v == "required":
        props = schema.get("properties", {})
        missing = [k for k in schema["required"]
                   if not isinstance(value, dict) or k not in value]
        key = missing[0] if missing else "?"
        if key == "attrs" and node is not None:
            op_attrs = _op_def(node.get("op"))
            need = op_attrs.get("required", [])
            text = (f"op {node.get('op')} needs attrs {need}; add \"attrs\": "
                    f"{{{', '.join(f'{k!r}: ...' for k in need)}}}").replace("'", '"')
        elif key == "format" and not path:
            text = f"missing \"format\"; add \"format\": \"{FORMAT}\""
        else:
            what = "attr" if path and path[-1] == "attrs" else "key"
            desc = props.get(key, {}).get("description")
            text = f"missing {what} {key!r}" + (f" ({desc})" if desc else "")
            expected = _expected(props.get(key, {}))
            if expected:
                text += f"; expected {expected}"
    elif v == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        extra = [k for k in value if k not in allowed]
        key = extra[0] if extra else "?"
        path = path + (key,)
        what = "attr" if len(path) > 1 and path[-2] == "attrs" else "key"
        owner = f"op {node.get('op')} takes" if what == "attr" and node else "allowed keys:"
        text = (f"unknown {what} {key!r}{did_you_mean(key, allowed)}; {owner} "
                f"{', '.join(allowed) or 'none'}")
    elif v == "enum" and "x-registry" in schema:
        kind = schema["x-registry"]
        choices = list(schema["enum"])
        if kind == "op" and value == "input":
            text = ("\"input\" is not an op for nodes: declare inputs in the top-level "
                    "\"inputs\" list")
        else:
            cls = UnknownNameError
            text = (f"unknown {kind} {value!r}{did_you_mean(value, choices)}; no installed "
                    f"plugin provides it (install the plugin that does, or pick one of: "
                    f"{', '.join(choices) or 'none'})")
    elif v == "const" and path == ("format",):
        text = (f"unsupported format {value!r}; this graphnet reads {FORMAT!r}"
                + ("" if isinstance(value, str) and value.startswith("graphnet-model/")
                   else " (is this a graphnet model file?)"))
    elif v in ("minItems", "maxItems") and path[-1:] == ("inputs",) and node is not None:
        n = error.validator_value
        exactly = "minItems" in schema and "maxItems" in schema
        count = ("exactly" if exactly else "at least") + f" {n} input{'s' if n != 1 else ''}"
        text = f"op {node.get('op')} takes {count}, found {len(value)}: {value}"
    elif v == "pattern" and path == ("name",):
        text = (f"found {_found(value)}; a model's name is also its run folder "
                f"(runs/<name>): use text without '/', '\\' or control characters, "
                f"not '.' or '..'")
    elif v == "pattern" or (v == "minLength" and error.validator_value == 1):
        text = (f"found {_found(value)}; expected a name of letters, digits, '_', '-' and "
                f"'/', starting with a letter or '_'" if v == "pattern" else
                "found an empty string; expected a non-empty name")
    else:
        text = f"expected {_expected(schema) or error.message}, found {_found(value)}"
    return _error(source, path, data, text, cls)


def _op_def(op):
    try:
        return _validator().schema["$defs"][f"op_{op}"]["properties"]["attrs"]
    except (KeyError, TypeError):
        return {}


_TYPE_WORDS = {"integer": "an integer", "number": "a number", "boolean": "true or false",
               "string": "a string", "array": "a list", "object": "an object", "null": "null"}


def _expected(schema):
    """Words for what a schema accepts: 'an integer >= 1', 'one of [...]'."""
    parts = []
    types = schema.get("type")
    if types:
        types = [types] if isinstance(types, str) else types
        parts.append(" or ".join(_TYPE_WORDS.get(t, t) for t in types))
    if "enum" in schema:
        parts.append(f"one of {schema['enum']}")
    if "const" in schema:
        parts.append(f"{schema['const']!r}")
    bounds = [f"{word} {schema[key]}" for key, word in (
        ("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
        ("exclusiveMaximum", "<")) if key in schema]
    if bounds:
        parts.append(" and ".join(bounds))
    for key, word in (("minItems", "at least"), ("maxItems", "at most")):
        if key in schema:
            parts.append(f"a list of {word} {schema[key]} items")
    if "minLength" in schema:
        parts.append(f"a string of at least {schema['minLength']} characters")
    if "not" in schema and schema["not"] == {"const": 0}:
        parts.append("not 0")
    return " ".join(parts)


def _found(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r:.60}"
    if isinstance(value, (list, dict)):
        text = json.dumps(value, default=lambda o: getattr(o, "text", None))[:60]
        return f"a list {text}" if isinstance(value, list) else f"an object {text}"
    return f"{type(value).__name__} {value!r:.60}"


def _path_text(path):
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _node_of(data, path):
    """The node dict a path points into (nodes[i]...), or None."""
    if len(path) >= 2 and path[0] in ("nodes", "inputs") and isinstance(path[1], int):
        try:
            node = data[path[0]][path[1]]
        except (KeyError, IndexError, TypeError):
            return None
        return node if isinstance(node, dict) else None
    return None


def _error(source, path, data, text, cls=SchemaError):
    """An error naming the source, the JSON path and the node, with .file and .path set."""
    node = _node_of(data, path)
    where = _path_text(path)
    if node is not None and isinstance(node.get("name"), str):
        what = f"node {node['name']!r}" if path[0] == "nodes" else f"input {node['name']!r}"
        if path[0] == "nodes" and isinstance(node.get("op"), str):
            what += f", op {node['op']}"
        where += f" ({what})"
    err = cls(f"{source}: {where}: {text}")
    err.file, err.path = source, _path_text(path)
    return err


def _check_names(data, source):
    """What the schema cannot say: names unique, every name read is declared."""
    seen = {}
    for section in ("inputs", "nodes"):
        for i, item in enumerate(data[section]):
            name = item["name"]
            if name in seen:
                raise _error(source, (section, i, "name"), data,
                             f"duplicate name {name!r}: {_path_text(seen[name])} already uses "
                             f"it; every input and node needs its own name")
            seen[name] = (section, i)
    for i, node in enumerate(data["nodes"]):
        for j, name in enumerate(node["inputs"]):
            if name not in seen:
                raise _error(source, ("nodes", i, "inputs", j), data,
                             f"reads {name!r}, which is neither an input nor a node"
                             f"{did_you_mean(name, seen)}")
    outs = data.get("outputs", [])
    for k, name in enumerate(outs):
        if name not in seen:
            raise _error(source, ("outputs", k), data, f"output {name!r} is neither an input "
                         f"nor a node{did_you_mean(name, seen)}")
        if name in outs[:k]:
            raise _error(source, ("outputs", k), data, f"output {name!r} is listed twice")
    training = data.get("training") or {}
    if "dataset" in training and "data" in training:
        raise _error(source, ("training", "data"), data, "give either \"dataset\" or "
                     "\"data\", not both")
    if training.get("dataset_options") and "dataset" not in training:
        raise _error(source, ("training", "dataset_options"), data, "dataset_options are the "
                     "options of a named dataset; give \"dataset\" too")


def _check_optimizer(data, source):
    """Build the training block's optimizer once, so its own checks (beta1 < 1) run now."""
    spec = data["training"].get("optimizer")
    if spec is None:
        return
    name, hyper = (spec, {}) if isinstance(spec, str) else (
        spec["name"], {k: v for k, v in spec.items() if k != "name"})
    try:
        optimizer(name, **hyper)
    except GraphnetError as exc:
        raise _error(source, ("training", "optimizer"), data, str(exc), SchemaError) from None
    except (TypeError, ValueError) as exc:
        raise _error(source, ("training", "optimizer"), data,
                     f"optimizer {name!r} refuses {hyper}: {exc}", SchemaError) from None


def _build(data, source, compile=True):
    ops = registry().tables()["op"]
    g = Graph(data.get("name", "model"))
    where_of = {}
    for i, item in enumerate(data["inputs"]):
        g._add_node(item["name"], "input", [], {"shape": tuple(item["shape"]),
                                                "dtype": item.get("dtype", "float32")},
                    link=False)
        where_of[item["name"]] = ("inputs", i)
    for i, node in enumerate(data["nodes"]):
        op = ops[node["op"]].obj
        attrs = {}
        for key, value in node.get("attrs", {}).items():
            try:
                attrs[key] = check_attr(f"node {node['name']!r}", key, op.attrs[key], value,
                                        registry().get)
            except GraphnetError as exc:
                raise _error(source, ("nodes", i, "attrs", key), data, str(exc),
                             type(exc)) from None
        g._add_node(node["name"], node["op"], list(node["inputs"]), attrs, link=False)
        where_of[node["name"]] = ("nodes", i)
    g.link()
    g.nx.graph["outputs"] = list(data.get("outputs", []))
    if "training" in data:
        _check_optimizer(data, source)
        g.nx.graph["training"] = data["training"]
    if not compile:
        return g
    try:
        Program(g)  # structure, arity, dtypes and shapes, as a Model will see them
    except GraphnetError as exc:
        text, path = str(exc), where_of.get(exc.node, ())
        if path:  # the engine's own "node 'x' (op): " prefix repeats what _error says
            item = data[path[0]][path[1]]
            for prefix in (f"node {item['name']!r} ({item.get('op')}): ",
                           f"node {item['name']!r}: "):
                if text.startswith(prefix):
                    text = text[len(prefix):]
        raise _error(source, path, data, text, type(exc)) from None
    return g

