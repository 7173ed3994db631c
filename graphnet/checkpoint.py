"""Checkpoints: a Model, its optimizer and its training position in one file.

A checkpoint is one ``.npz`` file (a zip of ``.npy`` arrays, never pickles)
holding the graph's JSON, the params, the optimizer state, the training
position and the history, written atomically so a crash during a save leaves
the previous checkpoint whole. Loading checks every entry before numpy parses
it, so a damaged or foreign file is a CheckpointError naming what is wrong.
"""

import datetime
import json
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from .errors import CheckpointError, GraphnetError, UnknownNameError, did_you_mean
from .history import History
from .npzfile import read_npz
from .util import atomic_write
from .serialize import _from_text, graph_to_json
from .version import __version__

CHECKPOINT_FORMAT = "graphnet-checkpoint/1"


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` returns: a model, and how to go on training it.

    ``optimizer`` is rebuilt with its state (or None), ``history`` is a
    ``gn.History`` (or None), ``train_state`` the dict that was saved (or None), ``metadata`` holds
    the format, graphnet version, time, dtype, seed, param and buffer names.
    """

    model: object
    optimizer: object = None
    history: History = None
    train_state: dict = None
    metadata: dict = None
    path: str = None


def save(model, path, optimizer=None, history=None, train_state=None):
    """Write ``model`` (graph, params, RNG state) to one ``.npz`` checkpoint, atomically.

    ``optimizer`` adds its ``state_dict()`` (state per param name and step count);
    ``history`` (a ``gn.History`` or its ``to_dict()`` form) and ``train_state``
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
        "buffers": list(model.buffers),
    }
    arrays = {"meta": None, "graph": _utf8(graph_to_json(model.graph))}
    for i, value in enumerate(model.params.values()):
        arrays[f"param_{i}"] = np.asarray(value)
    for i, value in enumerate(model.buffers.values()):
        arrays[f"buffer_{i}"] = np.asarray(value)
    if optimizer is not None:
        arrays["optimizer"] = _utf8(_dump(_optimizer_json(optimizer, arrays, where),
                                          f"{where}: optimizer state"))
    if history is not None:
        if isinstance(history, History):
            history = history.to_dict()
        try:
            History.from_dict(history)
        except GraphnetError as exc:
            raise CheckpointError(f"{where}: history must be a gn.History or its to_dict() "
                                  f"form: {exc}") from None
        arrays["history"] = _utf8(_dump(history, f"{where}: history"))
    if train_state is not None:
        if not isinstance(train_state, dict):
            raise CheckpointError(f"{where}: train_state must be a dict, got "
                                  f"{type(train_state).__name__}")
        arrays["train_state"] = _utf8(_dump(train_state, f"{where}: train_state"))
    arrays["meta"] = _utf8(_dump(meta, f"{where}: metadata"))
    atomic_write(path, lambda f: _write_npz(f, arrays), CheckpointError)


def load(path):
    """The Model saved in a checkpoint: same graph, dtype, params (bit-identical) and RNG."""
    return load_checkpoint(path).model


def load_checkpoint(path):
    """Everything a checkpoint holds, checked: a ``Checkpoint``.

    Raises CheckpointError naming the file and what is wrong: missing,
    truncated or corrupted files, pickled (object) arrays, an unknown format,
    params or buffers that are missing, extra or misshapen, an optimizer
    nobody provides.
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
    dtype, seed = meta.get("dtype"), meta.get("seed")
    _need(dtype in ("float32", "float64"), f"{where}: model dtype {dtype!r} is not float32 "
          f"or float64")
    _need(seed is None or (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0),
          f"{where}: seed {seed!r} is not a non-negative integer")
    if "graph" not in arrays:
        raise CheckpointError(f"{where}: holds no graph")
    stored = {kind: _stored(arrays, meta, kind, where) for kind in ("param", "buffer")}
    try:
        graph = _from_text(_text(arrays["graph"], "graph", where), "its graph")
        declared = _declared_shapes(graph)
        for kind in ("param", "buffer"):
            _check_stored(stored[kind], declared[kind], np.dtype(dtype), kind, graph.name, where)
        model = Model(graph, seed=seed, dtype=dtype)  # only now: what it allocates is stored
    except CheckpointError:
        raise
    except GraphnetError as exc:
        raise CheckpointError(f"{where}: its model cannot be rebuilt: {exc}") from None
    for kind in ("param", "buffer"):
        into = getattr(model, kind + "s")
        for name, value in stored[kind].items():
            np.copyto(into[name], value)  # in place: params stay views of one flat buffer
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
    if history is not None:
        try:
            history = History.from_dict(history)
        except GraphnetError as exc:
            raise CheckpointError(f"{where}: its history is not a History's: {exc}") from None
    _need(train_state is None or isinstance(train_state, dict),
          f"{where}: train_state is not a dict")
    if train_state is not None:
        _check_train_state(train_state, opt, where)
    known = {"meta", "graph", "optimizer", "history", "train_state"}
    extra = [k for k in arrays if k not in known and not k.startswith("opt_")]
    _need(not extra, f"{where}: unexpected entries {extra}")
    return Checkpoint(model, opt, history, train_state, meta, path)


def _stored(arrays, meta, kind, where):
    """{name: array} of the params (or buffers) the metadata lists, taken out of ``arrays``."""
    plural = kind + "s"
    names = meta.get(plural, [] if kind == "buffer" else None)  # older files list no buffers
    _need(isinstance(names, list) and all(isinstance(n, str) for n in names),
          f"{where}: metadata {plural!r} must be a list of {kind} names")
    stored = {}
    for i, name in enumerate(names):
        key = f"{kind}_{i}"
        _need(key in arrays, f"{where}: {kind} {name!r} is missing (no array {key!r})")
        stored[name] = arrays.pop(key)
    return stored


def _declared_shapes(graph):
    """{"param": {name: shape}, "buffer": {...}} the graph declares, found without
    allocating any of them."""
    from .scheduler import Program
    nodes = Program(graph).nodes.values()
    return {kind: {f"{node.name}.{name}": tuple(spec.shape)
                   for node in nodes for name, spec in getattr(node, kind + "s").items()}
            for kind in ("param", "buffer")}


def _check_stored(stored, shapes, dtype, kind, model_name, where):
    """The stored params (or buffers) are exactly the graph's, of its shapes and the
    model's dtype."""
    missing = [k for k in shapes if k not in stored]
    extra = [k for k in stored if k not in shapes]
    _need(not missing, f"{where}: {kind}s missing for {missing}")
    _need(not extra, f"{where}: {kind}s {extra} are not in model {model_name!r}"
          f"{did_you_mean(extra[0], shapes) if extra else ''}")
    for name, value in stored.items():
        _need(value.shape == shapes[name], f"{where}: {kind} {name!r} has shape {value.shape}, "
              f"the model needs {shapes[name]}")
        _need(value.dtype == dtype, f"{where}: {kind} {name!r} is {value.dtype}, the model "
              f"is {dtype}")


TRAIN_STATE = {"epoch": "a count >= 0", "epochs": "a count >= 1", "step": "a count >= 0",
               "batch_size": "a count >= 1", "shuffle": "true or false",
               "finished": "null or text", "rng": "the two generators' states"}
"""The fields fit saves in train_state, and what each must be."""


def _check_train_state(state, opt, where):
    """Each of fit's fields present is of its type, and agrees with the other entries."""
    def bad(key):
        return CheckpointError(f"{where}: entry 'train_state': {key!r} must be "
                               f"{TRAIN_STATE[key]}, got {state[key]!r:.80}; the file is "
                               f"corrupted")

    for key, least in (("epoch", 0), ("epochs", 1), ("step", 0), ("batch_size", 1)):
        value = state.get(key, least)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise bad(key)
    if not isinstance(state.get("shuffle", True), bool):
        raise bad("shuffle")
    if not (state.get("finished") is None or isinstance(state["finished"], str)):
        raise bad("finished")
    if "rng" in state:
        rng = state["rng"]
        if not isinstance(rng, dict) or set(rng) != {"shuffle", "model"}:
            raise bad("rng")
        for which in ("shuffle", "model"):
            try:
                np.random.default_rng().bit_generator.state = rng[which]
            except Exception:  # numpy raises TypeError, ValueError or KeyError for a bad state
                raise bad("rng") from None
    if opt is not None and "step" in state and opt.step_count != state["step"]:
        raise CheckpointError(f"{where}: entry 'train_state' counts {state['step']} steps, "
                              f"entry 'optimizer' {opt.step_count}; the file is corrupted")


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
    from .plugins import optimizer as make
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
    except UnknownNameError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    except Exception as exc:
        raise CheckpointError(f"{where}: optimizer {name!r} rejects the saved "
                              f"hyperparameters {hyper}: {exc}") from None
    _check_moments(opt, state, step, model, where)
    try:
        opt.load_state_dict({**data, "state": state})
    except Exception as exc:
        raise CheckpointError(f"{where}: optimizer {name!r} cannot load the saved state: "
                              f"{type(exc).__name__}: {exc}") from None
    return opt


def _check_moments(opt, state, step, model, where):
    """The saved state holds, for every param, the very arrays the optimizer's own
    ``init_state`` makes: same names, shapes and dtype (none missing, renamed or extra)."""
    for pname, param in model.params.items():
        want = opt.init_state(param)
        have = state.get(pname)
        if have is None:
            _need(not want or step == 0, f"{where}: optimizer {opt.name!r} has no state for "
                  f"param {pname!r} after {step} steps; the file is corrupted")
            continue
        missing = [k for k in want if k not in have]
        extra = [k for k in have if k not in want]
        _need(not missing and not extra, f"{where}: optimizer state of {pname!r} holds "
              f"{sorted(have)}, {opt.name!r} keeps {sorted(want)}; the file is corrupted")
        for key, arr in have.items():
            ref = np.asarray(want[key])
            _need(arr.shape == ref.shape and arr.dtype == ref.dtype,
                  f"{where}: optimizer state {pname}.{key} is {arr.dtype} {arr.shape}, "
                  f"{opt.name!r} needs {ref.dtype} {ref.shape}")


# --- the file itself ----------------------------------------------------------

def _write_npz(f, arrays):
    """An uncompressed .npz (what np.savez writes), refusing object arrays."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(arr), allow_pickle=False)


def _read_npz(path, where):
    """Every array of the file, checked before numpy parses it; no pickle, ever."""
    arrays = read_npz(path, where, CheckpointError)
    for key in arrays:
        _need("/" not in key, f"{where}: unexpected entry {key + '.npy'!r}; not a graphnet "
              f"checkpoint")
    return arrays
