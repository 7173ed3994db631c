"""The JSON Schema of a model file, generated from the plugin registry.

Every op with its attrs (kind, range, choices, default, doc), every
initializer, optimizer and dataset, plugins included, so that editors can
check a model file as it is typed and graphnet.serialize can check it on
load. The builtins-only copy is committed as ``graphnet/schema/model-1.json``
(``write_schema`` regenerates it); the validators here are the same schema,
split for speed, and rebuilt when the installed plugins change.
"""

import copy
import inspect
import json
import os
from importlib import resources

from ..errors import SchemaError
from ..graph import MODEL_NAME, NAME
from ..util import atomic_write, plain

FORMAT = "graphnet-model/1"
"""The ``format`` every model file carries; a later incompatible form gets /2."""

SCHEMA_FILE = "schema/model-1.json"  # inside the graphnet package


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
        path = os.path.join(os.path.dirname(__file__), os.path.basename(SCHEMA_FILE))
    data = schema_text(builtins_only=True).encode("utf-8")
    atomic_write(path, lambda f: f.write(data), SchemaError)
    return path


def shipped_schema():
    """The schema file shipped inside the package (builtins only), as a dict."""
    with resources.files("graphnet").joinpath(SCHEMA_FILE).open("rb") as f:
        return json.load(f)


def _tables():
    from ..plugins import registry
    return registry().tables()


def _builtin_tables():
    """Registry tables with the builtin plugins only, whatever is installed."""
    from ..plugins import Registry
    return Registry().load(entry_points=False).tables()


def _json_default(value):
    """A default as JSON, or None when it has no JSON form."""
    try:
        return True, plain(value, "default")
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
        props.update({k: _attr_schema(spec) for k, spec in init.attrs.items()})
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
            "dataset_options": {"type": "object",
                                "additionalProperties": {"type": ["number", "string",
                                                                  "boolean"]},
                                "description": "options of the dataset, e.g. "
                                               "{\"n\": 500, \"noise\": 0.2}"},
            "data": {"type": "string", "minLength": 1,
                     "description": "a .npz or .csv file (or give 'dataset')"},
            "validation_split": {"type": "number", "minimum": 0, "exclusiveMaximum": 1,
                                 "description": "fraction of the training data held out"},
            "checkpoint_every": {"type": "integer", "minimum": 1, "default": 1,
                                 "description": "write the checkpoint every this many "
                                                "epochs (the last one and an interrupted "
                                                "run's finished ones always)"},
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
            "name": {"type": "string", "minLength": 1, "pattern": MODEL_NAME.pattern,
                     "description": "the model's name, also its run folder runs/<name>: no "
                                    "'/', '\\', control characters, '.' or '..'"},
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


def _validator_class():
    """Draft 2020-12 with graphnet's integers. jsonschema is imported here, when a model
    file (or a checkpoint's model) is first checked: building, training and saving a
    model do without it."""
    import jsonschema
    draft = jsonschema.Draft202012Validator
    return jsonschema.validators.extend(
        draft, type_checker=draft.TYPE_CHECKER.redefine("integer", _is_integer))


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
        validator = _validator_class()
        self.whole = validator(_inline(lean, defs))
        self.per_op = {c["if"]["properties"]["op"]["const"]: validator(_inline(c["then"], defs))
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
