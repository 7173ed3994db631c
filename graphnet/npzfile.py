"""Reading ``.npz`` files (zips of ``.npy`` arrays) that may be hostile, within bounds.

``np.load`` trusts a file: an entry's header may claim 10^10 rows in a
300-byte file, zip entries may overlap so that a 21 MB file holds gigabytes
of arrays, a compressed entry may inflate without limit, and an object array
is a pickle. Here every entry is checked before any of its data is read: its
span in the file, its declared sizes against the file and a memory bound,
its ``.npy`` header (plain numbers only, never pickles) against its size.
Each array is then read straight into its final buffer: memory is what the
file honestly declares, once.
"""

import math
import os
import struct
import zipfile

import numpy as np

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # the 30 bytes before a member's name
_CHUNK = 1 << 24          # bytes read at a time into an array's buffer
_HEADER_LIMIT = 1 << 16   # a .npy header beyond 64 KiB is no array numpy writes


def memory_bound():
    """Bytes of arrays a file may make us hold: what the machine (or RLIMIT_AS) can give."""
    bound = math.inf
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    bound = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:  # what is left of it
            with open("/proc/self/statm") as f:
                used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            bound = min(bound, max(soft - used, 0))
    except (ImportError, OSError, ValueError, IndexError):
        pass
    if bound == math.inf:
        bound = 1 << 34  # 16 GiB when the system does not say
    return int(bound)


def read_npz(path, where, error, compressed=False, limit=None):
    """``{name: array}`` of every entry of the .npz at ``path``, in file order.

    ``where`` names the file in messages; ``error`` is the GraphnetError class
    raised. ``compressed=False`` refuses deflated entries (checkpoints are
    written uncompressed); ``limit`` bounds the total bytes of the arrays
    (default: ``memory_bound()``).
    """
    path = os.fspath(path)
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise error(f"{where} does not exist") from None
    except IsADirectoryError:
        raise error(f"{where} is a folder, not a file") from None
    except Exception as exc:  # BadZipFile, OSError, EOFError, ValueError on a damaged file
        raise error(f"{where} is not a readable .npz file ({type(exc).__name__}: {exc}); it "
                    f"is truncated, corrupted or not an .npz file") from None
    limit = memory_bound() if limit is None else limit
    with zf:
        try:
            infos = zf.infolist()
            _check_layout(zf, infos, os.path.getsize(path), where, error, compressed)
            headers, total = [], 0
            for info in infos:
                with zf.open(info) as member:
                    shape, fortran, dtype, start = _read_header(member, info, where, error)
                size = math.prod(shape) * dtype.itemsize
                if size != info.file_size - start:
                    raise error(f"{where}: entry {info.filename!r} claims {size} bytes of "
                                f"data but holds {info.file_size - start}; the file is "
                                f"truncated or corrupted")
                total += size
                headers.append((info, shape, fortran, dtype, start))
            if total > limit:
                raise error(f"{where}: its arrays need {_human(total)}, more than the "
                            f"{_human(limit)} of memory available; refusing to read it")
            arrays = {}
            for info, shape, fortran, dtype, start in headers:
                key = info.filename[:-4]
                if key in arrays:
                    raise error(f"{where}: entry {key!r} appears twice")
                arrays[key] = _read_data(zf, info, shape, fortran, dtype, start)
            return arrays
        except error:
            raise
        except MemoryError:
            raise error(f"{where}: its arrays need more memory than is available; refusing "
                        f"to read it") from None
        except Exception as exc:  # a CRC mismatch, a short read, a bad deflate stream
            raise error(f"{where} is corrupted ({type(exc).__name__}: {exc}); restore it or "
                        f"use an earlier copy") from None


def _check_layout(zf, infos, file_size, where, error, compressed):
    """Entries are .npy files lying one after another inside the file, never overlapping."""
    spans = []
    with open(zf.filename, "rb") as f:
        for info in infos:
            name = info.filename
            if not name.endswith(".npy"):
                raise error(f"{where}: unexpected entry {name!r}; an .npz file holds .npy "
                            f"arrays only")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise error(f"{where}: entry {name!r} uses an unsupported compression")
            if info.compress_type != zipfile.ZIP_STORED and not compressed:
                raise error(f"{where}: entry {name!r} is compressed; graphnet writes "
                            f"checkpoints uncompressed")
            if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
                raise error(f"{where}: entry {name!r} is stored with two different sizes; the "
                            f"file is corrupted")
            f.seek(info.header_offset)
            head = f.read(_LOCAL_HEADER.size)
            if len(head) != _LOCAL_HEADER.size or head[:4] != b"PK\x03\x04":
                raise error(f"{where}: entry {name!r} points outside the file or at no entry; "
                            f"the file is truncated or corrupted")
            fields = _LOCAL_HEADER.unpack(head)
            start = info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1]
            spans.append((info.header_offset, start + info.compress_size, name))
    spans.sort()
    end_of_data = zf.start_dir if hasattr(zf, "start_dir") else file_size
    for (lo, hi, name), nxt in zip(spans, spans[1:] + [(min(end_of_data, file_size), 0, None)]):
        if hi > nxt[0]:
            what = (f"overlaps entry {nxt[2]!r}" if nxt[2] else
                    "is larger than the file can hold")
            raise error(f"{where}: entry {name!r} {what}; the file is crafted or corrupted, "
                        f"refusing to read it")


def _read_header(member, info, where, error):
    """(shape, fortran_order, dtype, data offset) of one entry, plain numbers only."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(member,
                                                             max_header_size=_HEADER_LIMIT)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(member,
                                                             max_header_size=_HEADER_LIMIT)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except (ValueError, SyntaxError, TypeError) as exc:  # a bad CRC is "corrupted", outside
        raise error(f"{where}: entry {info.filename!r} is not a readable array "
                    f"({exc})") from None
    if dtype.hasobject:
        raise error(f"{where}: entry {info.filename!r} holds Python objects (a pickle), which "
                    f"graphnet never loads: it could run code")
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise error(f"{where}: entry {info.filename!r} has dtype {dtype}, not a plain numeric "
                    f"array")
    return shape, fortran, dtype, member.tell()


def _read_data(zf, info, shape, fortran, dtype, start):
    """Read one entry's data into a new array of its final shape, checking the CRC."""
    out = np.empty(math.prod(shape), dtype)
    view = memoryview(out).cast("B")
    with zf.open(info) as member:
        member.read(start)
        filled = 0
        while filled < len(view):
            n = member.readinto(view[filled:filled + _CHUNK])  # no full-size bytes copy
            if not n:
                raise EOFError(f"entry {info.filename!r} ends early")
            filled += n
        if member.read(1):  # also where zipfile checks the CRC of the whole entry
            raise ValueError(f"entry {info.filename!r} holds more than its header says")
    if fortran:
        return out.reshape(shape[::-1]).T
    return out.reshape(shape)


def _human(n):
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
