"""Models as JSON files, the JSON Schema that checks them, and checkpoints.

The JSON form (DESIGN.md) is what people write by hand, so a mistake in it
must come back as one clear sentence: the file, the JSON path
(``nodes[3].attrs.units``), the node, what was expected and what was found,
with a did-you-mean. Validation runs the JSON Schema generated from the
plugin registry (every op's attrs, plugin ops included) through jsonschema,
then the checks a schema cannot express (names that must exist or be
unique), then the engine's own shape inference.

>>> import graphnet as gn
>>> g = gn.Graph("tiny")
>>> x = g.input("x", shape=(2,))
>>> _ = g.output(g.add("dense", x, units=3, name="fc"))
>>> gn.Graph.from_json(g.to_json()).to_dict() == g.to_dict()
True

A checkpoint is one ``.npz`` file (a zip of ``.npy`` arrays, never pickles)
holding the graph's JSON, the params, the optimizer state, the training
position and the history, written atomically so a crash during a save leaves
the previous checkpoint whole.
"""

import copy
import datetime
import inspect
import io
import json
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources

import jsonschema
import numpy as np

from .errors import CheckpointError, GraphnetError, SchemaError, UnknownOpError, did_you_mean
from .graph import NAME, Graph

FORMAT = "graphnet-model/1"
"""The ``format`` every model file carries; a later incompatible form gets /2."""

CHECKPOINT_FORMAT = "graphnet-checkpoint/1"
SCHEMA_FILE = "schema/model-1.json"
MAX_DEPTH = 64  # JSON nesting beyond any real model file


# =============================================================================
# Graph -> JSON
# =============================================================================

def graph_to_dict(graph):
    """The JSON form of ``graph`` as plain dicts and lists, in a stable key order.

    Attr values are normalised the way the engine reads them (tuples become
    lists, ``alpha=1`` of a float attr becomes ``1.0``), so that
    ``from_dict(to_dict(g)).to_dict() == to_dict(g)``.
    """
    from .plugins import registry
    ops = registry().tables()["op"]
    inputs, nodes = [], []
    for name, data in graph.nx.nodes(data=True):
        if "op" not in data:   # a name some node reads but nobody declared
            continue
        op, attrs = data["op"], dict(data.get("attrs") or {})
        where = f"node {name!r}"
        if op == "input":
            shape = _plain(attrs.get("shape", []), f"{where}: shape")
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
                from .scheduler import check_attr
                try:
                    value = check_attr(where, key, spec, value)
                except GraphnetError:
                    pass  # written as given; loading the file will name the problem
            out[key] = _plain(value, f"{where}: attr {key!r}")
        if out:
            node["attrs"] = out
        nodes.append(node)
    result = {"format": FORMAT, "name": graph.name, "inputs": inputs, "nodes": nodes,
              "outputs": list(graph.outputs)}
    training = graph.nx.graph.get("training")
    if training is not None:
        result["training"] = _plain(training, "training block")
    return result


def graph_to_json(graph, path=None):
    """The JSON text of ``graph`` (indent 2, trailing newline); with ``path``, also write it."""
    text = json.dumps(graph_to_dict(graph), indent=2, allow_nan=False) + "\n"
    if path is not None:
        data = text.encode("utf-8")
        _atomic_write(path, lambda f: f.write(data), GraphnetError)
    return text


def training_block(graph):
    """The validated ``training`` block a graph was loaded with (a dict), or None."""
    block = graph.nx.graph.get("training")
    return copy.deepcopy(block) if block is not None else None


def _plain(value, where, depth=0):
    """Copy ``value`` as JSON data: tuples to lists, numpy scalars to Python.

    Anything JSON cannot hold (NaN, a set, an object) is a SchemaError naming ``where``.
    """
    if depth > MAX_DEPTH:
        raise SchemaError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise SchemaError(f"{where}: {float(value)} is not a finite number; JSON has no "
                              f"NaN or Infinity")
        return float(value)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v, where, depth + 1) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise SchemaError(f"{where}: key {k!r} is not a string; JSON keys are strings")
            out[k] = _plain(v, where, depth + 1)
        return out
    raise SchemaError(f"{where}: {type(value).__name__} {value!r:.60} cannot be written as "
                      f"JSON; use numbers, strings, booleans, lists and dicts")


# =============================================================================
# The JSON Schema, generated from the registry
# =============================================================================

def model_schema(builtins_only=False):
    """The JSON Schema (draft 2020-12) of a model file, as a dict.

    It is generated from the plugin registry: every op with its attrs (kind,
    range, choices, default, doc), every initializer, optimizer and dataset,
    plugins included. ``builtins_only=True`` leaves installed plugins out; that
    is the copy committed as ``graphnet/schema/model-1.json`` for editors.

    >>> s = model_schema(builtins_only=True)
    >>> s["$defs"]["op_dense"]["properties"]["attrs"]["properties"]["units"]["minimum"]
    1
    """
    return _build_schema(_builtin_tables() if builtins_only else _tables())


def schema_text(builtins_only=False):
    """``model_schema`` as the text of the committed file (indent 2, trailing newline)."""
    return json.dumps(model_schema(builtins_only), indent=2) + "\n"


def write_schema(path=None):
    """Regenerate the committed builtins-only schema (default: inside the package)."""
    if path is None:
        path = os.path.join(os.path.dirname(__file__), *SCHEMA_FILE.split("/"))
    data = schema_text(builtins_only=True).encode("utf-8")
    _atomic_write(path, lambda f: f.write(data), SchemaError)
    return path


def shipped_schema():
    """The schema file shipped inside the package (builtins only), as a dict."""
    with resources.files("graphnet").joinpath(SCHEMA_FILE).open("rb") as f:
        return json.load(f)


def _tables():
    from .plugins import registry
    return registry().tables()


def _builtin_tables():
    """Registry tables with the builtin plugins only, whatever is installed."""
    import importlib

    from . import plugins
    reg = plugins.Registry()
    reg._loaded = True  # skip the entry points: builtins are registered by hand below
    for modname in plugins.BUILTIN_PLUGINS:
        reg.pm.register(importlib.import_module(modname), name=modname)
    return reg.tables()


def _json_default(value):
    """A default as JSON, or None when it has no JSON form."""
    try:
        return True, _plain(value, "default")
    except SchemaError:
        return False, None


_KIND_SCHEMA = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "str": {"type": "string"},
    "shape": {"type": "array", "items": {"type": "integer"}},
    "int_list": {"type": "array", "items": {"type": "integer"}},
    "init": {"$ref": "#/$defs/init"},
    "any": {},
}


def _attr_schema(spec):
    s = dict(_KIND_SCHEMA.get(spec.kind, {}))
    if spec.kind == "shape":
        s["items"] = {"type": "integer", "minimum": -1, "not": {"const": 0}}
    if spec.doc:
        s["description"] = spec.doc
    if not spec.required:
        ok, default = _json_default(spec.default)
        if ok:
            s["default"] = default
    if spec.min is not None:
        s["minimum"] = spec.min
    if spec.max is not None:
        s["maximum"] = spec.max
    if spec.choices is not None:
        s["enum"] = list(spec.choices)
    return s


def _value_schema(default):
    """Schema of an optimizer hyperparameter or initializer attr, from its default."""
    if isinstance(default, bool):
        return {"type": "boolean", "default": default}
    if isinstance(default, (int, float)):
        return {"type": "number", "default": default}
    if isinstance(default, str):
        return {"type": "string", "default": default}
    ok, value = _json_default(default)
    return {"default": value} if ok and value is not None else {}


def _optimizer_schema(cls):
    """Hyperparameters from the signature of the optimizer's ``__init__``."""
    props, required, extra = {"name": {"const": cls.name}}, [], False
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return {"properties": props}
    for pname, p in list(sig.parameters.items())[1:]:
        if p.kind == p.VAR_KEYWORD:
            extra = True
        elif p.kind == p.VAR_POSITIONAL:
            continue
        elif p.default is p.empty:
            props[pname] = {}
            required.append(pname)
        elif pname == "lr":
            props[pname] = {"type": ["number", "object"], "exclusiveMinimum": 0,
                            "default": p.default,
                            "description": "learning rate: a number, or a schedule {\"name\": ...}"}
        else:
            props[pname] = _value_schema(p.default)
    s = {"properties": props}
    if not extra:
        s["additionalProperties"] = False
    if required:
        s["required"] = required
    return s


def _build_schema(tables):
    ops = {n: e.obj for n, e in sorted(tables["op"].items())}
    node_ops = [n for n, op in ops.items() if op.kind != "input"]
    inits = sorted(tables["initializer"])
    optimizers = {n: e.obj for n, e in sorted(tables["optimizer"].items())}
    datasets = sorted(tables["dataset"])
    input_op = ops.get("input")
    dtypes = list(input_op.attrs["dtype"].choices) if input_op is not None else ["float32"]
    name_def = {"type": "string", "minLength": 1, "pattern": NAME.pattern,
                "description": "letters, digits, '_', '-' and '/', starting with a letter or '_'"}
    defs = {"name": name_def}

    init_cases = []
    for iname in inits:
        init = tables["initializer"][iname].obj
        props = {"name": {"const": iname}}
        props.update({k: _value_schema(v) for k, v in init.attrs.items()})
        init_cases.append({"if": {"properties": {"name": {"const": iname}}},
                           "then": {"properties": props, "additionalProperties": False}})
    defs["init"] = {
        "description": "an initializer name, or {\"name\": ..., attrs...}",
        "type": ["string", "object"],
        "if": {"type": "string"},
        "then": {"enum": inits, "x-registry": "initializer"},
        "else": {"required": ["name"],
                 "properties": {"name": {"type": "string", "enum": inits,
                                         "x-registry": "initializer"}},
                 "allOf": init_cases}}

    cases = []
    for opname in node_ops:
        op = ops[opname]
        attrs = {k: _attr_schema(spec) for k, spec in op.attrs.items()}
        required = [k for k, spec in op.attrs.items() if spec.required]
        arity = ({"minItems": 1} if op.n_inputs is None else
                 {"minItems": op.n_inputs, "maxItems": op.n_inputs})
        attrs_schema = {"type": "object", "properties": attrs, "additionalProperties": False}
        if required:
            attrs_schema["required"] = required
        body = {"properties": {"inputs": arity, "attrs": attrs_schema}}
        if required:
            body["required"] = ["attrs"]
        doc = (getattr(op, "doc", "") or (type(op).__doc__ or "")).strip().split("\n")[0]
        if doc:
            body["description"] = doc
        defs[f"op_{opname}"] = body
        cases.append({"if": {"properties": {"op": {"const": opname}}, "required": ["op"]},
                      "then": {"$ref": f"#/$defs/op_{opname}"}})
    defs["node"] = {
        "type": "object",
        "required": ["name", "op", "inputs"],
        "properties": {
            "name": {"$ref": "#/$defs/name"},
            "op": {"type": "string", "enum": node_ops, "x-registry": "op",
                   "description": "a registered op name (graphnet plugins --json lists them)"},
            "inputs": {"type": "array", "items": {"$ref": "#/$defs/name"},
                       "description": "the nodes or inputs it reads, in order; may repeat"},
            "attrs": {"type": "object"},
        },
        "additionalProperties": False,
        "allOf": cases,
    }
    defs["input"] = {
        "type": "object",
        "required": ["name", "shape"],
        "properties": {
            "name": {"$ref": "#/$defs/name"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 1},
                      "description": "per-sample shape, no batch dimension"},
            "dtype": {"type": "string", "enum": dtypes, "default": "float32"},
        },
        "additionalProperties": False,
    }
    opt_cases = [{"if": {"properties": {"name": {"const": n}}, "required": ["name"]},
                  "then": _optimizer_schema(cls)} for n, cls in optimizers.items()]
    defs["optimizer"] = {
        "description": "an optimizer name, or {\"name\": ..., hyperparameters...}",
        "type": ["string", "object"],
        "if": {"type": "string"},
        "then": {"enum": list(optimizers), "x-registry": "optimizer"},
        "else": {"required": ["name"],
                 "properties": {"name": {"type": "string", "enum": list(optimizers),
                                         "x-registry": "optimizer"}},
                 "allOf": opt_cases}}
    defs["training"] = {
        "type": "object",
        "properties": {
            "optimizer": {"$ref": "#/$defs/optimizer"},
            "epochs": {"type": "integer", "minimum": 1},
            "batch_size": {"type": "integer", "minimum": 1},
            "seed": {"type": "integer", "minimum": 0},
            "shuffle": {"type": "boolean", "default": True},
            "dataset": {"type": "string", "enum": datasets, "x-registry": "dataset",
                        "description": "a registered dataset (or give 'data')"},
            "data": {"type": "string", "minLength": 1,
                     "description": "a .npz or .csv file (or give 'dataset')"},
            "validation_split": {"type": "number", "minimum": 0, "exclusiveMaximum": 1,
                                 "description": "fraction of the training data held out"},
        },
        "additionalProperties": False,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "model-1.json",
        "title": "graphnet model",
        "description": f"A graphnet model file ({FORMAT}).",
        "type": "object",
        "required": ["format", "inputs", "nodes"],
        "properties": {
            "$schema": {"type": "string"},
            "format": {"const": FORMAT},
            "name": {"type": "string", "minLength": 1},
            "inputs": {"type": "array", "items": {"$ref": "#/$defs/input"}},
            "nodes": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            "outputs": {"type": "array", "items": {"$ref": "#/$defs/name"}},
            "training": {"$ref": "#/$defs/training"},
        },
        "additionalProperties": False,
        "$defs": defs,
    }


def _is_integer(checker, instance):
    # jsonschema counts 4.0 as an integer; graphnet does not (units=4.0 is a mistake)
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer))
_validator_cache = [None, None]  # (tables, validators): rebuilt when the plugins change


class _Validators:
    """The schema as jsonschema validators, split for speed.

    The published schema picks a node's attrs with one if/then per op, which
    costs every node a test against every op. Here the same subschemas are
    applied directly: the whole schema without the per-op cases, then each
    node against ``$defs/op_<its op>``. The errors are the same.
    """

    def __init__(self, tables):
        self.schema = _build_schema(tables)
        defs = copy.deepcopy(self.schema["$defs"])
        cases = defs["node"].pop("allOf")
        lean = {k: v for k, v in self.schema.items() if k != "$defs"}
        self.whole = _Validator(_inline(lean, defs))
        self.per_op = {c["if"]["properties"]["op"]["const"]: _Validator(_inline(c["then"], defs))
                       for c in cases}

    def iter_errors(self, data):
        """(JSON path, error) for every problem."""
        for e in self.whole.iter_errors(data):
            yield tuple(e.absolute_path), e
        nodes = data.get("nodes") if isinstance(data, dict) else None
        for i, node in enumerate(nodes if isinstance(nodes, list) else []):
            op = node.get("op") if isinstance(node, dict) else None
            if isinstance(op, str) and op in self.per_op:
                for e in self.per_op[op].iter_errors(node):
                    yield ("nodes", i) + tuple(e.absolute_path), e


def _inline(schema, defs):
    """The schema with every local $ref replaced by its target (jsonschema runs faster)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline(defs[ref[len("#/$defs/"):]], defs)
        return {k: _inline(v, defs) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def _validator():
    tables = _tables()
    if _validator_cache[0] is not tables:
        _validator_cache[:] = [tables, _Validators(tables)]
    return _validator_cache[1]


# =============================================================================
# JSON -> Graph
# =============================================================================

def graph_from_json(path_or_text):
    """A Graph from a model file (a path) or from JSON text (a str starting with '{')."""
    if isinstance(path_or_text, bytes):
        return _from_text(path_or_text, "<json text>")
    if isinstance(path_or_text, str) and path_or_text.lstrip().startswith(("{", "[")):
        return _from_text(path_or_text, "<json text>")
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
    return _from_text(raw, path)


def graph_from_dict(data, source="<dict>"):
    """A Graph from the JSON form's dict, checked against the schema and the engine.

    Raises SchemaError (or the engine's ShapeError, CycleError, UnknownOpError,
    GraphError) naming ``source``, the JSON path and the node.
    """
    data = _plain_input(data, source)
    _check_schema(data, source)
    _check_names(data, source)
    return _build(data, source)


def _from_text(raw, source):
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SchemaError(f"{source}: not UTF-8 text (byte {exc.start}); save the model "
                              f"file as UTF-8") from None
    try:
        data = json.loads(raw, parse_constant=_NonFinite, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: "
                          f"{exc.msg}") from None
    except RecursionError:
        raise SchemaError(f"{source}: invalid JSON: nested too deeply") from None
    except ValueError as exc:   # e.g. an integer with more digits than Python converts
        raise SchemaError(f"{source}: invalid JSON: {exc}") from None
    return graph_from_dict(data, source)


class _NonFinite:
    """What json.loads makes of NaN, Infinity and -Infinity, to be refused with a path."""

    def __init__(self, text):
        self.text = text


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

    def walk(value, path, depth):
        if depth > MAX_DEPTH:
            raise _error(source, path, data, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, _NonFinite):
            raise _error(source, path, data, f"found {value.text}, which is not a number in "
                         f"JSON; expected a finite number")
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            if not math.isfinite(value):
                raise _error(source, path, data, f"found {float(value)}; expected a finite "
                             f"number (JSON has no NaN or Infinity)")
            return float(value)
        if isinstance(value, (list, tuple)):
            return [walk(v, path + (i,), depth + 1) for i, v in enumerate(value)]
        if isinstance(value, dict):
            dups = getattr(value, "duplicates", ())
            if dups:
                raise _error(source, path + (dups[0],), data,
                             f"key {dups[0]!r} appears twice in one object; keep one")
            out = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    raise _error(source, path, data, f"key {k!r} is not a string; JSON "
                                 f"object keys are strings")
                out[k] = walk(v, path + (k,), depth + 1)
            return out
        raise _error(source, path, data, f"found {type(value).__name__} {value!r:.60}, which "
                     f"JSON cannot hold; expected numbers, strings, booleans, lists or objects")

    if not isinstance(data, dict):
        raise SchemaError(f"{source}: a model is a JSON object with \"format\", \"inputs\" and "
                          f"\"nodes\"; found {_found(data)}")
    return walk(data, (), 0)


def _check_schema(data, source):
    errors = list(_validator().iter_errors(data))
    if not errors:
        return
    errors.sort(key=lambda pe: _order(data, *pe))
    raise _translate(*errors[0], data, source, len(errors) - 1)


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


def _translate(path, error, data, source, more):
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
            cls = UnknownOpError
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
    elif v == "pattern" or (v == "minLength" and error.validator_value == 1):
        text = (f"found {_found(value)}; expected a name of letters, digits, '_', '-' and "
                f"'/', starting with a letter or '_'" if v == "pattern" else
                "found an empty string; expected a non-empty name")
    else:
        text = f"expected {_expected(schema) or error.message}, found {_found(value)}"
    err = _error(source, path, data, text, cls)
    if more:
        err.args = (err.args[0] + f" (and {more} more problem{'s' if more > 1 else ''})",)
    return err


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
    for key, word in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                      ("exclusiveMaximum", "<")):
        if key in schema:
            parts.append(f"{word} {schema[key]}")
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


def _check_optimizer(data, source):
    """Build the training block's optimizer once, so its own checks (beta1 < 1) run now."""
    from .optim import optimizer
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


def _build(data, source):
    from .scheduler import Program, check_attr
    from .plugins import registry
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
                attrs[key] = check_attr(f"node {node['name']!r}", key, op.attrs[key], value)
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
    try:
        Program(g)  # structure, arity, dtypes and shapes, as a Model will see them
    except GraphnetError as exc:
        text, path, first = str(exc), (), len(str(exc)) + 1
        for name, loc in where_of.items():  # the node the engine's message names first
            for pattern in (f"node {name!r}", f"input {name!r}", f": {name} ->"):
                at = text.find(pattern)
                if 0 <= at < first:
                    path, first = loc, at
        if path:  # the engine's own "node 'x' (op): " prefix repeats what _error says
            item = data[path[0]][path[1]]
            for prefix in (f"node {item['name']!r} ({item.get('op')}): ",
                           f"node {item['name']!r}: "):
                if text.startswith(prefix):
                    text = text[len(prefix):]
        raise _error(source, path, data, text, type(exc)) from None
    return g


# =============================================================================
# Checkpoints
# =============================================================================

@dataclass
class Checkpoint:
    """What ``load_checkpoint`` returns: a model, and how to go on training it.

    ``optimizer`` is rebuilt with its state (or None), ``history`` and
    ``train_state`` are the dicts that were saved (or None), ``metadata`` holds
    the format, graphnet version, time, dtype, seed and param names.
    """

    model: object
    optimizer: object = None
    history: dict = None
    train_state: dict = None
    metadata: dict = None
    path: str = None


def save(model, path, optimizer=None, history=None, train_state=None):
    """Write ``model`` (graph, params, RNG state) to one ``.npz`` checkpoint, atomically.

    ``optimizer`` adds its ``state_dict()`` (state per param name and step count);
    ``history`` (a dict or anything with ``to_dict()``) and ``train_state``
    (a JSON-able dict: epoch, RNG states...) are stored as JSON. The file is
    written to a temporary file in the same folder, flushed, fsynced and then
    renamed over ``path``, so a crash leaves the previous checkpoint whole.

    >>> import graphnet as gn, tempfile, os
    >>> g = gn.Graph("tiny"); x = g.input("x", shape=(2,))
    >>> _ = g.output(g.add("dense", x, units=1, name="fc"))
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> gn.save(gn.Model(g, seed=0), path)
    >>> gn.load(path).params["fc.weight"].shape
    (2, 1)
    """
    from . import __version__
    path = os.fspath(path)
    where = f"checkpoint {path!r}"
    seed = model.seed if isinstance(model.seed, (int, np.integer)) else None
    meta = {
        "format": CHECKPOINT_FORMAT,
        "graphnet_version": __version__,
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "name": model.name,
        "dtype": str(model.dtype),
        "seed": None if seed is None else int(seed),
        "rng": _jsonable(model.rng.bit_generator.state, f"{where}: model.rng state"),
        "params": list(model.params),
    }
    arrays = {"meta": None, "graph": _utf8(graph_to_json(model.graph))}
    for i, value in enumerate(model.params.values()):
        arrays[f"param_{i}"] = np.asarray(value)
    if optimizer is not None:
        arrays["optimizer"] = _utf8(_dump(_optimizer_json(optimizer, arrays, where),
                                          f"{where}: optimizer state"))
    if history is not None:
        if hasattr(history, "to_dict"):
            history = history.to_dict()
        if not isinstance(history, dict):
            raise CheckpointError(f"{where}: history must be a dict or have to_dict(), got "
                                  f"{type(history).__name__}")
        arrays["history"] = _utf8(_dump(history, f"{where}: history"))
    if train_state is not None:
        if not isinstance(train_state, dict):
            raise CheckpointError(f"{where}: train_state must be a dict, got "
                                  f"{type(train_state).__name__}")
        arrays["train_state"] = _utf8(_dump(train_state, f"{where}: train_state"))
    arrays["meta"] = _utf8(_dump(meta, f"{where}: metadata"))
    _atomic_write(path, lambda f: _write_npz(f, arrays), CheckpointError)


def load(path):
    """The Model saved in a checkpoint: same graph, dtype, params (bit-identical) and RNG."""
    return load_checkpoint(path).model


def load_checkpoint(path):
    """Everything a checkpoint holds, checked: a ``Checkpoint``.

    Raises CheckpointError naming the file and what is wrong: missing,
    truncated or corrupted files, pickled (object) arrays, an unknown format,
    params that are missing, extra or misshapen, an optimizer nobody provides.
    """
    from .model import Model
    path = os.fspath(path)
    where = f"checkpoint {path!r}"
    arrays = _read_npz(path, where)
    meta = _json_entry(arrays, "meta", where, required=True)
    _need(isinstance(meta, dict), f"{where}: its metadata is not a JSON object")
    fmt = meta.get("format")
    _need(fmt == CHECKPOINT_FORMAT, f"{where}: unknown checkpoint format {fmt!r}; this graphnet "
          f"reads {CHECKPOINT_FORMAT!r}")
    names = meta.get("params")
    _need(isinstance(names, list) and all(isinstance(n, str) for n in names),
          f"{where}: metadata 'params' must be a list of param names")
    dtype, seed = meta.get("dtype"), meta.get("seed")
    _need(dtype in ("float32", "float64"), f"{where}: model dtype {dtype!r} is not float32 "
          f"or float64")
    _need(seed is None or (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0),
          f"{where}: seed {seed!r} is not a non-negative integer")
    if "graph" not in arrays:
        raise CheckpointError(f"{where}: holds no graph")
    try:
        graph = _from_text(_text(arrays["graph"], "graph", where), "its graph")
        model = Model(graph, seed=seed, dtype=dtype)
    except GraphnetError as exc:
        raise CheckpointError(f"{where}: its model cannot be rebuilt: {exc}") from None

    stored = {}
    for i, name in enumerate(names):
        key = f"param_{i}"
        _need(key in arrays, f"{where}: param {name!r} is missing (no array {key!r})")
        stored[name] = arrays.pop(key)
    missing = [k for k in model.params if k not in stored]
    extra = [k for k in stored if k not in model.params]
    _need(not missing, f"{where}: params missing for {missing}")
    _need(not extra, f"{where}: params {extra} are not in model {model.name!r}"
          f"{did_you_mean(extra[0], model.params) if extra else ''}")
    for name, value in stored.items():
        want = model.params[name]
        _need(value.shape == want.shape, f"{where}: param {name!r} has shape {value.shape}, "
              f"the model needs {want.shape}")
        _need(value.dtype == want.dtype, f"{where}: param {name!r} is {value.dtype}, the model "
              f"is {want.dtype}")
        model.params[name] = value.copy()
    try:
        model.rng.bit_generator.state = meta.get("rng")
    except Exception as exc:  # numpy raises TypeError, ValueError or KeyError for a bad state
        raise CheckpointError(f"{where}: the model's RNG state cannot be restored: "
                              f"{type(exc).__name__}: {exc}") from None

    opt = None
    if "optimizer" in arrays:
        opt = _restore_optimizer(_json_entry(arrays, "optimizer", where), arrays, model, where)
    history = _json_entry(arrays, "history", where)
    train_state = _json_entry(arrays, "train_state", where)
    _need(history is None or isinstance(history, dict), f"{where}: history is not a dict")
    _need(train_state is None or isinstance(train_state, dict),
          f"{where}: train_state is not a dict")
    known = {"meta", "graph", "optimizer", "history", "train_state"}
    extra = [k for k in arrays if k not in known and not k.startswith("opt_")]
    _need(not extra, f"{where}: unexpected entries {extra}")
    return Checkpoint(model, opt, history, train_state, meta, path)


def _need(ok, message):
    if not ok:
        raise CheckpointError(message)


def _utf8(text):
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _text(array, name, where):
    _need(array.dtype == np.uint8 and array.ndim == 1,
          f"{where}: entry {name!r} must hold UTF-8 bytes, found {array.dtype} {array.shape}")
    try:
        return array.tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError(f"{where}: entry {name!r} is not UTF-8 text; the file is "
                              f"corrupted") from None


def _json_entry(arrays, name, where, required=False):
    if name not in arrays:
        _need(not required, f"{where}: holds no {name!r} entry; is it a graphnet checkpoint?")
        return None
    try:
        return json.loads(_text(arrays[name], name, where))
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"{where}: entry {name!r} is not valid JSON ({exc}); the file is "
                              f"corrupted") from None


def _jsonable(value, where):
    """Plain JSON data from numpy-flavoured data (RNG states hold numpy ints)."""
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    raise CheckpointError(f"{where}: {type(value).__name__} {value!r:.60} cannot be stored as "
                          f"JSON")


def _dump(value, where):
    return json.dumps(_jsonable(value, where))


def _optimizer_json(optimizer, arrays, where):
    """The optimizer's state_dict as JSON, its arrays moved into ``arrays``."""
    state = optimizer.state_dict()
    _need(isinstance(state, dict) and isinstance(state.get("state", {}), dict),
          f"{where}: optimizer.state_dict() must return a dict with a 'state' dict")
    refs = {}
    for pname, entries in state.get("state", {}).items():
        refs[pname] = {}
        for key, value in entries.items():
            ref = f"opt_{sum(len(r) for r in refs.values())}"
            arr = np.asarray(value)
            _need(arr.dtype.kind in "biuf", f"{where}: optimizer state {pname}.{key} is not a "
                  f"numeric array ({arr.dtype})")
            arrays[ref] = arr
            refs[pname][key] = ref
    out = {k: v for k, v in state.items() if k != "state"}
    out.setdefault("name", getattr(optimizer, "name", None))
    out.setdefault("step", getattr(optimizer, "step_count", 0))
    out.setdefault("hyper", getattr(optimizer, "hyper", {}))
    out["state"] = refs
    return out


def _restore_optimizer(data, arrays, model, where):
    from .optim import optimizer as make
    _need(isinstance(data, dict), f"{where}: optimizer entry is not a JSON object")
    name, step, hyper, refs = (data.get(k) for k in ("name", "step", "hyper", "state"))
    _need(isinstance(name, str), f"{where}: optimizer has no name")
    _need(isinstance(step, int) and not isinstance(step, bool) and step >= 0,
          f"{where}: optimizer step {step!r} is not a non-negative integer")
    _need(isinstance(hyper, dict), f"{where}: optimizer hyperparameters are not an object")
    _need(isinstance(refs, dict) and all(isinstance(v, dict) for v in refs.values()),
          f"{where}: optimizer state is not an object of objects")
    state = {}
    for pname, entries in refs.items():
        _need(pname in model.params, f"{where}: optimizer state for {pname!r}, which is not "
              f"a param of the model{did_you_mean(pname, model.params)}")
        state[pname] = {}
        for key, ref in entries.items():
            _need(isinstance(ref, str) and ref.startswith("opt_") and ref in arrays,
                  f"{where}: optimizer state {pname}.{key} points at missing entry {ref!r}")
            state[pname][key] = arrays[ref]
    try:
        opt = make(name, **hyper)
    except UnknownOpError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    except Exception as exc:
        raise CheckpointError(f"{where}: optimizer {name!r} rejects the saved "
                              f"hyperparameters {hyper}: {exc}") from None
    try:
        opt.load_state_dict({**data, "state": state})
    except Exception as exc:
        raise CheckpointError(f"{where}: optimizer {name!r} cannot load the saved state: "
                              f"{type(exc).__name__}: {exc}") from None
    return opt


# --- the file itself ----------------------------------------------------------

def _atomic_write(path, write, error):
    """Write via a temporary file in the same folder, fsync, rename, fsync the folder."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                                   suffix=".tmp")
    except OSError as exc:
        raise error(f"cannot write {path!r}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise error(f"cannot write {path!r}: {exc.strerror or exc}") from None
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some systems cannot open a folder; the rename is still atomic
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _write_npz(f, arrays):
    """An uncompressed .npz (what np.savez writes), refusing object arrays."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(arr), allow_pickle=False)


def _read_npz(path, where):
    """Every array of the file, checked before numpy parses it; no pickle, ever."""
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise CheckpointError(f"{where} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"{where} is a folder, not a checkpoint file") from None
    except Exception as exc:  # BadZipFile, OSError, EOFError, ValueError on a damaged file
        raise CheckpointError(f"{where} is not a readable .npz file ({type(exc).__name__}: "
                              f"{exc}); it is truncated, corrupted or not a checkpoint") from None
    arrays = {}
    with zf:
        try:
            infos = zf.infolist()
            for info in infos:
                name = info.filename
                _need(name.endswith(".npy") and "/" not in name,
                      f"{where}: unexpected entry {name!r}; not a graphnet checkpoint")
                _need(info.compress_type == zipfile.ZIP_STORED,
                      f"{where}: entry {name!r} is compressed; graphnet writes checkpoints "
                      f"uncompressed")
                raw = zf.read(info)     # checks the CRC: flipped bytes are caught here
                key = name[:-4]
                _need(key not in arrays, f"{where}: entry {key!r} appears twice")
                arrays[key] = _parse_npy(raw, key, where)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"{where} is corrupted ({type(exc).__name__}: {exc}); "
                                  f"restore it or use an earlier checkpoint") from None
    return arrays


def _parse_npy(raw, key, where):
    f = io.BytesIO(raw)
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except Exception as exc:
        raise CheckpointError(f"{where}: entry {key!r} is not a readable array ({exc})") from None
    if dtype.hasobject:
        raise CheckpointError(f"{where}: entry {key!r} holds Python objects (a pickle), which "
                              f"graphnet never loads: it could run code. Only trust "
                              f"checkpoints written by graphnet.save")
    _need(dtype.kind in "biuf" and dtype.fields is None,
          f"{where}: entry {key!r} has dtype {dtype}, not a plain numeric array")
    size = math.prod(shape) * dtype.itemsize
    _need(size == len(raw) - f.tell(), f"{where}: entry {key!r} claims {size} bytes of data "
          f"but holds {len(raw) - f.tell()}; the file is truncated or corrupted")
    f.seek(0)
    try:
        return np.load(f, allow_pickle=False)
    except Exception as exc:
        raise CheckpointError(f"{where}: entry {key!r} cannot be read ({exc})") from None
