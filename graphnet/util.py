"""Small pieces the file modules share: one atomic writer, one walker of JSON data.

They sit in the bottom layer, beside graphnet.errors, so that serialize,
schema, checkpoint and the command line use the same code without importing
each other.
"""

import math
import os
import tempfile

import numpy as np

from .errors import SchemaError

MAX_DEPTH = 64  # JSON nesting beyond any real model file


def atomic_write(path, write, error):
    """Write via a temporary file in the same folder, fsync, rename, fsync the folder.

    ``write(f)`` gets the binary file; an OSError becomes ``error`` naming the path,
    and a failure of any kind leaves the previous file at ``path`` whole. The
    temporary file's name holds the writer's pid, so that the next write removes
    what a killed writer left behind (and never a live writer's file).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    prefix = f".{os.path.basename(path)}."
    try:
        os.makedirs(folder, exist_ok=True)
        _remove_stale(folder, prefix)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{prefix}{os.getpid()}-", suffix=".tmp")
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


def _remove_stale(folder, prefix):
    """Remove the temporary files ``prefix<pid>-*.tmp`` of writers no longer running."""
    for name in os.listdir(folder):
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid = name[len(prefix):].partition("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass  # another writer removed it first


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


def plain(value, where="", problem=None):
    """Copy ``value`` as JSON data: tuples to lists, numpy scalars to Python.

    The one walker of JSON data, for what graphnet writes and for what it reads.
    Anything JSON cannot hold (NaN, a set, an object, a key given twice) is an
    error: ``problem(path, text)`` makes it, ``path`` being the keys and indices
    down to the value; by default a SchemaError naming ``where``.

    >>> plain({"shape": (2, np.int64(3))}, "attrs")
    {'shape': [2, 3]}
    """
    if problem is None:
        def problem(path, text):
            return SchemaError(f"{where}: {text}")
    return _walk(value, (), problem)


_SPELLED = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}  # as a JSON file has them


def _walk(value, path, problem):
    if len(path) > MAX_DEPTH:
        raise problem(path, f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise problem(path, f"found {_SPELLED[repr(float(value))]}, which is not a number "
                                f"in JSON; expected a finite number")
        return float(value)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_walk(v, path + (i,), problem) for i, v in enumerate(value)]
    if isinstance(value, dict):
        for k in getattr(value, "duplicates", ()):  # a parsed object that had a key twice
            raise problem(path + (k,), f"key {k!r} appears twice in one object; keep one")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise problem(path, f"key {k!r} is not a string; JSON object keys are strings")
            out[k] = _walk(v, path + (k,), problem)
        return out
    raise problem(path, f"found {type(value).__name__} {value!r:.60}, which JSON cannot hold; "
                        f"use numbers, strings, booleans, lists and objects")
