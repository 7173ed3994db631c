"""The wheel works on its own: build it, install it into a fresh virtual environment,
and run the main job from there, far from the source tree.

This proves that the digits data and the model schema ship inside the
package and that the ``graphnet`` console script is declared. The venv sees
the site-packages of the Python running the tests for numpy and the other
dependencies (so the test runs offline, and works the same whether that Python
is the system's or a venv's, as after the README's ``pip install``), but its
own site-packages come first, so it imports the installed wheel; the test
checks that too.
"""

import json
import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def can_build_offline():
    """setuptools builds wheels itself from 70.1 on; older ones need the `wheel` package."""
    import importlib.metadata
    import importlib.util
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    major, minor = (int(p) for p in version.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def build_wheel(src, dist):
    """Build offline with the installed setuptools when it can; else let pip fetch a
    build backend into an isolated environment."""
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)]
    if can_build_offline():
        cmd.insert(4, "--no-build-isolation")
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = list(dist.glob("graphnet-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def see_our_site_packages(python):
    """Let the venv of ``python`` import the dependencies this Python has installed.

    ``system_site_packages`` would give it the base interpreter's, which lack
    them when the tests run inside a venv. A .pth file lists our site folders
    instead: appended after the venv's own, and without running their .pth
    files, so an editable install of graphnet here stays out of sight.
    """
    ours = [p for p in [*site.getsitepackages(), site.getusersitepackages()]
            if os.path.isdir(p)]
    theirs = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                             "['purelib'])"], capture_output=True, text=True, check=True)
    Path(theirs.stdout.strip(), "our_site_packages.pth").write_text("\n".join(ours) + "\n")


def test_wheel_installs_and_runs_the_main_job(tmp_path):
    src = tmp_path / "src"  # build from a copy: setuptools writes build/ next to the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "graphnet", src / "graphnet",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheel = build_wheel(src, tmp_path / "dist")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    see_our_site_packages(python)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True)

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MPLBACKEND"] = "Agg"
    work = tmp_path / "work"  # far from the source tree
    work.mkdir()
    shutil.copy(ROOT / "examples" / "models" / "digits_mlp.json", work / "digits_mlp.json")
    where = subprocess.run([python, "-c", "import graphnet; print(graphnet.__file__)"],
                           cwd=work, capture_output=True, text=True, check=True,
                           env=env).stdout
    assert Path(where.strip()).is_relative_to(env_dir), where

    installed = Path(where.strip()).parent
    assert (installed / "data" / "digits.npz").is_file()
    assert list((installed / "schema").glob("*.json")), "the model schema is not in the wheel"

    script = env_dir / "bin" / "graphnet"
    job = subprocess.run([script, "train", "digits_mlp.json", "--quiet"], cwd=work,
                         capture_output=True, text=True, env=env)
    assert job.returncode == 0, job.stdout + job.stderr
    run = work / "runs" / "digits_mlp"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.97, metrics
    assert {"model.npz", "graph.svg", "curves.png"} <= {p.name for p in run.iterdir()}
    assert "test loss" in job.stdout.strip().splitlines()[-1]

    schema = subprocess.run([script, "schema"], cwd=work, capture_output=True, text=True,
                            env=env)
    assert schema.returncode == 0, schema.stderr
    assert "nodes" in json.loads(schema.stdout)["properties"]
