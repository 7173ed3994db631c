"""The step benchmark keeps running and keeps comparing like with like (no timing asserted)."""

import importlib.util
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_step.py"


def test_bench_step_runs_the_same_math_as_numpy(capsys):
    spec = importlib.util.spec_from_file_location("bench_step", PATH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--steps", "2", "--warmup", "0", "--batch", "8"])
    engine_loss, numpy_loss = result["first_losses"]
    assert engine_loss == pytest.approx(numpy_loss, rel=1e-6)
    assert result["drift"] < 1e-6
    assert result["graphnet_us"] > 0 and result["numpy_us"] > 0
    assert "us/step" in capsys.readouterr().out
