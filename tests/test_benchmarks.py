"""Every benchmark still runs: each script once, as a user types it, on the smallest
settings it has. Nothing here is timed or compared with a target (the numbers of a
smoke run mean nothing); it catches a benchmark that no longer fits the code it
measures, which nothing else would notice until someone needs its numbers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from darts.sandbox.layout import WorldLayout

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_benchmark(script: str, *args: str | Path, cwd: Path) -> str:
    env = dict(os.environ)
    for var in ("DARTS_DATA_DIR", "DARTS_CONFIG_FILE", "DARTS_OFFLINE"):
        env.pop(var, None)
    command = [sys.executable, str(BENCHMARKS / script), *map(str, args)]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{script} failed ({done.returncode}):\n{output[-4000:]}"
    assert "Traceback" not in output, output[-4000:]
    return output


@pytest.fixture(autouse=True)
def _world_built(sandbox_world: WorldLayout) -> None:
    """The small world, built once for the session; the benchmarks find it in the same
    cache (``.sandbox/<digest>/``)."""


def test_inference_benchmark_runs(tmp_path: Path) -> None:
    output = run_benchmark(
        "bench_inference.py", "--world", "small", "--max-patches", "1",
        "--data-dir", tmp_path / "data", cwd=tmp_path,
    )  # fmt: skip
    assert "peak" in output and "overhead" in output


def test_aux_cube_benchmark_runs(tmp_path: Path) -> None:
    output = run_benchmark(
        "bench_aux_cube.py", "--world", "small", "--runs", "1", "--fresh-runs", "1",
        "--candidates", "2048:lz4:9", "--workdir", tmp_path, cwd=tmp_path,
    )  # fmt: skip
    assert "floor" in output


def test_scene_read_benchmark_runs(tmp_path: Path) -> None:
    output = run_benchmark(
        "bench_scene_read.py", "--world", "small", "--runs", "1", "--workdir", tmp_path,
        cwd=tmp_path,
    )  # fmt: skip
    assert "floor" in output


def test_stage_scene_benchmark_runs(tmp_path: Path) -> None:
    output = run_benchmark("bench_stage_scene.py", "--world", "small", "--runs", "1", cwd=tmp_path)
    assert "floor" in output


def test_store_encoding_benchmark_runs(tmp_path: Path) -> None:
    output = run_benchmark(
        "bench_store_encoding.py", "--size", "2048", "--runs", "1", "--workdir", tmp_path,
        cwd=tmp_path,
    )  # fmt: skip
    assert "MB" in output or "MiB" in output
