import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_learns_xor():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")],
                         capture_output=True, text=True, check=True).stdout
    assert "accuracy 100%" in out


def test_every_submodule_the_docs_use_is_reachable_from_import_graphnet():
    """``graphnet.datasets.load("moons")`` after a bare ``import graphnet``, as docs/cli.md
    shows, and every other ``graphnet.<module>.<name>`` the docs mention (fresh process)."""
    import re
    texts = [p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]]
    used = sorted({m for t in texts
                   for m in re.findall(r"\b(?:gn|graphnet)\.([a-z_]+\.[A-Za-z_]+)", t)})
    assert "datasets.load" in used
    # gn.render is the function of the module graphnet.render, as DESIGN.md names it
    code = ("import importlib, inspect, graphnet\n"
            "assert len(graphnet.datasets.load('moons')['train']['x']) == 800\n"
            f"for used in {used!r}:\n"
            "    mod, name = used.split('.')\n"
            "    obj = getattr(graphnet, mod)\n"
            "    if not inspect.ismodule(obj):\n"
            "        obj = importlib.import_module('graphnet.' + mod)\n"
            "        assert getattr(graphnet, mod) is getattr(obj, mod), used\n"
            "    assert hasattr(obj, name), used\n"
            "try:\n    graphnet.no_such_module\nexcept AttributeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "has no attribute 'no_such_module'" in out.stdout
