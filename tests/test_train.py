"""fit and evaluate: equal to hand-written loops, reproducible, learning, guarded, resumable."""

import copy
import json
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphnet as gn
import graphnet.train as train
from graphnet.datasets import load_digits


def regression_graph(dropout=0.0, reduction="mean"):
    g = gn.Graph("reg")
    x = g.input("x", shape=(3,))
    t = g.input("y", shape=(2,))
    h = g.add("tanh", g.add("dense", x, units=5, name="fc1"), name="act")
    if dropout:
        h = g.add("dropout", h, rate=dropout, name="drop")
    y = g.add("dense", h, units=2, name="out")
    g.add("mse", y, t, name="loss", reduction=reduction)
    g.output(y)
    return g


def regression_data(n=10, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return {"x": x, "y": np.tanh(x @ rng.normal(size=(3, 2)))}


def model64(seed=0, **kw):
    return gn.Model(regression_graph(**kw), seed=seed, dtype="float64")


def assert_params_close(a, b, tol):
    assert set(a.params) == set(b.params)
    for k in a.params:
        np.testing.assert_allclose(a.params[k], b.params[k], rtol=0, atol=tol, err_msg=k)


def assert_params_equal(a, b):
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)


# --- fit equals the loops it stands for ------------------------------------------
def test_full_batch_fit_equals_manual_forward_backward_step():
    data = regression_data(12)
    fitted, manual = model64(), model64()
    init = {k: v.copy() for k, v in fitted.params.items()}
    history = fitted.fit(data, optimizer=gn.optimizer("momentum", lr=0.3), epochs=6,
                         batch_size=12, shuffle=True, progress=False)
    opt = gn.optimizer("momentum", lr=0.3)
    for _ in range(6):
        manual.forward(data, training=True)
        opt.step(manual.params, manual.backward())
    assert_params_close(fitted, manual, 1e-10)
    assert not np.allclose(init["fc1.weight"], fitted.params["fc1.weight"])
    assert len(history) == 6


def test_batch_size_one_without_shuffle_equals_a_per_sample_loop():
    data = regression_data(7)
    fitted, manual = model64(), model64()
    fitted.fit(data, optimizer=gn.optimizer("sgd", lr=0.1), epochs=3, batch_size=1,
               shuffle=False, progress=False)
    opt = gn.optimizer("sgd", lr=0.1)
    for _ in range(3):
        for i in range(7):
            manual.forward({"x": data["x"][i:i + 1], "y": data["y"][i:i + 1]}, training=True)
            opt.step(manual.params, manual.backward())
    assert_params_close(fitted, manual, 1e-10)
    assert opt.step_count == 21


def test_the_last_partial_batch_is_kept():
    data = regression_data(10)
    fitted, manual = model64(), model64()
    opt = gn.optimizer("adam", lr=0.01)
    fitted.fit(data, optimizer=opt, epochs=2, batch_size=4, shuffle=False, progress=False)
    assert opt.step_count == 6                      # 4 + 4 + 2, twice
    opt2 = gn.optimizer("adam", lr=0.01)
    for _ in range(2):
        for lo in (0, 4, 8):
            manual.forward({k: v[lo:lo + 4] for k, v in data.items()}, training=True)
            opt2.step(manual.params, manual.backward())
    assert_params_equal(fitted, manual)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 9), batch_size=st.integers(1, 12), epochs=st.integers(1, 3))
def test_fit_without_shuffle_is_the_slicing_loop_for_any_sizes(n, batch_size, epochs):
    data = regression_data(n)
    fitted, manual = model64(), model64()
    opt = gn.optimizer("rmsprop", lr=0.01)
    fitted.fit(data, optimizer=opt, epochs=epochs, batch_size=batch_size, shuffle=False,
               progress=False)
    opt2 = gn.optimizer("rmsprop", lr=0.01)
    for _ in range(epochs):
        for lo in range(0, n, batch_size):
            manual.forward({k: v[lo:lo + batch_size] for k, v in data.items()}, training=True)
            opt2.step(manual.params, manual.backward())
    assert opt.step_count == opt2.step_count == epochs * -(-n // batch_size)
    assert_params_equal(fitted, manual)


def test_a_batch_size_above_the_data_size_is_full_batch():
    data = regression_data(5)
    opt = gn.optimizer("sgd", lr=0.1)
    model64().fit(data, optimizer=opt, epochs=3, batch_size=1000, progress=False)
    assert opt.step_count == 3


# --- reproducibility -----------------------------------------------------------
def fit_once(model_seed=0, seed=None, dropout=0.3):
    model = model64(seed=model_seed, dropout=dropout)
    model.fit(regression_data(20), optimizer=gn.optimizer("adam", lr=0.01), epochs=4,
              batch_size=3, seed=seed, progress=False)
    return model


def test_same_seed_gives_bit_identical_params():
    assert_params_equal(fit_once(seed=7), fit_once(seed=7))
    assert_params_equal(fit_once(seed=None), fit_once(seed=None))


def test_different_seeds_give_different_params():
    a, b = fit_once(seed=7, dropout=0.0), fit_once(seed=8, dropout=0.0)
    assert not np.array_equal(a.params["fc1.weight"], b.params["fc1.weight"])
    c, d = fit_once(model_seed=1), fit_once(model_seed=2)
    assert not np.array_equal(c.params["out.weight"], d.params["out.weight"])


def test_the_seed_covers_the_shuffle_only():
    # same model seed and data, different fit seeds: the same initial params, only the
    # order of the samples differs, so full-batch training (order-free) agrees
    a, b = model64(), model64()
    data = regression_data(9)
    for m, s in ((a, 1), (b, 2)):
        m.fit(data, optimizer=gn.optimizer("sgd", lr=0.1), epochs=3, batch_size=9, seed=s,
              progress=False)
    assert_params_close(a, b, 1e-12)


# --- learning --------------------------------------------------------------------
def test_an_mlp_learns_xor():
    g = gn.Graph("xor")
    x, t = g.input("x", shape=(2,)), g.input("y", shape=(1,))
    y = g.add("dense", g.add("tanh", g.add("dense", x, units=8)), units=1, name="out")
    g.add("binary_cross_entropy", y, t, name="loss")
    g.output(y)
    model = gn.Model(g, seed=0)
    data = {"x": np.array([[0, 0], [0, 1], [1, 0], [1, 1]]), "y": np.array([[0], [1], [1], [0]])}
    history = model.fit(data, optimizer=gn.optimizer("adam", lr=0.05), epochs=300,
                        batch_size=4, progress=False)
    assert history.last["accuracy"] == 1.0
    assert model.evaluate(data)["accuracy"] == 1.0
    pred = model.predict({"x": data["x"]})["out"] > 0
    np.testing.assert_array_equal(pred, data["y"] == 1)


def digits_graph(hidden=128):
    g = gn.Graph("digits")
    x = g.input("x", shape=(64,))
    label = g.input("y", shape=(), dtype="int64")
    h = g.add("relu", g.add("dense", x, units=hidden, name="fc1"))
    logits = g.add("dense", h, units=10, name="logits")
    g.add("softmax_cross_entropy", logits, label, name="loss")
    g.output(logits)
    return g


def digits_model(seed=0):
    return gn.Model(digits_graph(), seed=seed)


def test_a_64_128_10_relu_mlp_reaches_96_percent_on_held_out_digits():
    data = load_digits()
    model = digits_model()
    history = model.fit(data["train"], optimizer=gn.optimizer("adam", lr=3e-3), epochs=10,
                        batch_size=32, validation=data["test"], progress=False)
    result = model.evaluate(data["test"])
    assert result["accuracy"] >= 0.96
    assert history.last["val_accuracy"] == result["accuracy"]
    logits = model.predict({"x": data["test"]["x"]}, batch_size=100)["logits"]
    assert np.mean(logits.argmax(axis=1) == data["test"]["y"]) == result["accuracy"]
    assert history["loss"][-1] < history["loss"][0]


# --- metrics and evaluate ----------------------------------------------------------
def test_evaluate_in_batches_equals_one_batch():
    data = regression_data(23)
    model = model64()
    whole = model.evaluate(data, batch_size=1000)
    batched = model.evaluate(data, batch_size=4)
    assert batched["loss"] == pytest.approx(whole["loss"], rel=1e-12)
    assert whole["loss"] == pytest.approx(float(model.forward(data)["loss"]), rel=1e-12)
    assert set(whole) == {"loss"}            # no accuracy for a regression loss


def test_a_sum_reduced_loss_is_summed_over_the_data():
    data = regression_data(11)
    model = model64(reduction="sum")
    total = float(model.forward(data)["loss"])
    assert model.evaluate(data, batch_size=3)["loss"] == pytest.approx(total, rel=1e-12)


def test_accuracy_of_softmax_cross_entropy_is_argmax_against_labels():
    model = digits_model()
    data = load_digits()["test"]
    logits = model.predict({"x": data["x"]})["logits"]
    expected = np.mean(logits.argmax(axis=1) == data["y"])
    assert model.evaluate(data, batch_size=50)["accuracy"] == pytest.approx(expected)


def logits_model(classes=4):
    """The softmax cross-entropy of fed logits: the accuracy of exactly the values fed."""
    g = gn.Graph("fed")
    x, y = g.input("x", shape=(classes,)), g.input("y", shape=(), dtype="int64")
    g.add("softmax_cross_entropy", x, y, name="loss")
    return gn.Model(g, seed=0)


@pytest.mark.parametrize("case", ["distinct", "ties", "all_equal", "nan", "inf", "huge",
                                  "nan_and_tie"])
def test_the_accuracy_read_off_the_loss_is_argmaxs_even_on_ties_and_nan(case):
    """fit takes softmax cross-entropy's accuracy from the loss's own values, falling back
    to argmax where those cannot tell (a tie: argmax takes the first maximum; a NaN or an
    infinity); either way the value is argmax's, to the bit."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = rng.integers(0, 4, size=40)
    y[:10] = x[:10].argmax(axis=1)             # some right, whatever the case
    if case == "ties":
        x[3:8, 2] = x[3:8, 0] = 5.0            # rows tied between classes 0 and 2
        y[3:8] = 2                             # argmax says 0: wrong
    elif case == "all_equal":
        x[:] = 0.0                             # a dead network: argmax says class 0
    elif case == "nan":
        x[6, 1] = np.nan
    elif case == "inf":
        x[6, 1] = np.inf
    elif case == "huge":
        x[::2] *= 1e38                         # shifted logits whose sum overflows
    elif case == "nan_and_tie":                # a row without a maximum, one with two
        x[6, 1], x[3, 0], x[3, 2], y[3] = np.nan, 9.0, 9.0, 2
    model = logits_model()
    measure = train._Measure(model, "auto")
    with np.errstate(all="ignore"):
        logs = measure.batch(model.forward({"x": x, "y": y}, outputs=measure.targets))
        read, ctx = measure.own["loss"]
        own = read(ctx)
    assert logs["accuracy"] == np.count_nonzero(x.argmax(axis=1) == y) / 40
    assert (own is None) == (case != "distinct")   # the fast path is the one taken
    if own is not None:
        assert own == logs["accuracy"]


def test_a_dead_network_scores_as_argmax_does():
    """All-zero params give every class the same logit: argmax answers class 0, so the
    accuracy is the share of label 0 (not 1.0, which a tie counted as a hit would give)."""
    model = digits_model()
    model.params.flat[:] = 0.0
    data = {k: v[:200] for k, v in load_digits()["test"].items()}
    assert model.evaluate(data, batch_size=64)["accuracy"] == np.mean(data["y"] == 0)
    history = model.fit(data, optimizer="sgd", epochs=1, batch_size=200, progress=False)
    assert history.last["accuracy"] == np.mean(data["y"] == 0)   # before the one update


def test_a_shuffled_fit_is_the_loop_over_each_epochs_permutation():
    """Each epoch fit takes the data in the order of one permutation from default_rng(seed)
    (into arrays it keeps from epoch to epoch): the same params as that loop, bit for bit,
    for any memory layout of the data."""
    data = {k: v[:150] for k, v in load_digits()["train"].items()}
    data["x"] = np.asfortranarray(data["x"].astype(np.float32))
    fitted, manual = digits_model(), digits_model()
    opt = gn.optimizer("adam", lr=0.01)
    fitted.fit(data, optimizer=opt, epochs=3, batch_size=32, seed=5, progress=False)
    opt2, rng = gn.optimizer("adam", lr=0.01), np.random.default_rng(5)
    for _ in range(3):
        order = rng.permutation(150)
        arrays = {k: v[order] for k, v in data.items()}
        for lo in range(0, 150, 32):
            manual.forward({k: v[lo:lo + 32] for k, v in arrays.items()}, training=True)
            opt2.step(manual.params, manual.backward())
    assert_params_equal(fitted, manual)


def test_custom_metrics_and_no_metrics():
    model = digits_model()
    data = {k: v[:40] for k, v in load_digits()["test"].items()}
    mean_logit = lambda pred, target: float(pred.mean())  # noqa: E731
    result = model.evaluate(data, metrics={"mean_logit": mean_logit})
    assert set(result) == {"loss", "mean_logit"}
    assert result["mean_logit"] == pytest.approx(float(model.predict(data)["logits"].mean()),
                                                 rel=1e-5)
    assert set(model.evaluate(data, metrics=None)) == {"loss"}
    with pytest.raises(gn.GraphnetError, match=r"unknown metric 'acuracy' \(did you mean "
                                               r"'accuracy'"):
        model.evaluate(data, metrics=["acuracy"])
    with pytest.raises(gn.GraphnetError, match="needs a classification loss"):
        model64().evaluate(regression_data(), metrics=["accuracy"])


def test_several_losses_are_reported_each_and_summed():
    g = gn.Graph("two")
    x, t = g.input("x", shape=(3,)), g.input("y", shape=(2,))
    y = g.add("dense", x, units=2, name="out")
    g.add("mse", y, t, name="l1")
    g.add("mse", y, t, name="l2", reduction="sum")
    g.output(y)
    model = gn.Model(g, seed=0, dtype="float64")
    data = regression_data(6)
    r = model.evaluate(data)
    outs = model.forward(data)
    assert r["loss/l1"] == pytest.approx(float(outs["l1"]))
    assert r["loss/l2"] == pytest.approx(float(outs["l2"]))
    assert r["loss"] == pytest.approx(float(outs["l1"] + outs["l2"]))


# --- the NaN guard -------------------------------------------------------------------
def diverging_model():
    g = gn.Graph("diverge")
    x, t = g.input("x", shape=(4,)), g.input("y", shape=(1,))
    h = g.add("relu", g.add("dense", x, units=16, name="fc1"), name="act")
    y = g.add("dense", h, units=1, name="out")
    g.add("mse", y, t, name="loss")
    g.output(y)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4))
    return gn.Model(g, seed=0), {"x": x, "y": x @ rng.normal(size=(4, 1))}


def test_the_nan_guard_stops_a_diverging_run_and_names_the_node():
    model, data = diverging_model()
    with np.errstate(all="ignore"), pytest.raises(gn.TrainingError) as err:
        model.fit(data, optimizer=gn.optimizer("sgd", lr=1e6), epochs=5, batch_size=16,
                  progress=False)
    message = str(err.value)
    assert "epoch 1, step 3" in message
    assert "node 'out' (dense) output holds 16 NaN of 16 values" in message
    assert "lr=1e+06" in message
    # stopped before the bad update: the params are still finite
    assert all(np.isfinite(p).all() for p in model.params.values())


def test_without_the_guard_a_diverging_run_goes_on():
    model, data = diverging_model()
    with np.errstate(all="ignore"):
        history = model.fit(data, optimizer=gn.optimizer("sgd", lr=1e6), epochs=2,
                            batch_size=16, progress=False, nan_guard=False)
    assert np.isnan(history.last["loss"])


def test_the_guard_names_an_input_that_holds_nan():
    model, data = diverging_model()
    data["x"][5, 2] = np.nan
    with pytest.raises(gn.TrainingError, match="input 'x' holds 1 NaN of 64 values"):
        model.fit(data, optimizer="sgd", epochs=1, batch_size=16, shuffle=False,
                  progress=False)


def test_find_nonfinite_names_a_gradient():
    model, data = diverging_model()
    model.forward(data, training=True)
    grads = model.backward()
    assert train.find_nonfinite(model, grads) is None
    grads["fc1.bias"][3] = np.inf
    assert train.find_nonfinite(model, grads) == (
        "the gradient of param 'fc1.bias' of node 'fc1' (dense) holds 1 infinite of 16 values")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_gradient_check_finds_any_nonfinite_value_and_passes_huge_finite_ones(dtype):
    """The guard's one dot product per batch: a NaN or an infinity anywhere (the SIMD tail
    included) fails it; finite values whose squares overflow still pass, exactly."""
    model = gn.Model(digits_graph(hidden=7), seed=0, dtype=dtype)
    model.forward({"x": np.ones((3, 64)), "y": np.arange(3)}, training=True)
    grads = model.backward()
    size = grads.flat.size
    assert train._flat_finite(grads.flat)
    for where in (0, 1, size // 2, size - 2, size - 1):
        for bad in (np.nan, np.inf, -np.inf):
            saved = grads.flat[where]
            grads.flat[where] = bad
            assert not train._flat_finite(grads.flat), (where, bad)
            grads.flat[where] = saved
    huge = np.finfo(dtype).max / 4
    grads.flat[::3] = huge                    # each square, and their sum, overflows
    grads.flat[1::3] = -huge
    with np.errstate(over="ignore"):
        assert train._flat_finite(grads.flat)
    # fit checks the flat array alone: its gradients come from backward(out=), which
    # refuses a result that no longer is one flat array
    grads["logits.bias"] = grads["logits.bias"].copy()
    with pytest.raises(gn.GraphnetError, match="every array left in place"):
        model.backward(out=grads)


def test_the_guard_stops_a_finite_loss_whose_gradient_is_not():
    model = gn.Model(digits_graph(hidden=7), seed=0)
    data = {"x": np.ones((8, 64), np.float32), "y": np.arange(8) % 10}
    original = model.backward

    def backward(**kw):   # a gradient gone infinite while the loss stays finite
        grads = original(**kw)
        grads["fc1.weight"][3, 2] = np.inf
        return grads

    model.backward = backward
    before = model.params.flat.copy()
    with pytest.raises(gn.TrainingError, match="gradient of param 'fc1.weight'"):
        model.fit(data, optimizer="sgd", epochs=1, batch_size=8, progress=False)
    np.testing.assert_array_equal(model.params.flat, before)


# --- History ---------------------------------------------------------------------------
def test_history_rows_and_json_round_trip():
    data = load_digits()
    model = digits_model()
    history = model.fit({k: v[:200] for k, v in data["train"].items()}, optimizer="adam",
                        epochs=2, batch_size=64, validation=data["test"], progress=False)
    assert history.keys() == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr",
                              "seconds"]
    assert history["epoch"] == [1, 2] and history["lr"] == [0.001, 0.001]
    assert all(s > 0 for s in history["seconds"])
    again = gn.History.from_dict(json.loads(json.dumps(history.to_dict())))
    assert again.rows == history.rows and again.stop_reason is None
    with pytest.raises(KeyError, match="'val_acc' is not in this history"):
        history["val_acc"]


def test_history_plot_writes_a_picture(tmp_path):
    pytest.importorskip("matplotlib")
    history = gn.History([{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.2},
                          {"epoch": 2, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.9}])
    fig = history.plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) == 2


def test_history_plot_without_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(gn.GraphnetError, match="pip install matplotlib"):
        gn.History([{"epoch": 1, "loss": 1.0}]).plot()


# --- callbacks -----------------------------------------------------------------------
class Recorder(gn.Callback):
    def __init__(self):
        self.calls, self.params = [], []

    def on_train_begin(self, run):
        self.calls.append("train_begin")

    def on_epoch_begin(self, run):
        self.calls.append(f"epoch_begin {run.epoch}")

    def on_batch_end(self, run, logs):
        self.calls.append(f"batch_end {run.epoch}.{run.batch}")

    def on_epoch_end(self, run, logs):
        self.calls.append(f"epoch_end {run.epoch}")
        self.params.append({k: v.copy() for k, v in run.model.params.items()})
        logs["mine"] = 1.0

    def on_train_end(self, run):
        self.calls.append("train_end")


def test_callbacks_are_called_in_order_and_may_add_to_the_history():
    rec = Recorder()
    history = model64().fit(regression_data(5), optimizer="sgd", epochs=2, batch_size=3,
                            callbacks=[rec], progress=False)
    assert rec.calls == ["train_begin", "epoch_begin 1", "batch_end 1.1", "batch_end 1.2",
                         "epoch_end 1", "epoch_begin 2", "batch_end 2.1", "batch_end 2.2",
                         "epoch_end 2", "train_end"]
    assert history["mine"] == [1.0, 1.0]


def test_a_callback_can_stop_training_mid_epoch():
    class StopAtThirdBatch(gn.Callback):
        def on_batch_end(self, run, logs):
            if run.batch == 3:
                run.stop_training("enough")

    opt = gn.optimizer("sgd", lr=0.1)
    history = model64().fit(regression_data(10), optimizer=opt, epochs=5, batch_size=2,
                            callbacks=StopAtThirdBatch(), progress=False)
    assert opt.step_count == 3 and len(history) == 1 and history.stop_reason == "enough"


# --- progress ------------------------------------------------------------------------------
def test_progress_bar_on_a_terminal_and_silence_otherwise(monkeypatch, capsys):
    model64().fit(regression_data(6), optimizer="sgd", epochs=2, batch_size=2, progress=True)
    assert capsys.readouterr().out == ""           # stdout is not a terminal here
    monkeypatch.setattr(train, "_isatty", lambda: True)
    model64().fit(regression_data(6), optimizer="sgd", epochs=2, batch_size=2, progress=True)
    out = capsys.readouterr().out
    assert "epoch 1/2" in out and "epoch 2/2" in out and "3/3" in out and "loss=" in out
    model64().fit(regression_data(6), optimizer="sgd", epochs=2, batch_size=2, progress=False)
    assert capsys.readouterr().out == ""


def test_in_a_jupyter_kernel_fit_draws_tqdms_notebook_aware_bar(monkeypatch, capsys):
    """Jupyter's stdout is no terminal; fit still draws a bar there, through tqdm.auto."""
    import tqdm.auto
    shell = types.SimpleNamespace(config={"IPKernelApp": {}})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    bars = []

    class Bar:
        def __init__(self, **kwargs):
            bars.append(kwargs)

        def update(self, n=1):
            bars[-1]["done"] = bars[-1].get("done", 0) + n

        set_postfix = close = refresh = lambda self, *a, **k: None

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    model64().fit(regression_data(6), optimizer="sgd", epochs=2, batch_size=2, progress=True)
    assert [b["desc"] for b in bars] == ["epoch 1/2", "epoch 2/2"]
    assert all(b["total"] == 3 and "file" not in b for b in bars)
    model64().fit(regression_data(6), optimizer="sgd", epochs=1, batch_size=2, progress=False)
    assert len(bars) == 2


def test_the_bar_counts_every_batch_but_is_updated_at_most_every_tenth_second(monkeypatch):
    """On a terminal fit advances the bar in steps of at least 0.1 s (here 0.04 s pass per
    batch), and the epoch's last step brings it to the total."""
    import tqdm.auto
    updates = []

    class Bar:
        def __init__(self, **kwargs):
            updates.append([])

        def update(self, n=1):
            updates[-1].append(n)

        set_postfix = close = lambda self, *a, **k: None

    clock = iter(range(10**6))
    monkeypatch.setattr(train, "_isatty", lambda: True)
    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    monkeypatch.setattr(train.time, "monotonic", lambda: next(clock) * 0.04)
    model64().fit(regression_data(20), optimizer="sgd", epochs=2, batch_size=2, progress=True)
    assert [sum(u) for u in updates] == [10, 10]
    assert all(3 <= len(u) <= 5 for u in updates), updates   # not one update per batch


def bce_data(n=45, seed=3):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(n, 64)), "y": (rng.random((n, 10)) > 0.5).astype(float)}


def bce_model():
    g = gn.Graph("bce")
    h = g.add("dense", g.input("x", shape=(64,)), units=10, name="out")
    g.add("binary_cross_entropy", h, g.input("y", shape=(10,)), name="loss")
    g.output(h)
    return gn.Model(g, seed=0)


@pytest.mark.parametrize("make", ["softmax", "binary"])
def test_the_epochs_accuracy_is_the_size_weighted_mean_of_the_batches_accuracy(make):
    """fit counts the hits once per epoch; the History is still, to the bit, the mean of
    each batch's logs (as on_batch_end sees them) weighted by the batch's size."""
    if make == "softmax":
        model, data = digits_model(), {k: v[:45] for k, v in load_digits()["train"].items()}
    else:
        model, data = bce_model(), bce_data()

    class Logs(gn.Callback):
        batches = []

        def on_batch_end(self, run, logs):
            self.batches.append(dict(logs))

    history = model.fit(data, epochs=2, batch_size=8, callbacks=[Logs()], progress=False)
    sizes = [8] * 5 + [5]
    for epoch, row in enumerate(history.rows):
        logs = Logs.batches[6 * epoch: 6 * epoch + 6]
        for key in ("loss", "accuracy"):
            total = 0.0
            for n, batch in zip(sizes, logs):
                total += batch[key] * n
            assert row[key] == total / 45, key
    assert 0 < history.last["accuracy"] < 1


def test_the_epochs_values_do_not_depend_on_how_often_the_bar_asks_for_them(monkeypatch):
    import tqdm.auto

    class Bar:
        def __init__(self, **kwargs):
            pass

        update = set_postfix = close = lambda self, *a, **k: None

    quiet = bce_model().fit(bce_data(), epochs=2, batch_size=4, progress=False)
    clock = iter(range(10**6))
    monkeypatch.setattr(train, "_isatty", lambda: True)
    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    monkeypatch.setattr(train.time, "monotonic", lambda: next(clock) * 0.2)  # every batch
    shown = bce_model().fit(bce_data(), epochs=2, batch_size=4, progress=True)
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert drop(shown.rows) == drop(quiet.rows)


def test_training_from_python_imports_no_optional_library(tmp_path):
    """Building, training (fit, with a progress bar asked for but no terminal, and the loop
    of the docs) and saving a model leave jsonschema, graphviz, tqdm, matplotlib, onnx and
    dask unimported; reading a model file then needs jsonschema, which the same check sees."""
    code = textwrap.dedent("""
        import sys, numpy as np, graphnet as gn
        g = gn.Graph("m"); x = g.input("x", shape=(4,)); y = g.input("y", shape=(), dtype="int64")
        h = g.add("relu", g.add("dense", x, units=8)); g.output(g.add("dense", h, units=3, name="o"))
        g.add("softmax_cross_entropy", "o", y, name="loss")
        m = gn.Model(g, seed=0)
        data = {"x": np.ones((16, 4)), "y": np.arange(16) % 3}
        m.fit(data, epochs=2, batch_size=4, progress=True, validation=data)
        opt = gn.optimizer("adam")
        m.forward(data, training=True); opt.step(m.params, m.backward())
        gn.save(m, sys.argv[1], optimizer=opt)
        heavy = ("jsonschema", "graphviz", "tqdm", "matplotlib", "onnx", "onnxruntime", "dask")
        loaded = lambda: sorted({k.split(".")[0] for k in sys.modules} & set(heavy))
        print(loaded())
        gn.Graph.from_json(gn.serialize.graph_to_json(g))
        print(loaded())
    """)
    out = subprocess.run([sys.executable, "-c", code, "m.npz"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[]", "['jsonschema']"]


# --- checkpoints (against the graphnet.checkpoint contract, with an in-memory store) ------
class Store:
    """Stands in for gn.save / gn.load_checkpoint: deep copies, JSON for the plain parts."""

    def __init__(self):
        self.files = {}

    def save(self, model, path, optimizer=None, history=None, train_state=None):
        self.files[str(path)] = {
            "params": {k: v.copy() for k, v in model.params.items()},
            "buffers": {k: v.copy() for k, v in model.buffers.items()},
            "optimizer": copy.deepcopy(optimizer.state_dict()) if optimizer else None,
            "history": json.loads(json.dumps(history)),
            "train_state": json.loads(json.dumps(train_state))}

    def load_checkpoint(self, path):
        f = self.files[str(path)]
        return types.SimpleNamespace(model=types.SimpleNamespace(params=f["params"],
                                                                 buffers=f["buffers"]),
                                     optimizer=copy.deepcopy(f["optimizer"]),
                                     history=f["history"] and gn.History.from_dict(f["history"]),
                                     train_state=f["train_state"])


@pytest.fixture
def store(monkeypatch):
    s = Store()
    monkeypatch.setattr(train, "_save", s.save)
    monkeypatch.setattr(train, "_load_checkpoint", s.load_checkpoint)
    return s


class Interrupt(gn.Callback):
    def __init__(self, at_epoch):
        self.at_epoch = at_epoch

    def on_epoch_begin(self, run):
        if run.epoch == self.at_epoch:
            raise KeyboardInterrupt


def resumable_fit(model, **kw):
    return model.fit(regression_data(20), optimizer=kw.pop("optimizer", None)
                     or gn.optimizer("adam", lr=0.01), epochs=5, batch_size=3,
                     progress=False, **kw)


def test_resume_after_an_interruption_is_bit_identical(store):
    whole = model64(dropout=0.3)
    full = resumable_fit(whole, checkpoint="whole.npz")
    broken = model64(dropout=0.3)
    with pytest.raises(KeyboardInterrupt):
        resumable_fit(broken, checkpoint="run.npz", callbacks=[Interrupt(at_epoch=3)])
    assert store.files["run.npz"]["train_state"]["epoch"] == 2
    resumed = model64(seed=99, dropout=0.3)      # other initial params and dropout stream
    history = resumed.fit(regression_data(20), epochs=5, batch_size=3, progress=False,
                          resume="run.npz", checkpoint="run.npz")
    assert_params_equal(resumed, whole)
    assert history["loss"] == full["loss"] and history["epoch"] == [1, 2, 3, 4, 5]
    assert store.files["run.npz"]["train_state"]["epoch"] == 5


def test_resuming_a_finished_checkpoint_trains_nothing_and_says_so(store, capsys, caplog):
    model = model64()
    resumable_fit(model, checkpoint="done.npz")
    again = model64(seed=5)
    opt = gn.optimizer("adam", lr=0.01)
    with caplog.at_level("INFO", logger="graphnet.train"):
        history = resumable_fit(again, resume="done.npz", optimizer=opt)
    assert "has finished training" in caplog.text
    assert capsys.readouterr().out == ""   # library code reports through logging, not print
    assert len(history) == 5
    assert opt.step_count == 35            # 5 epochs of 7 batches, restored, none added
    assert_params_equal(again, model)      # the checkpoint's params, restored


def test_resuming_an_early_stopped_checkpoint_trains_nothing(store, caplog):
    data = regression_data(20)
    stop = gn.EarlyStopping(monitor="val_loss", patience=0)
    model64().fit(data, optimizer="adam", epochs=30, validation={"x": data["x"], "y": -data["y"]},
                  callbacks=[stop], checkpoint="stopped.npz", progress=False)
    state = store.files["stopped.npz"]["train_state"]
    assert state["finished"].startswith("early stopping")
    with caplog.at_level("INFO", logger="graphnet.train"):
        model64().fit(data, epochs=30, resume="stopped.npz", progress=False)
    assert "early stopping" in caplog.text


def test_resume_refuses_a_checkpoint_without_training_state(store):
    model = model64()
    store.save(model, "bare.npz")
    with pytest.raises(gn.CheckpointError, match="holds no training state"):
        model.fit(regression_data(), epochs=2, resume="bare.npz", progress=False)


# --- bad arguments ----------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, message", [
    ({"batch_size": 0}, gn.GraphnetError, "batch_size must be a whole number >= 1"),
    ({"epochs": -1}, gn.GraphnetError, "epochs must be a whole number >= 0"),
    ({"seed": "x"}, gn.GraphnetError, "seed must be a whole number"),
    ({"optimizer": 3}, gn.GraphnetError, "optimizer must be a graphnet.Optimizer"),
    ({"optimizer": "adamm"}, gn.UnknownOpError, "did you mean 'adam'"),
    ({"callbacks": [print]}, gn.GraphnetError, "callbacks must be graphnet.Callback"),
])
def test_bad_fit_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        model64().fit(regression_data(), progress=False, **kwargs)


def test_bad_data():
    model = model64()
    with pytest.raises(gn.FeedError, match=r"'xs' is not an input.*did you mean 'x'"):
        model.fit({"xs": np.zeros((3, 3)), "y": np.zeros((3, 2))}, progress=False)
    with pytest.raises(gn.FeedError, match="same number of samples"):
        model.fit({"x": np.zeros((3, 3)), "y": np.zeros((4, 2))}, progress=False)
    with pytest.raises(gn.FeedError, match="non-empty dict"):
        model.fit([1, 2], progress=False)
    with pytest.raises(gn.FeedError, match="input 'y' is missing"):
        model.fit({"x": np.zeros((3, 3))}, progress=False)


def test_fit_takes_a_datasets_split_and_maps_x_and_y_by_role():
    """The inputs need not be named x and y: a split feeds them by role, as in the CLI."""
    g = gn.Graph("roles")
    logits = g.add("dense", g.input("pixels", shape=(64,)), units=10, name="logits")
    g.add("softmax_cross_entropy", logits, g.input("digit", shape=(), dtype="int64"),
          name="loss")
    g.output(logits)
    model = gn.Model(g, seed=0)
    data = gn.datasets.load("digits")
    history = model.fit(data["train"], validation=data["test"], epochs=2, batch_size=32,
                        optimizer={"name": "adam", "lr": 0.01}, progress=False)
    assert history["loss"][1] < history["loss"][0] and history.last["val_accuracy"] > 0.8
    assert model.evaluate(data["test"])["accuracy"] == history.last["val_accuracy"]
    with pytest.raises(gn.FeedError, match="'x' is not an input of model 'roles'"):
        model.fit({"x": data["train"]["x"], "z": data["train"]["y"]}, progress=False)


def classifier(units):
    g = gn.Graph("narrow")
    h = g.add("dense", g.input("x", shape=(2,)), units=units, name="logits")
    g.add("softmax_cross_entropy", h, g.input("label", shape=(), dtype="int64"), name="loss")
    g.output(h)
    return gn.Model(g, seed=0)


def test_too_few_logits_for_the_labels_is_refused_before_training_naming_the_node():
    model = classifier(2)
    before = {k: v.copy() for k, v in model.params.items()}
    calls = []

    class Count(gn.Callback):
        def on_train_begin(self, run):
            calls.append(run)

    data = {"x": np.zeros((6, 2)), "label": np.array([0, 1, 2, 0, 1, 2])}
    with pytest.raises(gn.DataError, match=r"input 'label' range from 0 to 2, but node "
                       r"'logits'.* has 2 units .*widen 'logits' to units=3"):
        model.fit(data, callbacks=[Count()], progress=False)
    assert not calls
    assert all(np.array_equal(model.params[k], before[k]) for k in before)
    with pytest.raises(gn.DataError, match=r"validation: the labels .* from -1 to 1"):
        model.fit({"x": np.zeros((2, 2)), "label": np.array([0, 1])},
                  validation={"x": np.zeros((2, 2)), "label": np.array([-1, 1])},
                  progress=False)
    classifier(3).fit(data, progress=False)   # wide enough: trains


def test_a_model_without_a_loss_cannot_be_trained():
    g = gn.Graph("noloss")
    g.output(g.add("dense", g.input("x", shape=(2,)), units=1))
    with pytest.raises(gn.GraphnetError, match="has no loss node"):
        gn.Model(g).fit({"x": np.zeros((2, 2))}, progress=False)


def test_optimizer_given_by_name_or_dict():
    model = model64()
    model.fit(regression_data(), optimizer={"name": "momentum", "lr": 0.1, "beta": 0.5},
              epochs=1, progress=False)
    with pytest.raises(gn.GraphnetError, match="no hyperparameter 'bta'"):
        model.fit(regression_data(), optimizer={"name": "momentum", "bta": 0.5},
                  progress=False)


# --- checkpoints on disk, through gn.save and gn.load_checkpoint --------------------------
def test_resume_from_a_checkpoint_file_is_bit_identical(tmp_path):
    path = tmp_path / "run.npz"
    whole = gn.Model(regression_graph(dropout=0.3), seed=0)           # float32, dropout
    full = whole.fit(regression_data(20), optimizer=gn.optimizer("adam", lr=0.01), epochs=5,
                     batch_size=3, progress=False)
    broken = gn.Model(regression_graph(dropout=0.3), seed=0)
    with pytest.raises(KeyboardInterrupt):
        broken.fit(regression_data(20), optimizer=gn.optimizer("adam", lr=0.01), epochs=5,
                   batch_size=3, progress=False, checkpoint=path, callbacks=[Interrupt(4)])
    ckpt = gn.load_checkpoint(path)
    assert ckpt.train_state["epoch"] == 3 and ckpt.optimizer.step_count == 21
    assert isinstance(ckpt.history, gn.History) and ckpt.history["epoch"] == [1, 2, 3]
    resumed = ckpt.model                       # the checkpoint's own model, params restored
    history = resumed.fit(regression_data(20), epochs=5, batch_size=3, progress=False,
                          resume=path, checkpoint=path)
    assert_params_equal(resumed, whole)
    assert history["loss"] == full["loss"]
    fresh = gn.Model(regression_graph(dropout=0.3), seed=1)       # or a fresh one, any seed
    fresh.fit(regression_data(20), epochs=5, batch_size=3, progress=False, resume=path)
    assert_params_equal(fresh, whole)
    final = gn.load_checkpoint(path)
    assert final.train_state["finished"] == "done" and final.train_state["epoch"] == 5
    assert final.optimizer.step_count == 35
