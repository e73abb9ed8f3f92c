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


# (script, its smallest settings, a word its report always prints). ``{tmp}`` is the
# test's own folder.
SMOKE_RUNS = {
    "inference": (
        "bench_inference.py",
        ["--world", "small", "--max-patches", "1", "--data-dir", "{tmp}/data"],
        "overhead",
    ),
    "aux cube": (
        "bench_aux_cube.py",
        ["--world", "small", "--runs", "1", "--fresh-runs", "1", "--candidates", "2048:lz4:9",
         "--workdir", "{tmp}"],
        "floor",
    ),
    "scene read": (
        "bench_scene_read.py", ["--world", "small", "--runs", "1", "--workdir", "{tmp}"], "floor"
    ),
    "stage scene": ("bench_stage_scene.py", ["--world", "small", "--runs", "1"], "floor"),
    "stage gee": ("bench_stage_gee.py", ["--world", "small", "--runs", "1"], "requests per scene"),
    "concurrent prep": (
        "bench_concurrent_prep.py",
        ["--world", "small", "--processes", "2", "--stage", "optical", "--latency-ms", "0",
         "--workdir", "{tmp}"],
        "target 1.00×",
    ),
    "faults": (
        "bench_faults.py",
        ["--scenes", "1", "--online-scenes", "1", "--resolution", "32", "--workdir", "{tmp}"],
        "first attempt",
    ),
    "kill trials": (
        "bench_kill_trials.py", ["--trials", "1", "--scenes", "1", "--workdir", "{tmp}"],
        "kills that landed",
    ),
    "store encoding": (
        "bench_store_encoding.py", ["--size", "2048", "--runs", "1", "--workdir", "{tmp}"], "MB"
    ),
    "dask": (
        "bench_dask.py",
        ["--world", "small", "--scenes", "2", "--encoder", "resnet18", "--patch-size", "512",
         "--overlap", "64", "--workdir", "{tmp}/dask"],
        "speed-up",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", SMOKE_RUNS)
def test_benchmark_runs(name: str, tmp_path: Path) -> None:
    script, args, word = SMOKE_RUNS[name]
    output = run_benchmark(script, *(a.format(tmp=tmp_path) for a in args), cwd=tmp_path)
    assert word in output
