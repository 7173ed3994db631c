"""Fuzzing: random valid and broken model files, random damage to checkpoints.

Nothing but a GraphnetError may escape, and whatever loads must round-trip.
"""

import json
import os
import random
import tempfile

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphnet as gn
from graphnet.serialize import FORMAT

FAST = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)

# The model generators are plain Python driven by a seed that hypothesis draws:
# drawing every choice through hypothesis costs ~10 ms an example, this ~0.3 ms,
# which is what lets thousands of examples run in seconds.
NAMES = ["x", "y", "fc", "n0", "n1", "units", "alpha", "dense", "tanh", "", "1x", "a b"]


def random_json(r, depth=0):
    """A random JSON-ish value, weird ones included (NaN, huge ints, nesting)."""
    pick = r.randrange(12 if depth < 3 else 10)
    if pick == 10:
        return [random_json(r, depth + 1) for _ in range(r.randint(0, 3))]
    if pick == 11:
        return {r.choice(NAMES): random_json(r, depth + 1) for _ in range(r.randint(0, 3))}
    return [None, True, r.randint(-3, 8), r.choice([0.5, -1.0, 1e300, float("nan"),
            float("inf")]), r.choice(NAMES), 10**r.randint(1, 30), "", r.random(),
            r.choice([[], {}]), (1, 2)][pick]


def make_valid(seed):
    """A random valid model: a DAG of layers over one input, nodes listed in any order."""
    r = random.Random(seed)
    width = r.randint(1, 5)
    d = {"format": FORMAT, "name": r.choice(["m", "net", "a_b", "Model-2"]),
         "inputs": [{"name": "x", "shape": [width], "dtype": "float32"}],
         "nodes": [], "outputs": []}
    shapes = {"x": width}
    for i in range(r.randint(1, 7)):
        name = f"n{i}"
        src = r.choice(sorted(shapes))
        kind = r.choice(["dense", "tanh", "relu", "elu", "sigmoid", "add", "dropout", "concat"])
        node = {"name": name, "op": kind, "inputs": [src]}
        if kind == "dense":
            node["attrs"] = {"units": r.randint(1, 4)}
            if r.random() < 0.5:
                node["attrs"]["use_bias"] = r.random() < 0.5
            if r.random() < 0.3:
                node["attrs"]["init"] = r.choice(["zeros", {"name": "normal", "std": 0.1}])
            shapes[name] = node["attrs"]["units"]
        elif kind == "elu":
            node["attrs"] = {"alpha": r.uniform(0.1, 3.0)}
            shapes[name] = shapes[src]
        elif kind == "dropout":
            node["attrs"] = {"rate": r.uniform(0.0, 0.9)}
            shapes[name] = shapes[src]
        elif kind == "add":
            node["inputs"].append(r.choice(sorted(n for n, w in shapes.items()
                                                  if w == shapes[src])))
            shapes[name] = shapes[src]
        elif kind == "concat":
            other = r.choice(sorted(shapes))
            node["inputs"].append(other)
            shapes[name] = shapes[src] + shapes[other]
        else:
            shapes[name] = shapes[src]
        d["nodes"].append(node)
    r.shuffle(d["nodes"])                                # order carries no meaning
    d["outputs"] = r.sample([n["name"] for n in d["nodes"]], r.randint(1, min(2, len(d["nodes"]))))
    if r.random() < 0.5:
        d["training"] = {"optimizer": {"name": "sgd", "lr": r.uniform(1e-4, 1.0)},
                         "epochs": r.randint(1, 50), "seed": r.randint(0, 99)}
    return d


def paths(value, prefix=()):
    """Every JSON path in a document."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths(v, prefix + (i,))


def make_broken(seeds):
    """A valid model with a few random edits: replaced, deleted, added or renamed values."""
    d = make_valid(seeds[0])
    r = random.Random(seeds[1])
    for _ in range(r.randint(1, 3)):
        where = r.choice(list(paths(d)))
        if not where:
            continue
        parent = d
        for p in where[:-1]:
            parent = parent[p]
        key = where[-1]
        action = r.choice(["replace", "delete", "add", "rename"])
        if action == "replace":
            parent[key] = random_json(r)
        elif action == "delete":
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[r.choice(NAMES)] = random_json(r)
        elif action == "add":
            parent.insert(key, random_json(r))
        elif isinstance(parent[key], str):
            parent[key] = r.choice([parent[key] + "x", parent[key][:-1], "n0", "x"])
    return d


seeds = st.integers(0, 2**32 - 1)
PUBLISHED = jsonschema.validators.extend(   # integers as graphnet counts them (4.0 is not)
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool)))(gn.model_schema())
valid_models = seeds.map(make_valid)
broken_models = st.tuples(seeds, seeds).map(make_broken)


@settings(max_examples=250, **FAST)
@given(valid_models)
def test_valid_models_round_trip(d):
    g = gn.Graph.from_dict(d)
    out = g.to_dict()
    assert out == d
    assert gn.Graph.from_json(g.to_json()).to_dict() == d
    gn.Model(g, seed=0)


@settings(max_examples=800, **FAST)
@given(broken_models)
def test_broken_models_raise_only_graphnet_errors(d):
    try:
        g = gn.Graph.from_dict(d)
    except gn.GraphnetError as exc:
        assert str(exc).startswith("<dict>: ")
        return
    # some edits leave a valid model: then it must round-trip too
    out = g.to_dict()
    assert gn.Graph.from_dict(out).to_dict() == out


@settings(max_examples=150, **FAST)
@given(broken_models)
def test_the_split_validator_agrees_with_the_published_schema(d):
    """graphnet applies each node's op subschema directly (for speed); the verdict must be
    the one a plain jsonschema validator gives with the published if/then schema."""
    from graphnet import schema, serialize
    try:
        d = serialize._plain_input(d, "<dict>")
    except gn.SchemaError:
        return
    ours = [path for path, _ in schema._validator().iter_errors(d)]
    theirs = [tuple(e.absolute_path) for e in PUBLISHED.iter_errors(d)]
    assert sorted(map(repr, ours)) == sorted(map(repr, theirs))


@settings(max_examples=500, **FAST)
@given(st.one_of(
    st.tuples(seeds, seeds).map(lambda s: json.dumps(make_broken(s))),
    seeds.map(lambda s: json.dumps(random_json(random.Random(s)))),
    st.text(max_size=40).map(lambda t: "{" + t),
    st.text(max_size=20),                                    # taken for a file path
    valid_models.flatmap(lambda d: st.integers(0, len(json.dumps(d))).map(
        lambda n: json.dumps(d)[:n])),                       # cut anywhere
    valid_models.flatmap(lambda d: st.tuples(
        st.integers(0, len(json.dumps(d)) - 1), st.sampled_from(["NaN", "1e999", "]", '"'])).map(
        lambda t: json.dumps(d)[:t[0]] + t[1] + json.dumps(d)[t[0]:])),
))
def test_any_text_raises_only_graphnet_errors(text):
    try:
        gn.Graph.from_json(text)
    except gn.GraphnetError:
        pass
    except Exception as exc:   # a path-like text that is no file is a GraphnetError too
        raise AssertionError(f"{type(exc).__name__} escaped for {text!r}") from exc


# --- checkpoints ---------------------------------------------------------------------

def _checkpoint_bytes():
    g = gn.Graph("fuzz")
    x = g.input("x", shape=(3,))
    y = g.input("y", shape=(1,))
    out = g.add("dense", g.add("tanh", g.add("dense", x, units=4, name="fc1")), units=1,
                name="out")
    g.add("mse", out, y, name="loss")
    g.output(out)
    model = gn.Model(g, seed=0)
    opt = gn.optimizer("sgd", lr=0.1)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "c.npz")
        gn.save(model, path, optimizer=opt, history={"epochs": [{"epoch": 1, "loss": 1.0}]}, train_state={"epoch": 1})
        with open(path, "rb") as f:
            return f.read(), model


GOOD, MODEL = _checkpoint_bytes()


@st.composite
def damaged(draw):
    raw = bytearray(GOOD)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        at = draw(st.integers(0, max(len(raw) - 1, 0)))
        if action == "flip" and raw:
            raw[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "set" and raw:
            raw[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del raw[at:]
        elif action == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del raw[at:at + draw(st.integers(1, 16))]
    return bytes(raw)


@settings(max_examples=400, **FAST)
@given(damaged())
def test_damaged_checkpoints_raise_only_checkpoint_errors(raw):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "c.npz")
        with open(path, "wb") as f:
            f.write(raw)
        try:
            ck = gn.load_checkpoint(path)
        except gn.CheckpointError as exc:
            assert path in str(exc)
            return
    # damage the zip format does not see (a timestamp, padding) must not change the model
    for key, value in MODEL.params.items():
        assert ck.model.params[key].tobytes() == value.tobytes()


@settings(max_examples=100, **FAST)
@given(valid_models, st.sampled_from(["float32", "float64"]), st.integers(0, 2**31))
def test_valid_models_round_trip_through_checkpoints(d, dtype, seed):
    model = gn.Model(gn.Graph.from_dict(d), seed=seed, dtype=dtype)
    model.rng.random(seed % 5)
    real_fsync = os.fsync
    os.fsync = lambda fd: None        # durability is tested elsewhere; here, the content
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "c.npz")
            gn.save(model, path)
            back = gn.load(path)
    finally:
        os.fsync = real_fsync
    assert back.graph.to_dict() == d and back.dtype == model.dtype and back.seed == seed
    assert list(back.params) == list(model.params)
    for key, value in model.params.items():
        assert back.params[key].dtype == value.dtype
        assert back.params[key].tobytes() == value.tobytes()
    assert back.rng.bit_generator.state == model.rng.bit_generator.state
