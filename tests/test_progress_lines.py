"""Progress without a terminal: plain lines per scene and at most every interval, no
carriage returns; ``--no-progress`` for none (issue 17, item 5)."""

from __future__ import annotations

import json
from pathlib import Path

from darts.cli.main import main
from darts.cli.progress_lines import ProgressLines
from darts.pipelines.events import BatchDone, RunStarted, SceneFinished, SceneStaged, StagingStarted
from darts.pipelines.prep_data import SceneOutcome
from darts.pipelines.sequential import SceneResult
from darts.pipelines.staging import StageProgress
from darts.sandbox.layout import WorldLayout


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _progress(scene: str, done: int) -> StageProgress:
    return StageProgress(scene, "B02_10m", "fetched", done, 100, 0, 5)


def test_a_line_per_scene_and_at_most_one_per_interval_between() -> None:
    clock, lines = Clock(), []
    sink = ProgressLines(30.0, clock=clock, write=lines.append)
    sink.on_event(StagingStarted(2, 2_000_000_000))
    for step in range(1, 11):  # ten updates over 50 s: one line when 30 s have passed
        clock.now = step * 5.0
        sink.on_event(_progress("a", step * 100_000_000))
    sink.on_event(SceneStaged(SceneOutcome("a", "downloaded")))
    assert lines == [
        "progress: staging 0/2 scenes, 600.0 MB of 2.0 GB downloaded",
        "progress: staging 1/2 scenes, 1.0 GB of 2.0 GB downloaded",
    ]
    lines.clear()
    sink.on_event(RunStarted(2, "runs/x"))
    clock.now = 100.0
    sink.on_event(BatchDone("a", 3, 10))
    clock.now = 101.0
    sink.on_event(BatchDone("a", 4, 10))  # within the interval: no line
    sink.on_event(SceneFinished(SceneResult("a", "done")))
    assert lines == [
        "progress: inference 0/2 scenes (a: patch batches 3/10)",
        "progress: inference 1/2 scenes",
    ]
    assert not any("\r" in line for line in lines)


def _scene(world: WorldLayout) -> str:
    manifest = json.loads(world.manifest.read_text())
    tile = manifest["main_tile"]
    return sorted(
        s["id"]
        for s in manifest["scenes"]
        if s["tile"] == tile and s["eo:cloud_cover"] <= 10 and s["eo:snow_cover"] <= 10
    )[0]


def test_prep_data_without_a_terminal_writes_progress_lines_and_no_progress_silences_them(
    sandbox_world: WorldLayout, data_dir: Path, capsys
) -> None:
    scene = _scene(sandbox_world)
    args = ["inference", "prep-data", "sentinel2", "--scene-ids", scene, "--optical"]
    assert main([*args, "--no-progress"]) == 0
    _, err = capsys.readouterr()
    assert "progress:" not in err
    # Staged already: the second run finds it cached and still says so in a line.
    assert main([*args, "--log-plain"]) == 0
    _, err = capsys.readouterr()
    (line,) = [line for line in err.splitlines() if line.startswith("progress:")]
    assert line.startswith("progress: staging 1/1 scenes") and "\r" not in err
