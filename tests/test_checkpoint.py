"""Checkpoints: everything comes back bit-identical, and every damaged file is named."""

import json
import os
import zipfile

import numpy as np
import pytest

import graphnet as gn
from graphnet import checkpoint


def small_graph():
    g = gn.Graph("small")
    x = g.input("x", shape=(3,))
    y = g.input("y", shape=(2,))
    h = g.add("dense", x, units=4, name="fc1")
    h = g.add("tanh", h)
    h = g.add("dropout", h, rate=0.25, name="drop")
    out = g.add("dense", h, units=2, name="out")
    g.add("mse", out, y, name="loss")
    g.output(out)
    return g


class Heavy(gn.Optimizer):
    """Momentum with a step-dependent factor: state that matters, and a step count that does."""

    name = "heavy_for_checkpoint_test"

    def __init__(self, lr=0.1, beta=0.9):
        super().__init__(lr=lr, beta=beta)

    def init_state(self, param):
        return {"m": np.zeros_like(param)}

    def update(self, param, grad, state, step):
        state["m"] *= self.beta
        state["m"] += grad
        param -= (self.lr / step ** 0.5) * state["m"]


class HeavyPlugin:
    @gn.hookimpl
    def graphnet_optimizers(self):
        return [Heavy]


@pytest.fixture
def heavy():
    name = gn.plugins.register(HeavyPlugin(), name="heavy-checkpoint-test")
    yield Heavy.name
    gn.plugins.unregister(name)


def data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(n, 3)), "y": rng.normal(size=(n, 2))}


def train(model, opt, steps, feeds):
    for _ in range(steps):
        model.forward(feeds, training=True)    # dropout draws from model.rng
        opt.step(model.params, model.backward())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_load_gives_back_the_same_model(tmp_path, dtype):
    model = gn.Model(small_graph(), seed=5, dtype=dtype)
    path = tmp_path / "m.npz"
    gn.save(model, path)
    back = gn.load(path)
    assert isinstance(back, gn.Model)
    assert back.dtype == np.dtype(dtype) and back.seed == 5
    assert back.graph.to_dict() == model.graph.to_dict()
    assert list(back.params) == list(model.params)
    for key, value in model.params.items():
        assert back.params[key].dtype == value.dtype
        assert back.params[key].tobytes() == value.tobytes()
    assert back.rng.bit_generator.state == model.rng.bit_generator.state


def test_rng_state_is_restored_mid_run(tmp_path):
    model = gn.Model(small_graph(), seed=1)
    model.rng.random(17)
    gn.save(model, tmp_path / "m.npz")
    back = gn.load(tmp_path / "m.npz")
    assert np.array_equal(back.rng.random(5), model.rng.random(5))


def test_training_resumed_from_a_checkpoint_is_bit_identical(tmp_path, heavy):
    feeds = data()
    straight = gn.Model(small_graph(), seed=2)
    opt = gn.optimizer(heavy, lr=0.05, beta=0.8)
    train(straight, opt, 6, feeds)

    first = gn.Model(small_graph(), seed=2)
    opt1 = gn.optimizer(heavy, lr=0.05, beta=0.8)
    train(first, opt1, 3, feeds)
    gn.save(first, tmp_path / "c.npz", optimizer=opt1)
    ck = gn.load_checkpoint(tmp_path / "c.npz")
    assert ck.optimizer.step_count == 3 and ck.optimizer.hyper == {"lr": 0.05, "beta": 0.8}
    train(ck.model, ck.optimizer, 3, feeds)
    for key in straight.params:
        assert ck.model.params[key].tobytes() == straight.params[key].tobytes(), key


def test_checkpoint_holds_history_train_state_and_metadata(tmp_path):
    model = gn.Model(small_graph(), seed=0)
    state = {"epoch": 3, "shuffle_rng": np.random.default_rng(9).bit_generator.state,
             "best": np.float32(0.5), "order": np.arange(3)}
    gn.save(model, tmp_path / "c.npz", optimizer=gn.optimizer("sgd", lr=0.1),
            history=gn.History([{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}]),
            train_state=state)
    ck = gn.load_checkpoint(tmp_path / "c.npz")
    assert isinstance(ck.history, gn.History) and ck.history["loss"] == [1.0, 0.5]
    assert ck.train_state["epoch"] == 3 and ck.train_state["order"] == [0, 1, 2]
    assert ck.train_state["shuffle_rng"] == np.random.default_rng(9).bit_generator.state
    assert ck.optimizer.name == "sgd" and ck.optimizer.hyper["lr"] == 0.1
    meta = ck.metadata
    assert meta["format"] == "graphnet-checkpoint/1" and meta["graphnet_version"] == gn.__version__
    assert meta["dtype"] == "float32" and meta["seed"] == 0 and meta["time"].endswith("+00:00")
    assert ck.path == str(tmp_path / "c.npz")


@pytest.mark.parametrize("value, ok", [(None, True), (2, True), (0.5, True),
                                       (np.float32(0.25), True), (True, False), ("0.5", False),
                                       ([1.0], False)])
def test_a_saved_history_holds_numbers_only(value, ok, tmp_path):
    """A callback may write anything into fit's rows: a checkpoint takes numbers (and
    None), and refuses a bool, text or a list naming the row, writing nothing."""
    history = gn.History([{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": value}])
    path = tmp_path / "c.npz"
    if ok:
        gn.save(gn.Model(small_graph()), path, history=history)
        assert gn.load_checkpoint(path).history["loss"] == [1.0, value]
    else:
        with pytest.raises(gn.CheckpointError, match="history row 1 must map names to numbers"):
            gn.save(gn.Model(small_graph()), path, history=history)
        assert not path.exists()


def test_without_extras_they_come_back_as_none(tmp_path):
    gn.save(gn.Model(small_graph()), tmp_path / "c.npz")
    ck = gn.load_checkpoint(tmp_path / "c.npz")
    assert ck.optimizer is None and ck.history is None and ck.train_state is None


def test_history_of_the_wrong_kind_is_refused(tmp_path):
    with pytest.raises(gn.CheckpointError, match="history must be a gn.History"):
        gn.save(gn.Model(small_graph()), tmp_path / "c.npz", history=[1, 2])
    with pytest.raises(gn.CheckpointError, match="train_state.*cannot be stored"):
        gn.save(gn.Model(small_graph()), tmp_path / "c.npz", train_state={"f": object()})
    assert not os.path.exists(tmp_path / "c.npz")


def test_a_checkpoint_holds_no_pickle(tmp_path, heavy):
    model = gn.Model(small_graph(), seed=0)
    opt = gn.optimizer(heavy)
    train(model, opt, 1, data())
    gn.save(model, tmp_path / "c.npz", optimizer=opt, history={"epochs": [{"loss": 1.0}]},
            train_state={"epoch": 1})
    with np.load(tmp_path / "c.npz", allow_pickle=False) as f:
        for key in f.files:
            assert f[key].dtype != object
    with zipfile.ZipFile(tmp_path / "c.npz") as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())


# --- atomic writes ----------------------------------------------------------------

def test_a_failed_save_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    first = gn.Model(small_graph(), seed=1)
    gn.save(first, path)
    before = path.read_bytes()

    def crash(f, arrays):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # as if the process were stopped mid-write

    monkeypatch.setattr(checkpoint, "_write_npz", crash)
    with pytest.raises(KeyboardInterrupt):
        gn.save(gn.Model(small_graph(), seed=2), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.npz"]           # no temporary file left behind
    assert gn.load(path).params["fc1.weight"].tobytes() == first.params["fc1.weight"].tobytes()


def test_save_replaces_and_creates_folders(tmp_path):
    path = tmp_path / "runs" / "x" / "c.npz"
    gn.save(gn.Model(small_graph(), seed=1), path)
    gn.save(gn.Model(small_graph(), seed=2), path)
    assert gn.load(path).seed == 2
    assert os.listdir(path.parent) == ["c.npz"]


# --- damaged and hostile files -----------------------------------------------------

def entries(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def rewrite(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def saved(tmp_path, **kw):
    path = tmp_path / "c.npz"
    gn.save(gn.Model(small_graph(), seed=0), path, **kw)
    return path


def meta_of(arrays):
    return json.loads(arrays["meta"].tobytes())


def with_meta(arrays, **changes):
    meta = meta_of(arrays)
    meta.update(changes)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return arrays


def refused(path, *words):
    with pytest.raises(gn.CheckpointError) as info:
        gn.load_checkpoint(path)
    msg = str(info.value)
    assert str(path) in msg
    for w in words:
        assert w in msg, msg
    return msg


def test_missing_file(tmp_path):
    refused(tmp_path / "nope.npz", "does not exist")


def test_a_folder_is_not_a_checkpoint(tmp_path):
    refused(tmp_path, "folder")


def test_not_a_zip_file(tmp_path):
    path = tmp_path / "c.npz"
    path.write_text("hello")
    refused(path, "not a readable .npz")


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file(tmp_path, fraction):
    path = saved(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[:int(len(raw) * fraction)])
    refused(path)


def test_flipped_byte_in_the_data_is_caught(tmp_path):
    path = saved(tmp_path)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"fc1.weight")    # inside the graph JSON entry
    raw[at] ^= 0x20
    path.write_bytes(bytes(raw))
    refused(path, "corrupted")


def test_unknown_format_version(tmp_path):
    path = saved(tmp_path)
    rewrite(path, with_meta(entries(path), format="graphnet-checkpoint/9"))
    refused(path, "unknown checkpoint format", "graphnet-checkpoint/9")


def test_missing_param(tmp_path):
    path = saved(tmp_path)
    arrays = entries(path)
    names = meta_of(arrays)["params"]
    rewrite(path, with_meta(arrays, params=names[:-1]))
    refused(path, "params missing", names[-1])


def test_extra_param(tmp_path):
    path = saved(tmp_path)
    arrays = entries(path)
    names = meta_of(arrays)["params"]
    arrays[f"param_{len(names)}"] = np.zeros(3, dtype=np.float32)
    rewrite(path, with_meta(arrays, params=names + ["fc9.weight"]))
    refused(path, "fc9.weight", "not in model")


def test_misshapen_param(tmp_path):
    path = saved(tmp_path)
    arrays = entries(path)
    arrays["param_0"] = np.zeros((4, 3), dtype=np.float32)
    rewrite(path, arrays)
    refused(path, "fc1.weight", "(4, 3)", "(3, 4)")


def test_param_of_another_dtype(tmp_path):
    path = saved(tmp_path)
    arrays = entries(path)
    arrays["param_0"] = arrays["param_0"].astype(np.float64)
    rewrite(path, arrays)
    refused(path, "fc1.weight", "float64")


def test_unexpected_entry(tmp_path):
    path = saved(tmp_path)
    arrays = entries(path)
    arrays["surprise"] = np.zeros(2)
    rewrite(path, arrays)
    refused(path, "unexpected entries", "surprise")


@pytest.mark.parametrize("change,words", [
    ({"params": "fc1.weight"}, ["'params'"]),
    ({"dtype": "float16"}, ["float16"]),
    ({"seed": "zero"}, ["seed"]),
    ({"rng": {"bit_generator": "PCG64", "state": "broken"}}, ["RNG state"]),
])
def test_wrong_types_in_the_metadata(tmp_path, change, words):
    path = saved(tmp_path)
    rewrite(path, with_meta(entries(path), **change))
    refused(path, *words)


def test_metadata_that_is_not_json(tmp_path):
    path = saved(tmp_path)
    arrays = entries(path)
    arrays["meta"] = np.frombuffer(b"{not json", dtype=np.uint8)
    rewrite(path, arrays)
    refused(path, "'meta'", "not valid JSON")


def test_graph_that_no_longer_validates(tmp_path):
    path = saved(tmp_path)
    arrays = entries(path)
    text = arrays["graph"].tobytes().decode().replace('"tanh"', '"tanhh"')
    arrays["graph"] = np.frombuffer(text.encode(), dtype=np.uint8)
    rewrite(path, arrays)
    refused(path, "tanhh", "did you mean 'tanh'")


def test_optimizer_nobody_provides(tmp_path):
    path = saved(tmp_path, optimizer=gn.optimizer("sgd", lr=0.1))
    arrays = entries(path)
    opt = json.loads(arrays["optimizer"].tobytes())
    opt["name"] = "sgdd"
    arrays["optimizer"] = np.frombuffer(json.dumps(opt).encode(), dtype=np.uint8)
    rewrite(path, arrays)
    refused(path, "'sgdd'", "no installed plugin provides it")


def test_optimizer_state_for_a_param_the_model_lacks(tmp_path, heavy):
    model = gn.Model(small_graph())
    opt = gn.optimizer(heavy)
    train(model, opt, 1, data())
    path = tmp_path / "c.npz"
    gn.save(model, path, optimizer=opt)
    arrays = entries(path)
    state = json.loads(arrays["optimizer"].tobytes())
    state["state"]["ghost.weight"] = state["state"].pop("fc1.weight")
    arrays["optimizer"] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
    rewrite(path, arrays)
    refused(path, "ghost.weight")


def test_compressed_checkpoint_is_refused(tmp_path):
    path = saved(tmp_path)
    arrays = entries(path)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    refused(path, "compressed")


class Payload:
    """Unpickling this runs os.mkdir: proof of whether anything in a file ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_an_object_array_is_refused_and_nothing_in_it_runs(tmp_path):
    path = saved(tmp_path)
    marker = str(tmp_path / "payload-ran")
    evil = np.empty(1, dtype=object)
    evil[0] = Payload(marker)
    for name in ("param_0", "meta", "graph", "evil"):   # in place of each kind of entry
        arrays = entries(saved(tmp_path))
        arrays[name] = evil
        with open(path, "wb") as f:
            np.savez(f, allow_pickle=True, **arrays)
        msg = refused(path, "Python objects", "never loads")
        assert "evil" in msg or name in msg
        assert not os.path.exists(marker)
    # the payload is live: numpy with pickles allowed would have run it
    with np.load(path, allow_pickle=True) as f:
        f["evil"]
    assert os.path.isdir(marker)


# --- a training run killed at random moments resumes bit-identically -----------------

KILL_SCRIPT = r'''
import sys
sys.path.insert(0, sys.argv[2])
import numpy as np
import graphnet as gn
sys.path.insert(0, sys.argv[3])
from test_checkpoint import kill_setup
model, data, kwargs = kill_setup()
model.fit(data, checkpoint=sys.argv[1], **kwargs)
'''


def kill_setup():
    """The run the kill test interrupts: tiny, with dropout and adam, many short epochs
    (fit saves a checkpoint after each one)."""
    model = gn.Model(small_graph(), seed=0)
    feeds = data(n=48, seed=3)
    kwargs = dict(optimizer={"name": "adam", "lr": 0.01}, epochs=60, batch_size=16,
                  seed=4, progress=False)
    return model, feeds, kwargs


def test_a_run_killed_at_random_moments_resumes_bit_identically(tmp_path):
    import random
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    straight, feeds, kwargs = kill_setup()
    straight.fit(feeds, **kwargs)

    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    root, tests = Path(__file__).resolve().parents[1], Path(__file__).resolve().parent
    rng = random.Random(0)
    runs = []
    for i in range(4):        # started together, so that their start-up overlaps
        path = tmp_path / f"run{i}" / "c.npz"
        path.parent.mkdir()
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(root), str(tests)],
                                stderr=subprocess.PIPE)
        runs.append({"proc": proc, "path": path, "delay": rng.uniform(0.0, 0.6), "kill_at": None})
    deadline = time.monotonic() + 120
    while any(r["proc"].poll() is None for r in runs):
        assert time.monotonic() < deadline, "the training subprocesses did not finish"
        for r in runs:
            if r["proc"].poll() is not None:
                continue
            if r["kill_at"] is None and r["path"].exists():
                r["kill_at"] = time.monotonic() + r["delay"]
            if r["kill_at"] is not None and time.monotonic() >= r["kill_at"]:
                r["proc"].send_signal(signal.SIGKILL)
        time.sleep(0.002)
    epochs = []
    for r in runs:
        rc = r["proc"].wait()
        assert rc in (0, -signal.SIGKILL), r["proc"].stderr.read().decode()
        r["proc"].stderr.close()
        ck = gn.load_checkpoint(r["path"])          # whatever moment it died at, it loads
        epochs.append(ck.train_state["epoch"])
        resumed, _, _ = kill_setup()
        resumed.fit(feeds, resume=r["path"], **kwargs)
        for key, value in straight.params.items():
            assert resumed.params[key].tobytes() == value.tobytes(), (key, epochs[-1])
    assert min(epochs) < kwargs["epochs"], f"no run was killed mid-training: {epochs}"
