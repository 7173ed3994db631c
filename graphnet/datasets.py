"""Datasets: the digits and wine shipped with graphnet, generated toy sets, and the user's own files.

A dataset's ``load(**options)`` returns ``{"train": {...}, "test": {...}}``;
each split maps ``"x"`` (features) and ``"y"`` (targets) to arrays with the
samples along the first axis. The generated sets (``moons``, ``spirals``,
``xor``, ``sine``; and ``function``, a 1-D target on even grids) are seeded and sized by their options, so a given set of
options always gives the same arrays and the same split.

>>> import graphnet.datasets as ds
>>> data = ds.load("moons", n=200, noise=0.1, seed=1)
>>> data["train"]["x"].shape, data["test"]["y"].dtype
((160, 2), dtype('int64'))

A user's own data comes from ``.npz`` files (arrays named after the graph's
inputs, or ``x`` and ``y``) and ``.csv`` files (columns picked by header name
or index); ``to_feeds`` matches any of these to a model's inputs.
"""

import csv
import itertools
import math
import os
import warnings
import zipfile
from importlib import resources

import numpy as np

from .errors import DataError, GraphnetError, UnknownNameError, did_you_mean
from .npzfile import read_npz

# --- shipped and generated datasets ---------------------------------------


def load_digits(train_size=1438, label_noise=0.0, noise_seed=0):
    """The UCI handwritten digits (1797 8x8 images, classes 0-9) with graphnet's fixed
    stratified split: 1438 train, 359 test. x is float32 in [0, 1], y int64.

    For the lecture's double descent: ``train_size`` keeps the first that many
    training samples (the split's order is shuffled, so any prefix has every
    class), and ``label_noise`` replaces that fraction of the kept training
    labels, drawn with ``noise_seed``, by a different class (``flip_labels``).
    The test split is always the full, clean one.
    """
    train_size = _int_option("digits", "train_size", train_size, minimum=1)
    label_noise = _float_option("digits", "label_noise", label_noise, minimum=0.0)
    noise_seed = _int_option("digits", "noise_seed", noise_seed, minimum=0)
    if label_noise > 1:
        raise DataError(f"dataset 'digits': option label_noise is the fraction of training "
                        f"labels to flip, between 0 and 1, got {label_noise!r}")
    with resources.files("graphnet").joinpath("data/digits.npz").open("rb") as f:
        data = np.load(f, allow_pickle=False)
        images = data["images"].astype(np.float32) / 16.0
        labels = data["labels"].astype(np.int64)
        train, test = data["train_index"], data["test_index"]
    if train_size > len(train):
        raise DataError(f"dataset 'digits': option train_size is at most the {len(train)} "
                        f"training samples, got {train_size}")
    train = train[:train_size]
    y = labels[train]
    if label_noise:
        y = flip_labels(y, label_noise, 10, np.random.default_rng(noise_seed))
    return {"train": {"x": images[train], "y": y},
            "test": {"x": images[test], "y": labels[test]}}


def flip_labels(y, fraction, classes, rng):
    """A copy of integer labels with about ``fraction`` of them (each one with that
    probability, drawn from ``rng``) replaced by one of the other ``classes - 1`` classes."""
    y = np.array(y)
    flip = rng.random(len(y)) < fraction
    y[flip] = (y[flip] + rng.integers(1, classes, size=int(flip.sum()))) % classes
    return y


def load_wine():
    """The UCI wine recognition data (178 wines, 13 chemical measurements, cultivars
    0-2) with graphnet's fixed stratified split: 133 train, 45 test. x is float32
    in its raw units (from 0.1 to 1680, so it wants ``normalize``), y int64."""
    with resources.files("graphnet").joinpath("data/wine.npz").open("rb") as f:
        data = np.load(f, allow_pickle=False)
        x, y = data["x"].astype(np.float32), data["y"].astype(np.int64)
        train, test = data["train_index"], data["test_index"]
    return {"train": {"x": x[train], "y": y[train]}, "test": {"x": x[test], "y": y[test]}}


def make_moons(n=1000, noise=0.1, seed=0, test_fraction=0.2):
    """Two interleaving half circles in 2-D, classes 0 and 1 (as scikit-learn's make_moons).

    x is float32 of shape (n, 2) with Gaussian ``noise`` (its standard
    deviation) added; y is int64 of shape (n,).
    """
    n, noise, rng = _check_generated("moons", n, noise, seed, test_fraction)
    outer = n // 2
    t = rng.uniform(0, np.pi, size=n)
    upper = np.arange(n) < outer
    x = np.where(upper[:, None], np.stack([np.cos(t), np.sin(t)], 1),
                 np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1))
    x = x + rng.normal(scale=noise, size=x.shape)
    return _split(x, (~upper).astype(np.int64), rng, test_fraction)


def make_spirals(n=1000, classes=2, turns=1.0, noise=0.05, seed=0, test_fraction=0.2):
    """``classes`` interleaved spiral arms in 2-D, each ``turns`` full turns long.

    The arms start at the centre and wind out to radius 1; ``noise`` is the
    standard deviation of the Gaussian noise on each coordinate. y is int64 in
    [0, classes).
    """
    n, noise, rng = _check_generated("spirals", n, noise, seed, test_fraction)
    classes = _int_option("spirals", "classes", classes, minimum=2)
    turns = _float_option("spirals", "turns", turns, minimum=0.0, strict=True)
    y = np.arange(n) % classes
    r = rng.uniform(0.05, 1.0, size=n)
    theta = 2 * np.pi * (turns * r + y / classes)
    x = r[:, None] * np.stack([np.cos(theta), np.sin(theta)], 1)
    x = x + rng.normal(scale=noise, size=x.shape)
    return _split(x, y.astype(np.int64), rng, test_fraction)


def make_xor(n=1000, noise=0.0, seed=0, test_fraction=0.2):
    """Points uniform in the square [-1, 1]^2; class 1 where the two coordinates'
    signs differ (the XOR of their signs), class 0 where they agree.

    The label comes from the clean point; ``noise`` then blurs x.
    """
    n, noise, rng = _check_generated("xor", n, noise, seed, test_fraction)
    x = rng.uniform(-1, 1, size=(n, 2))
    y = ((x[:, 0] < 0) != (x[:, 1] < 0)).astype(np.int64)
    x = x + rng.normal(scale=noise, size=x.shape)
    return _split(x, y, rng, test_fraction)


def make_sine(n=1000, noise=0.0, periods=1.0, seed=0, test_fraction=0.2):
    """1-D regression: y = sin(x) for x uniform in [-periods*pi, periods*pi].

    The universal-approximation story: one hidden layer fits it as closely as
    its width allows. x and y are float32 of shape (n, 1); ``noise`` is added
    to y.
    """
    n, noise, rng = _check_generated("sine", n, noise, seed, test_fraction)
    periods = _float_option("sine", "periods", periods, minimum=0.0, strict=True)
    x = rng.uniform(-periods * np.pi, periods * np.pi, size=(n, 1))
    y = np.sin(x) + rng.normal(scale=noise, size=x.shape)
    return _split(x, y.astype(np.float32), rng, test_fraction)


def sawtooth(x, teeth=4):
    """A triangle wave with ``teeth`` peaks on [-1, 1], between -1 and 1: cheap for a
    deep relu net (each layer can fold the line once more), costly for a shallow one."""
    period = 2.0 / teeth
    return 1 - 4 * np.abs(((x + 1) / period) % 1.0 - 0.5)


FUNCTIONS = {
    "sin(3x)": lambda x: np.sin(3 * x),
    "|x|": np.abs,
    "step": lambda x: (x > 0).astype(np.float64),
    "sawtooth": sawtooth,
}
"""The 1-D targets of the universal-approximation lecture, on [-1, 1]."""


def make_function(f="sin(3x)", n=200, n_test=1000):
    """1-D regression on [-1, 1] without noise: y = f(x) for ``f`` one of FUNCTIONS
    (``sin(3x)``, ``|x|``, ``step``, ``sawtooth``). The train split is an even grid
    of ``n`` points, the test split an even grid of ``n_test`` points (mostly in
    between): how well a net approximates f, not how it generalizes from noise.
    x and y are float32 of shape (N, 1).
    """
    if f not in FUNCTIONS:
        raise DataError(f"dataset 'function': option f must be one of "
                        f"{', '.join(FUNCTIONS)}, got {f!r}{did_you_mean(str(f), FUNCTIONS)}")
    n = _int_option("function", "n", n, minimum=2)
    n_test = _int_option("function", "n_test", n_test, minimum=2)
    fn = FUNCTIONS[f]
    splits = {}
    for split, size in (("train", n), ("test", n_test)):
        x = np.linspace(-1, 1, size)[:, None]
        splits[split] = {"x": x.astype(np.float32), "y": fn(x).astype(np.float32)}
    return splits


def _check_generated(name, n, noise, seed, test_fraction):
    n = _int_option(name, "n", n, minimum=2)
    noise = _float_option(name, "noise", noise, minimum=0.0)
    seed = _int_option(name, "seed", seed, minimum=0)
    test_fraction = _float_option(name, "test_fraction", test_fraction, minimum=0.0, strict=True)
    if test_fraction >= 1 or not 1 <= round(n * test_fraction) < n:
        raise DataError(f"dataset {name!r}: test_fraction={test_fraction} of n={n} samples "
                        f"leaves an empty train or test split; use a fraction in (0, 1) and "
                        f"enough samples")
    return n, noise, np.random.default_rng(seed)


def _int_option(dataset, key, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"dataset {dataset!r}: option {key} must be an integer >= {minimum}, "
                        f"got {value!r}")
    return int(value)


def _float_option(dataset, key, value, minimum, strict=False):
    ok = (not isinstance(value, bool) and isinstance(value, (int, float, np.number))
          and math.isfinite(value) and (value > minimum if strict else value >= minimum))
    if not ok:
        relation = ">" if strict else ">="
        raise DataError(f"dataset {dataset!r}: option {key} must be a finite number "
                        f"{relation} {minimum}, got {value!r}")
    return float(value)


def _split(x, y, rng, test_fraction):
    """Shuffle with the dataset's own generator, then cut off the test part."""
    n = len(x)
    order = rng.permutation(n)
    n_test = round(n * test_fraction)
    train, test = order[n_test:], order[:n_test]
    x = x.astype(np.float32)
    return {"train": {"x": x[train], "y": y[train]}, "test": {"x": x[test], "y": y[test]}}


# --- looking datasets up by name ------------------------------------------


def load(name, **options):
    """Load a registered dataset by name with its options, checked.

    Options given as strings (from the command line) are converted to the
    type of the option's default. Unknown options are refused with a
    did-you-mean. Returns ``{"train": {...}, "test": {...}}``.
    """
    from .plugins import get
    try:
        dataset = get("dataset", name)
    except UnknownNameError as exc:
        raise DataError(str(exc)) from None
    if dataset.options:
        for key, value in list(options.items()):
            if key not in dataset.options:
                known = ", ".join(dataset.options)
                raise DataError(f"dataset {name!r} has no option {key!r}"
                                f"{did_you_mean(key, dataset.options)}; its options: {known}")
            if isinstance(value, str):
                options[key] = _parse_option(name, key, value, dataset.options[key])
    elif options:
        raise DataError(f"dataset {name!r} takes no options, got {sorted(options)}")
    try:
        data = dataset.load(**options)
    except GraphnetError:
        raise
    except Exception as exc:  # a plugin's loader: name it, keep the cause for --debug
        raise DataError(f"dataset {name!r} failed to load with options {options}: "
                        f"{type(exc).__name__}: {exc}") from exc
    _check_splits(f"dataset {name!r}", data)
    return data


def _parse_option(dataset, key, text, default):
    kind = type(default)
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if kind in (int, float):
            return kind(text)
        return text
    except ValueError:
        what = {bool: "true or false", int: "an integer", float: "a number"}.get(kind, "text")
        raise DataError(f"dataset {dataset!r}: option {key} must be {what}, "
                        f"got {text!r}") from None


def _check_splits(source, data):
    if not isinstance(data, dict) or not {"train", "test"} <= set(data):
        raise DataError(f"{source} must return {{'train': ..., 'test': ...}}, got "
                        f"{type(data).__name__}")
    for split in ("train", "test"):
        arrays = data[split]
        if not isinstance(arrays, dict) or not arrays:
            raise DataError(f"{source}: split {split!r} must be a dict of named arrays")
        if any(np.ndim(v) == 0 for v in arrays.values()):
            raise DataError(f"{source}: split {split!r} holds an array without a sample axis")
        lengths = {k: len(np.asarray(v)) for k, v in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise DataError(f"{source}: split {split!r} has arrays of different lengths "
                            f"{lengths}")


# --- the user's own files ---------------------------------------------------


def load_file(path, x=None, y=None):
    """Read a user's data file into ``{array name: array}``.

    ``.npz``: every array, by its name (pickled object arrays are refused).
    ``.csv``: comma-separated numbers, with an optional header row (a first
    row with any non-numeric field). Columns become two arrays: ``y``, the
    target, is the column named by ``y`` (a header name or a 0-based index),
    else the column headed ``y``, ``label``, ``target`` or ``class``, else
    none; ``x`` is the columns listed in ``x`` (comma-separated names,
    indices or ranges like ``0:64``), else every column but the target.
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".npz", ".csv"):
        raise DataError(f"data file {path!r}: unsupported format {suffix or '(no suffix)'!r}; "
                        f"use a .npz file (arrays named after the model's inputs, or x and y) "
                        f"or a .csv file")
    if not os.path.isfile(path):
        raise DataError(f"data file {path!r} does not exist")
    if suffix == ".npz":
        if x is not None or y is not None:
            raise DataError(f"data file {path!r}: column choices apply to .csv files only; "
                            f"name the arrays of a .npz file after the model's inputs")
        return _load_npz(path)
    return _load_csv(path, x, y)


def _load_npz(path):
    if not zipfile.is_zipfile(path):
        raise DataError(f"data file {path!r} is not a .npz file: a .npz is a zip archive of "
                        f".npy arrays (as numpy.savez writes), and this file is not a zip "
                        f"archive; write it with numpy.savez or use a .csv file")
    arrays = read_npz(path, f"data file {path!r}", DataError, compressed=True)
    if not arrays:
        raise DataError(f"data file {path!r} holds no arrays")
    for k, v in arrays.items():
        if v.dtype.kind not in "biuf":
            raise DataError(f"data file {path!r}: array {k!r} holds {v.dtype}, not numbers")
    return arrays


TARGET_HEADERS = ("y", "label", "target", "class")
_BLOCK = 1 << 14  # lines parsed at a time: a few MiB, as fast as more
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _load_csv(path, x_cols, y_col):
    """Read a CSV a block of lines at a time, each block parsed by numpy's C reader:
    memory is the arrays the file declares (float32 features, the target) and one block,
    never a Python object per cell. A block the reader refuses is read again cell by
    cell, to name the line and column at fault."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return _read_csv(f, path, x_cols, y_col)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"data file {path!r} could not be read as CSV: {exc}") from None
    except MemoryError:
        raise DataError(f"data file {path!r}: its numbers need more memory than is "
                        f"available; use a smaller file or free memory") from None


def _read_csv(f, path, x_cols, y_col):
    lines = sum(1 for _ in f)   # the arrays are made once, at their final size
    f.seek(0)
    number = 0
    for line in f:   # the first row with data: a header, if any field is not a number
        number += 1
        first = next(csv.reader([line]), [])
        if _has_data(first):
            break
    else:
        raise DataError(f"data file {path!r} is empty")
    header = None if all(_is_number(c) for c in first) else [c.strip() for c in first]
    names = header or [str(i) for i in range(len(first))]
    target, features = _roles(path, names, header, x_cols, y_col)
    rows = lines - number + (header is None)   # at most; blank lines are skipped
    x = np.empty((rows, len(features)), np.float32)
    y = None if target is None else np.empty(rows)
    n, block, start = 0, ([] if header else [line]), number + (header is not None)
    while True:
        block += itertools.islice(f, _BLOCK - len(block))
        if not block:
            break
        part = _parse_block(block, start, path, names)
        x[n:n + len(part)] = part[:, features]
        if y is not None:
            y[n:n + len(part)] = part[:, target]
        n, start, block = n + len(part), start + len(block), []
    if not n:
        raise DataError(f"data file {path!r} has a header but no data rows")
    arrays = {"x": x[:n]}
    if y is not None:
        y = y[:n]
        labels = np.all(y == np.round(y)) and np.abs(y).max() <= 2 ** 53  # exact as int64
        arrays["y"] = y.astype(np.int64) if labels else y
    return arrays


def _roles(path, names, header, x_cols, y_col):
    """(target column index or None, feature column indices), checked."""
    if y_col is not None:
        target = _columns(path, names, y_col, "--y")
        if len(target) != 1:
            raise DataError(f"data file {path!r}: the target is one column, got {y_col!r}")
        target = target[0]
    else:
        target = next((names.index(h) for h in TARGET_HEADERS if header and h in names), None)
    if x_cols is not None:
        features = _columns(path, names, x_cols, "--x")
    else:
        features = [j for j in range(len(names)) if j != target]
    if target is not None and target in features:
        raise DataError(f"data file {path!r}: column {names[target]!r} is both a feature "
                        f"and the target")
    if not features:
        raise DataError(f"data file {path!r}: no feature columns left; choose them with --x")
    return target, features


def _parse_block(lines, start, path, names):
    """The rows of ``lines`` (the file's from line ``start`` on) as a float64 array."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # "input contained no data" for blank lines
            part = np.loadtxt(lines, delimiter=",", comments=None, quotechar='"', ndmin=2)
        if part.shape[1] == len(names) and np.all(np.abs(part) <= _FLOAT32_MAX):
            return part
    except ValueError:
        pass
    return _parse_cells(lines, start, path, names)


def _parse_cells(lines, start, path, names):
    """The same rows read cell by cell, naming the first line and column at fault."""
    part = np.empty((len(lines), len(names)))
    n = 0
    reader = csv.reader(lines)
    for row in reader:
        line = start + reader.line_num - 1
        if not _has_data(row):
            continue
        if len(row) != len(names):
            raise DataError(f"data file {path!r}, line {line}: {len(row)} fields, expected "
                            f"{len(names)}")
        for j, cell in enumerate(row):
            try:
                value = float(cell)
            except ValueError:
                raise DataError(f"data file {path!r}, line {line}, column {names[j]!r}: "
                                f"{cell!r} is not a number") from None
            if not abs(value) <= _FLOAT32_MAX:
                raise DataError(f"data file {path!r}, line {line}, column {names[j]!r}: "
                                f"{cell.strip()!r} is not a finite number that float32 can "
                                f"hold")
            part[n, j] = value
        n += 1
    return part[:n]


def _has_data(row):
    return any(c.strip() for c in row)


def _columns(path, names, spec, flag):
    """Column indices from 'a,b', '0,3', '2:10' (a half-open range) or a mix."""
    out = []
    for part in str(spec).split(","):
        part = part.strip()
        if ":" in part and part not in names:
            lo, _, hi = part.partition(":")
            try:
                lo = int(lo) if lo else 0
                hi = int(hi) if hi else len(names)
            except ValueError:
                raise DataError(f"{flag} {spec!r}: range {part!r} needs integer ends") from None
            if not 0 <= lo < hi <= len(names):
                raise DataError(f"{flag} {spec!r}: range {part!r} is outside the {len(names)} "
                                f"columns of {path!r}")
            out.extend(range(lo, hi))
        elif part in names:
            out.append(names.index(part))
        elif part.isdigit() and int(part) < len(names):
            out.append(int(part))
        else:
            raise DataError(f"{flag} {spec!r}: {path!r} has no column {part!r}"
                            f"{did_you_mean(part, names)}; its columns: {', '.join(names)}")
    return out


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def split(arrays, test_fraction=0.2, seed=0):
    """Cut one dict of arrays into fixed, seeded train and test parts."""
    lengths = {len(v) for v in arrays.values()}
    if len(lengths) != 1:
        raise DataError(f"arrays of different lengths {sorted(lengths)} cannot be split")
    n = lengths.pop()
    n_test = round(n * test_fraction)
    if not 1 <= n_test < n:
        raise DataError(f"{n} samples cannot be split into train and test parts; "
                        f"give more data or a separate test file")
    order = np.random.default_rng(seed).permutation(n)
    test, train = order[:n_test], order[n_test:]
    return {"train": {k: v[train] for k, v in arrays.items()},
            "test": {k: v[test] for k, v in arrays.items()}}


# --- matching arrays to a model's inputs -------------------------------------


def input_roles(model):
    """Split a model's inputs into features and targets.

    A target is an input that some loss node reads in a position after its
    first (the predictions); every other input is a feature.
    """
    targets = []
    for node in model.nodes.values():
        if node.kind == "loss":
            targets += [i for i in node.inputs[1:] if model.nodes[i].kind == "input"]
    features = [i for i in model.inputs if i not in targets]
    return features, [i for i in model.inputs if i in targets]


def to_feeds(model, arrays, source="data", targets=True):
    """Match named arrays to a model's inputs and return checked feeds.

    The rule: an array named exactly like an input feeds that input. Then an
    array ``x`` feeds the one feature input left (one not read by a loss as
    its target), and an array ``y`` feeds the one target input left. If
    several inputs are left for ``x`` or ``y`` the match is ambiguous: name
    the arrays after the inputs. With ``targets=False`` (predicting) target
    inputs may be missing. Arrays are adapted where nothing is lost: a 1-D
    array feeds an input of shape (1,), an array whose per-sample size equals
    the input's is reshaped, integer data feeds float inputs, and integral
    floats feed integer (label) inputs. ``source`` names the data in errors.
    """
    features, target_inputs = input_roles(model)
    feeds = {}
    for name in model.inputs:
        if name in arrays:
            feeds[name] = arrays[name]
    for key, pool, role in (("x", features, "feature"), ("y", target_inputs, "target")):
        left = [i for i in pool if i not in feeds]
        if key in arrays and key not in model.inputs and left:
            if len(left) > 1:
                raise DataError(f"{source}: array {key!r} could feed any of the {role} inputs "
                                f"{left}; name the arrays after the model's inputs instead")
            feeds[left[0]] = arrays[key]
    needed = model.inputs if targets else features
    missing = [i for i in needed if i not in feeds]
    if missing:
        have = ", ".join(sorted(arrays)) or "none"
        if str(source).lower().rstrip("'\"").endswith(".csv"):
            role = "target" if missing[0] in target_inputs else "feature"
            raise DataError(f"{source} has no {role} column for input {missing[0]!r} of model "
                            f"{model.name!r}: pick the target column with --y (a header name "
                            f"or 0-based index; a header y, label, target or class is found "
                            f"by itself) and the feature columns with --x (e.g. --x 0:64)")
        raise DataError(f"{source} has no array for input {missing[0]!r} of model "
                        f"{model.name!r} (arrays: {have}); name an array after the input, or "
                        f"call the features x and the targets y")
    out = {}
    n = None
    for name, arr in feeds.items():
        arr = _adapt(model, name, np.asarray(arr), source)
        if n is None:
            n = len(arr)
        elif len(arr) != n:
            raise DataError(f"{source}: the array for input {name!r} has {len(arr)} samples, "
                            f"others have {n}")
        out[name] = arr
    return out


def _adapt(model, name, arr, source):
    node = model.nodes[name]
    shape, dtype = tuple(node.shape), node.dtype
    want = "(N" + "".join(f", {d}" for d in shape) + ")"
    if arr.ndim == 0 or arr.dtype.kind not in "biuf":
        raise DataError(f"{source}: the array for input {name!r} must be numbers of shape "
                        f"{want}, got {arr.dtype} of shape {arr.shape}")
    if arr.shape[1:] != shape:
        if math.prod(arr.shape[1:]) == math.prod(shape):
            arr = arr.reshape((len(arr), *shape))
        else:
            raise DataError(f"{source}: the array for input {name!r} has shape {arr.shape}, "
                            f"but the input needs {want}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise DataError(f"{source}: the array for input {name!r} holds NaN or infinite "
                        f"values; clean them out first")
    if dtype.startswith("int"):
        if arr.dtype.kind == "f":
            if np.any(arr != np.round(arr)):
                raise DataError(f"{source}: input {name!r} takes integer class labels, got "
                                f"non-integer values")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind != "f":
        arr = arr.astype(model.dtype)
    return arr
