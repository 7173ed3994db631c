"""Peak memory of each crafted file ("bomb") of tests/test_hostile.py, per graphnet source.

Each bomb is built once and read by ``graphnet`` in a fresh interpreter under
RLIMIT_AS (default 8 GiB, so that an unbounded read ends as a MemoryError
instead of taking the machine); the peak RSS, exit code and first line of
stderr are printed per source tree, e.g. an older checkout beside this one:

    git archive v0.1-commit | tar -x -C /tmp/old
    python benchmarks/bench_hostile.py --source /tmp/old --source .
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_hostile import BOMBS, run_bounded  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", action="append", help="a graphnet source tree")
    parser.add_argument("--limit-mb", type=int, default=8192)
    args = parser.parse_args()
    sources = [os.path.abspath(s) for s in args.source or [str(ROOT)]]
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in BOMBS.items():
            folder = Path(tmp) / name
            folder.mkdir()
            command, _ = build(folder)
            size = sum(p.stat().st_size for p in folder.iterdir())
            for source in sources:
                code, err, peak = run_bounded(command, folder, args.limit_mb, pythonpath=source)
                first = (err.strip().splitlines() or [""])[-1][:90]
                print(f"{name:16} {size / 1e6:8.2f} MB file  {source:28.28}  exit {code:3}  "
                      f"peak {peak:7.0f} MB  {first}", flush=True)


if __name__ == "__main__":
    main()
