import numpy as np
import pytest

import graphnet as gn
from graphnet import datasets as ds
from graphnet.errors import DataError

GENERATED = ["moons", "spirals", "xor", "sine"]


# --- registered datasets ------------------------------------------------------

def test_every_builtin_dataset_is_a_plugin():
    names = {e.name for e in gn.plugins.entries("dataset")}
    assert {"digits", "wine", *GENERATED} <= names
    for e in gn.plugins.entries("dataset"):
        if e.name in GENERATED:
            assert e.distribution == "graphnet"
            assert {"n", "noise", "seed", "test_fraction"} <= set(e.obj.options)


def test_digits_split_is_fixed_stratified_and_scaled():
    data = ds.load("digits")
    tr, te = data["train"], data["test"]
    assert tr["x"].shape == (1438, 64) and te["x"].shape == (359, 64)
    assert tr["x"].dtype == np.float32 and tr["y"].dtype == np.int64
    assert 0 <= tr["x"].min() and tr["x"].max() <= 1
    # stratified: each class has about a fifth of its samples in the test part
    counts_tr, counts_te = np.bincount(tr["y"]), np.bincount(te["y"])
    frac = counts_te / (counts_tr + counts_te)
    assert np.all(np.abs(frac - 0.2) < 0.02)
    again = ds.load("digits")
    assert np.array_equal(again["test"]["x"], te["x"])


def test_wine_is_the_uci_data_with_a_fixed_stratified_split():
    data = ds.load("wine")
    tr, te = data["train"], data["test"]
    assert tr["x"].shape == (133, 13) and te["x"].shape == (45, 13)
    assert tr["x"].dtype == np.float32 and tr["y"].dtype == np.int64
    y = np.concatenate([tr["y"], te["y"]])
    assert np.array_equal(np.bincount(y), [59, 71, 48])      # UCI's class sizes
    frac = np.bincount(te["y"]) / np.bincount(y)
    assert np.all(np.abs(frac - 0.25) < 0.02)
    x = np.concatenate([tr["x"], te["x"]])
    assert x[:, 12].max() == 1680 and 0.1 < x[:, 7].min() < 0.2   # raw units (proline, ...)
    assert len(np.unique(x, axis=0)) == 178                  # no sample in both parts
    assert np.array_equal(ds.load("wine")["test"]["x"], te["x"])


@pytest.mark.parametrize("name", GENERATED)
def test_generated_sets_are_seeded_sized_and_split(name):
    a = ds.load(name, n=250, seed=3, test_fraction=0.2)
    b = ds.load(name, n=250, seed=3, test_fraction=0.2)
    c = ds.load(name, n=250, seed=4, test_fraction=0.2)
    assert len(a["train"]["x"]) == 200 and len(a["test"]["x"]) == 50
    for split in ("train", "test"):
        for key in ("x", "y"):
            assert np.array_equal(a[split][key], b[split][key])
    assert not np.array_equal(a["train"]["x"], c["train"]["x"])
    assert a["train"]["x"].dtype == np.float32


def test_moons_without_noise_lie_on_two_half_circles():
    d = ds.load("moons", n=400, noise=0.0)
    x = np.concatenate([d["train"]["x"], d["test"]["x"]])
    y = np.concatenate([d["train"]["y"], d["test"]["y"]])
    upper, lower = x[y == 0], x[y == 1]
    assert len(upper) == len(lower) == 200
    assert np.allclose(np.hypot(*upper.T), 1, atol=1e-6) and np.all(upper[:, 1] >= -1e-6)
    assert np.allclose(np.hypot(lower[:, 0] - 1, lower[:, 1] - 0.5), 1, atol=1e-6)
    assert np.all(lower[:, 1] <= 0.5 + 1e-6)


def test_xor_labels_are_the_xor_of_the_signs():
    d = ds.load("xor", n=300, noise=0.0)["train"]
    expected = (d["x"][:, 0] < 0) != (d["x"][:, 1] < 0)
    assert np.array_equal(d["y"], expected.astype(np.int64))
    assert set(np.unique(d["y"])) == {0, 1}


def test_spirals_have_the_asked_number_of_balanced_classes():
    d = ds.load("spirals", n=300, classes=3)
    y = np.concatenate([d["train"]["y"], d["test"]["y"]])
    assert np.array_equal(np.bincount(y), [100, 100, 100])
    r = np.hypot(*d["train"]["x"].T)
    assert r.max() < 1.3


def test_sine_is_a_noiseless_regression_on_the_asked_range():
    d = ds.load("sine", n=500, periods=2.0)["train"]
    assert d["x"].shape == (400, 1) and d["y"].shape == (400, 1)
    assert d["y"].dtype == np.float32
    assert np.allclose(d["y"], np.sin(d["x"]), atol=1e-5)
    assert np.abs(d["x"]).max() <= 2 * np.pi and np.abs(d["x"]).max() > np.pi


def test_function_is_a_target_on_even_grids():
    d = ds.load("function", f="|x|", n="5", n_test=9)
    np.testing.assert_allclose(d["train"]["x"][:, 0], [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_allclose(d["train"]["y"], np.abs(d["train"]["x"]))
    assert d["test"]["x"].shape == d["test"]["y"].shape == (9, 1)
    saw = ds.load("function", f="sawtooth", n=9)["train"]["y"][:, 0]
    np.testing.assert_allclose(saw, [-1, 1, -1, 1, -1, 1, -1, 1, -1])
    with pytest.raises(DataError, match=r"option f must be one of sin\(3x\), \|x\|, step, "
                                        r"sawtooth, got 'stpe' \(did you mean 'step'"):
        ds.load("function", f="stpe")


def test_options_given_as_strings_are_converted():
    d = ds.load("spirals", n="90", classes="3", noise="0.5")
    assert len(d["train"]["x"]) + len(d["test"]["x"]) == 90
    assert d["train"]["y"].max() == 2


@pytest.mark.parametrize("options, words", [
    ({"n": 1}, "n must be an integer >= 2"),
    ({"noise": -0.1}, "noise must be a finite number >= 0"),
    ({"noise": float("nan")}, "noise"),
    ({"test_fraction": 1.5}, "test_fraction"),
    ({"n": "ten"}, "option n must be an integer, got 'ten'"),
    ({"nosie": 0.1}, "did you mean 'noise'"),
])
def test_bad_options_are_named(options, words):
    with pytest.raises(DataError, match=None) as info:
        ds.load("moons", **options)
    assert words in str(info.value)


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(DataError) as info:
        ds.load("mons")
    assert "'moons'" in str(info.value) and "did you mean" in str(info.value)


def test_a_plugin_dataset_that_fails_or_returns_junk_is_named():
    class Broken:
        @gn.hookimpl
        def graphnet_datasets(self):
            def boom(size=3):
                raise RuntimeError("disk on fire")
            return [gn.Dataset("broken", boom, options={"size": 3}),
                    gn.Dataset("junk", lambda: {"train": {"x": 1}, "test": {}})]

    name = gn.plugins.register(Broken(), name="broken-datasets")
    try:
        with pytest.raises(DataError, match="dataset 'broken' failed to load with options "
                                            r"\{'size': 5\}: RuntimeError: disk on fire"):
            ds.load("broken", size="5")
        with pytest.raises(DataError, match="without a sample axis"):
            ds.load("junk")
    finally:
        gn.plugins.unregister(name)


def test_wine_takes_no_options():
    with pytest.raises(DataError, match="takes no options"):
        ds.load("wine", n=5)


def test_digits_train_size_and_label_noise():
    full = ds.load("digits")
    d = ds.load("digits", train_size="300", label_noise="0.2", noise_seed="3")
    assert len(d["train"]["y"]) == 300
    np.testing.assert_array_equal(d["train"]["x"], full["train"]["x"][:300])
    np.testing.assert_array_equal(d["test"]["y"], full["test"]["y"])     # the test split stays clean
    flipped = d["train"]["y"] != full["train"]["y"][:300]
    assert 0.14 < flipped.mean() < 0.26 and d["train"]["y"].max() <= 9
    again = ds.load("digits", train_size=300, label_noise=0.2, noise_seed=3)
    np.testing.assert_array_equal(again["train"]["y"], d["train"]["y"])
    other = ds.load("digits", train_size=300, label_noise=0.2, noise_seed=4)
    assert np.any(other["train"]["y"] != d["train"]["y"])


@pytest.mark.parametrize("options, words", [
    ({"n": 5}, "no option 'n'"),
    ({"train_size": 0}, "train_size must be an integer >= 1"),
    ({"train_size": 5000}, "train_size is at most the 1438 training samples"),
    ({"label_noise": 1.5}, "label_noise is the fraction of training labels to flip"),
    ({"label_noise": -0.1}, "label_noise must be a finite number >= 0"),
])
def test_bad_digits_options_are_named(options, words):
    with pytest.raises(DataError) as info:
        ds.load("digits", **options)
    assert words in str(info.value) and "digits" in str(info.value)


# --- files ----------------------------------------------------------------------

def test_npz_file_arrays_come_back_by_name(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, features=np.ones((3, 2)), label=np.arange(3))
    arrays = ds.load_file(path)
    assert set(arrays) == {"features", "label"}
    assert np.array_equal(arrays["label"], np.arange(3))


def test_npz_with_object_arrays_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match="evil.npz"):
        ds.load_file(path)


@pytest.mark.parametrize("content, words", [
    (b"not a zip at all", "is not a .npz file: .* not a zip archive"),
    (b"PK\x03\x04broken", "is not a .npz file: .* not a zip archive"),
])
def test_corrupt_npz_is_named(tmp_path, content, words):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=words):
        ds.load_file(path)


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        ds.load_file(tmp_path / "nope.npz")
    (tmp_path / "d.txt").write_text("1,2\n")
    with pytest.raises(DataError, match="unsupported format '.txt'"):
        ds.load_file(tmp_path / "d.txt")


def test_csv_with_header_uses_the_label_column_as_target(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n1,2,0\n3,4,1\n5,6.5,1\n")
    arrays = ds.load_file(path)
    assert arrays["x"].tolist() == [[1, 2], [3, 4], [5, 6.5]]
    assert arrays["y"].tolist() == [0, 1, 1] and arrays["y"].dtype == np.int64


def test_csv_columns_by_name_index_and_range(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("p,q,r,s,out\n1,2,3,4,0.5\n5,6,7,8,1.5\n")
    arrays = ds.load_file(path, x="q,s", y="out")
    assert arrays["x"].tolist() == [[2, 4], [6, 8]]
    assert arrays["y"].tolist() == [0.5, 1.5] and arrays["y"].dtype == np.float64
    arrays = ds.load_file(path, x="0:3", y="4")
    assert arrays["x"].tolist() == [[1, 2, 3], [5, 6, 7]]


def test_csv_without_header_is_all_features_unless_told(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("1,2,3\n4,5,6\n")
    assert "y" not in ds.load_file(path)
    arrays = ds.load_file(path, y="2")
    assert arrays["x"].tolist() == [[1, 2], [4, 5]] and arrays["y"].tolist() == [3, 6]


@pytest.mark.parametrize("text, kwargs, words", [
    ("a,b\n1,2\n3,x\n", {}, "line 3, column 'b': 'x' is not a number"),
    ("a,b\n1,2\n3\n", {}, "line 3: 1 fields, expected 2"),
    ("a,b\n", {}, "no data rows"),
    ("a,b\n1,2\n", {"y": "c"}, "has no column 'c'"),
    ("a,b\n1,2\n", {"x": "a,b", "y": "b"}, "both a feature and the target"),
    ("a,b\n1,2\n", {"x": "0:9"}, "outside the 2 columns"),
    ("a,b\n1,2\n3,nan\n", {}, "line 3, column 'b': 'nan' is not a finite number"),
    ("a,b\n1e39,2\n", {}, "line 2, column 'a': '1e39' is not a finite number"),
])
def test_bad_csv_is_named(tmp_path, text, kwargs, words):
    path = tmp_path / "d.csv"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        ds.load_file(path, **kwargs)
    assert words in str(info.value) and "d.csv" in str(info.value)


def test_csv_is_read_in_blocks_with_each_line_named_by_its_number_in_the_file(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(ds, "_BLOCK", 3)   # block edges fall on every kind of line below
    path = tmp_path / "d.csv"
    lines = ["", "a,b,label", "1,2,0", "", " , ", '"3", 4 ,1', "1_0,6,0", "  ", "7,8e0,1", ""]
    path.write_bytes("\r\n".join(lines).encode())
    arrays = ds.load_file(path)
    assert arrays["x"].tolist() == [[1, 2], [3, 4], [10, 6], [7, 8]]
    assert arrays["y"].tolist() == [0, 1, 0, 1] and arrays["y"].dtype == np.int64
    for bad, words in (("7,oops,1", "line 9, column 'b': 'oops' is not a number"),
                       ("7,8", "line 9: 2 fields, expected 3"),
                       ("7,inf,1", "line 9, column 'b': 'inf' is not a finite number")):
        path.write_text("\n".join(lines[:8] + [bad]))
        with pytest.raises(DataError, match=words):
            ds.load_file(path)


def test_split_is_seeded_and_complete():
    arrays = {"x": np.arange(10)[:, None], "y": np.arange(10)}
    parts = ds.split(arrays, 0.3, seed=1)
    assert len(parts["test"]["y"]) == 3
    assert sorted(np.concatenate([parts["train"]["y"], parts["test"]["y"]])) == list(range(10))
    assert np.array_equal(parts["train"]["x"][:, 0], parts["train"]["y"])
    with pytest.raises(DataError):
        ds.split({"x": np.zeros((1, 2))})


# --- matching arrays to a model's inputs ---------------------------------------

def classifier(input_name="x", label_name="label", features=4, classes=3):
    g = gn.Graph("clf")
    x = g.input(input_name, shape=(features,))
    t = g.input(label_name, shape=(), dtype="int64")
    y = g.add("dense", x, units=classes, name="logits")
    g.add("softmax_cross_entropy", y, t, name="loss")
    g.output(y)
    return gn.Model(g, seed=0)


def regressor():
    g = gn.Graph("reg")
    x = g.input("x", shape=(1,))
    t = g.input("t", shape=(1,))
    y = g.add("dense", x, units=1, name="out")
    g.add("mse", y, t, name="loss")
    g.output(y)
    return gn.Model(g, seed=0)


def test_input_roles_find_the_loss_target():
    assert ds.input_roles(classifier()) == (["x"], ["label"])


def test_exact_names_win_over_x_and_y():
    model = classifier(input_name="pixels")
    feeds = ds.to_feeds(model, {"pixels": np.ones((2, 4)), "x": np.zeros((2, 4)),
                                "label": np.array([0, 2])})
    assert feeds["pixels"].sum() == 8 and feeds["label"].tolist() == [0, 2]


def test_x_and_y_feed_the_feature_and_the_target():
    feeds = ds.to_feeds(classifier(), {"x": np.ones((5, 4)), "y": np.arange(5) % 3})
    assert set(feeds) == {"x", "label"} and feeds["label"].dtype == np.int64
    model = classifier()
    out = model.forward(feeds)
    assert np.isfinite(out["loss"])


def test_one_dimensional_and_integer_arrays_are_adapted():
    feeds = ds.to_feeds(regressor(), {"x": np.arange(4), "y": np.arange(4)})
    assert feeds["x"].shape == (4, 1) and feeds["x"].dtype == np.float32
    assert feeds["t"].shape == (4, 1) and feeds["t"].dtype == np.float32
    images = ds.to_feeds(classifier(features=64), {"x": np.zeros((2, 8, 8)), "y": [1.0, 2.0]})
    assert images["x"].shape == (2, 64) and images["label"].dtype == np.int64


def test_predicting_needs_no_targets():
    feeds = ds.to_feeds(classifier(), {"x": np.ones((2, 4))}, targets=False)
    assert set(feeds) == {"x"}


@pytest.mark.parametrize("arrays, words", [
    ({"x": np.ones((2, 4))}, "no array for input 'label'"),
    ({"features": np.ones((2, 4)), "y": [0, 1]}, "no array for input 'x'"),
    ({"x": np.ones((2, 5)), "y": [0, 1]}, "has shape (2, 5), but the input needs (N, 4)"),
    ({"x": np.ones((2, 4)), "y": [0, 1, 2]}, "samples"),
    ({"x": np.ones((2, 4)), "y": [0.5, 1]}, "integer class labels"),
    ({"x": np.full((2, 4), np.inf), "y": [0, 1]}, "NaN or infinite"),
    ({"x": np.ones((2, 4)), "y": [np.nan, 1]}, "NaN or infinite"),
])
def test_arrays_that_do_not_fit_are_named(arrays, words):
    with pytest.raises(DataError) as info:
        ds.to_feeds(classifier(), arrays, source="data file 'd.npz'")
    assert words in str(info.value) and "d.npz" in str(info.value)


def test_two_feature_inputs_make_x_ambiguous():
    g = gn.Graph("two")
    a, b = g.input("a", shape=(2,)), g.input("b", shape=(2,))
    t = g.input("t", shape=(2,))
    g.add("mse", g.add("add", a, b, name="s"), t, name="loss")
    with pytest.raises(DataError, match=r"could feed any of the feature inputs \['a', 'b'\]"):
        ds.to_feeds(gn.Model(g), {"x": np.ones((1, 2)), "y": np.ones((1, 2))})


# --- nothing but DataError escapes ----------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

CELLS = st.one_of(st.integers(-5, 5).map(str), st.floats(allow_nan=True).map(repr),
                  st.sampled_from(["", "x", "label", "y", "1e3", " 2 ", "nan", "-"]))
ROWS = st.lists(st.lists(CELLS, min_size=0, max_size=4), max_size=6)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS, x=st.sampled_from([None, "0", "a,b", "0:2", "x", "9"]),
       y=st.sampled_from([None, "1", "label", "y", "zz"]))
def test_any_csv_loads_or_raises_data_error(tmp_path, rows, x, y):
    path = tmp_path / "f.csv"
    path.write_text("\n".join(",".join(r) for r in rows))
    try:
        arrays = ds.load_file(path, x=x, y=y)
    except DataError:
        return
    assert arrays["x"].ndim == 2 and len(arrays["x"]) >= 1
    if "y" in arrays:
        assert len(arrays["y"]) == len(arrays["x"])


NUMBERS = st.one_of(st.integers(-10**6, 10**6).map(str),
                    st.floats(-1e30, 1e30, allow_nan=False).map(repr),
                    st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: f" {v:.3e} "),
                    st.integers(0, 9).map(lambda v: f'"{v}"'))


@settings(max_examples=60, deadline=None)
@given(table=st.integers(1, 4).flatmap(lambda width: st.lists(
           st.lists(NUMBERS, min_size=width, max_size=width), min_size=1, max_size=12)),
       blanks=st.lists(st.sampled_from(["", " ", ",", " , "]), max_size=4),
       newline=st.sampled_from(["\n", "\r\n"]), block=st.sampled_from([1, 2, 5, 1 << 16]))
def test_any_csv_of_numbers_loads_as_python_reads_its_cells(tmp_path_factory, table, blanks,
                                                            newline, block):
    import csv
    width = len(table[0])
    lines = [",".join(row) for row in table]
    for i, blank in enumerate(blanks):   # blank lines anywhere after the first row
        lines.insert(1 + (i * 5) % len(lines), blank)
    path = tmp_path_factory.mktemp("csv") / "f.csv"
    path.write_bytes(newline.join(["h" + ",h".join(map(str, range(width)))] + lines).encode())
    want = np.array([[float(c) for c in row] for row in csv.reader(lines)
                     if any(c.strip() for c in row)], dtype=np.float32)
    saved, ds._BLOCK = ds._BLOCK, block
    try:
        arrays = ds.load_file(path)
    finally:
        ds._BLOCK = saved
    assert arrays["x"].dtype == np.float32 and np.array_equal(arrays["x"], want)


def test_a_csv_target_of_integers_beyond_int64_stays_float(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,y\n1,1e30\n2,-3\n")
    y = ds.load_file(path)["y"]
    assert y.dtype == np.float64 and y.tolist() == [1e30, -3]


ARRAYS = hnp.arrays(dtype=st.sampled_from([np.float32, np.float64, np.int64, np.bool_]),
                    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
                    elements={"allow_nan": False, "allow_infinity": False,
                              "min_value": -3, "max_value": 3})


@settings(max_examples=200, deadline=None)
@given(arrays=st.dictionaries(st.sampled_from(["x", "y", "label", "other"]), ARRAYS,
                              max_size=3),
       targets=st.booleans())
def test_any_arrays_feed_the_model_or_raise_data_error(arrays, targets):
    model = CLASSIFIER
    try:
        feeds = ds.to_feeds(model, arrays, targets=targets)
    except DataError:
        return
    assert feeds["x"].shape[1:] == (4,)
    if targets and len(feeds["x"]) and feeds["label"].min() >= 0 and feeds["label"].max() < 3:
        assert np.isfinite(model.forward(feeds)["loss"])


CLASSIFIER = classifier()
