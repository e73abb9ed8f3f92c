"""``darts demo``: the whole chain on the sandbox's synthetic world, scored against its
ground truth.

1. build (once, then cached) the small sandbox world and start its stand-ins;
2. ``darts inference prep-data sentinel2 --optical --aux`` for the demo's scenes
   (tiles 08WNB and 08WPB, 2024), against the stand-ins;
3. stop the stand-ins, then ``darts inference sentinel2-sequential --offline`` with the
   packaged demo model (:data:`darts.demo.DEMO_MODEL`);
4. compare the detected polygons with the ground-truth slumps inside the processed
   scenes' valid-data extents (:func:`darts.processing.evaluate.match_polygons`).

Steps 2 and 3 are the real commands, run in this process through ``run_command``
(``darts.cli.main.main``), so what the demo shows is exactly what a user's commands
do. Endpoints and data directories are passed as flags, which take precedence over
environment variables: the user's own settings cannot redirect the demo.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from darts.demo import DEMO_MODEL, DEMO_QUARTERS, DEMO_TILES, DEMO_YEARS
from darts.demo.data import (
    RunCommand,
    build_demo_world,
    dir_flags,
    prep_data_argv,
    running_sandbox,
    selection_flags,
)
from darts.pipelines.step_clock import StepClock
from darts.processing.evaluate import MatchScores

Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoRequest:
    demo_dir: Path
    """The darts data dir of the demo: staged scenes, cubes, outputs, logs."""
    sandbox_root: Path
    """Where the sandbox world is built and cached."""
    model_file: Path = DEMO_MODEL
    tiles: Sequence[str] = DEMO_TILES
    years: Sequence[int] = DEMO_YEARS
    quarters: Sequence[int] = DEMO_QUARTERS
    raw_data_source: str = "cdse"
    """Where the optical data comes from: ``cdse``, ``cdse-mosaic`` or ``gee``."""
    max_cloud_cover: float = 10.0
    max_snow_cover: float = 10.0


@dataclass
class DemoReport:
    demo_dir: Path
    world: Path
    output_dir: Path
    scene_ids: list[str] = field(default_factory=list)
    exit_code: int = 0
    failed_step: str | None = None
    run_dir: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)
    scores: MatchScores | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def run_demo(request: DemoRequest, run_command: RunCommand, say: Say = print) -> DemoReport:
    """Run the demo; a failed step ends it with that step's exit code in the report."""

    demo_dir = request.demo_dir.resolve()
    demo_dir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    clock = StepClock(seconds)
    with clock("world"):
        say(f"sandbox world: {request.sandbox_root / 'small-seed0'} (built once, then cached)")
        world = build_demo_world(request.sandbox_root, progress=lambda m: say(f"  {m}"))
    report = DemoReport(demo_dir=demo_dir, world=world.root, output_dir=demo_dir / "out")
    report.seconds = seconds
    selection = selection_flags(
        request.tiles,
        request.years,
        quarters=request.quarters,
        max_cloud_cover=request.max_cloud_cover,
        max_snow_cover=request.max_snow_cover,
    )
    ids_file = demo_dir / "scene-ids.json"
    shown = " ".join(selection)

    with clock("prep-data"), running_sandbox(world, demo_dir / "sandbox.toml") as config:
        say("")
        say(
            f"[1/3] staging: darts inference prep-data sentinel2 {shown} "
            f"--raw-data-source {request.raw_data_source} --optical --aux"
        )
        say(f"      (endpoints from {config}: the sandbox's stand-ins on 127.0.0.1)")
        code = run_command(
            prep_data_argv(config, demo_dir, selection, ids_file, request.raw_data_source)
        )
    if code != 0:
        return _failed(report, "prep-data", code)
    report.scene_ids = list(json.loads(ids_file.read_text()))

    say("")
    say(
        f"[2/3] offline run: darts inference sentinel2-sequential {shown} "
        f"--raw-data-source {request.raw_data_source} --offline "
        f"--model-files {request.model_file}"
    )
    say("      (the stand-ins are stopped: nothing but staged data is used)")
    with clock("inference"):
        code = run_command(_offline_argv(request, demo_dir, selection, ids_file))
    report.run_dir, report.counts = _latest_run(report.output_dir)
    if code != 0:
        return _failed(report, "inference", code)

    with clock("evaluate"):
        say("")
        say("[3/3] comparing the detected polygons with the world's ground-truth slumps")
        report.scores = evaluate_outputs(report.output_dir, report.scene_ids, world.truth)
    return report


def _offline_argv(
    request: DemoRequest, demo_dir: Path, selection: Sequence[str], ids_file: Path
) -> list[str]:
    return [
        # The sandbox config (endpoints only) replaces any DARTS_CONFIG_FILE of the user,
        # whose storage settings could point the run elsewhere.
        "--config-file",
        str(demo_dir / "sandbox.toml"),
        "inference",
        "sentinel2-sequential",
        *dir_flags(demo_dir),
        *selection,
        "--raw-data-source",
        request.raw_data_source,
        "--offline",
        "--prep-data-scene-id-file",
        str(ids_file),
        "--model-files",
        str(request.model_file),
        "--device",
        "cpu",
        "--overwrite",
    ]


def evaluate_outputs(output_dir: Path, scene_ids: Sequence[str], truth_file: Path) -> MatchScores:
    """Detected polygons of the scenes' outputs against the truth, within the union of
    the scenes' valid-data extents."""
    import geopandas as gpd
    import pandas as pd

    from darts.processing.evaluate import match_polygons
    from darts.processing.export import scene_output_dir

    segments, extents = [], []
    for scene_id in scene_ids:
        out_dir = scene_output_dir(output_dir, scene_id)
        # Each scene is in its own CRS; bring all to EPSG:4326 before concatenating.
        segments.append(gpd.read_file(out_dir / "prediction_segments.gpkg").to_crs(4326))
        extents.append(gpd.read_file(out_dir / "prediction_extent.gpkg").to_crs(4326))
    detected = gpd.GeoDataFrame(pd.concat(segments, ignore_index=True), crs=4326)
    area = gpd.GeoDataFrame(pd.concat(extents, ignore_index=True), crs=4326)
    truth = gpd.read_parquet(truth_file)
    return match_polygons(detected, truth, area)


def format_report(report: DemoReport) -> list[str]:
    """The closing lines ``darts demo`` prints."""
    lines = [""]
    if report.counts:
        summary = ", ".join(f"{n} {status}" for status, n in sorted(report.counts.items()))
        lines.append(f"summary:        {summary}")
    lines.append(f"output folder:  {report.output_dir}")
    if report.run_dir is not None:
        lines.append(f"run record:     {report.run_dir}")
    if not report.ok:
        lines.append(
            f"the demo stopped: {report.failed_step} failed (exit code {report.exit_code})"
        )
        return lines
    scores = report.scores
    if scores is not None:
        offset = (
            f"{scores.centroid_offset_m:.1f} m" if scores.centroid_offset_m is not None else "-"
        )
        lines += [
            f"IoU:            {scores.iou:.3f}  (detected vs ground-truth slump area inside "
            f"the {scores.area_m2 / 1e6:.1f} km² the scenes cover)",
            f"slumps found:   {scores.reference_found} of {scores.reference_objects} "
            f"(≥ {50}% of each covered); median centroid offset {offset}",
            f"detections:     {scores.detected_on_reference} of {scores.detected_objects} "
            "lie on a ground-truth slump",
        ]
    total = sum(report.seconds.values())
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds.items())
    lines.append(f"time:           {total:.0f} s ({steps})")
    lines.append(
        "note: the demo model was trained on this synthetic world only; it is not a model "
        "for real Sentinel-2 imagery"
    )
    return lines


def _failed(report: DemoReport, step: str, code: int) -> DemoReport:
    report.exit_code = code
    report.failed_step = step
    return report


def _latest_run(output_dir: Path) -> tuple[Path | None, dict[str, int]]:
    runs = output_dir / "runs"
    if not runs.is_dir():
        return None, {}
    candidates = sorted(p for p in runs.iterdir() if p.is_dir())
    if not candidates:
        return None, {}
    run_dir = max(candidates, key=lambda p: p.stat().st_mtime)
    try:
        counts: dict[str, Any] = json.loads((run_dir / "results.json").read_text())["counts"]
    except (OSError, ValueError, KeyError):
        counts = {}
    return run_dir, {str(k): int(v) for k, v in counts.items()}
