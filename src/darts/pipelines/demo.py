"""``darts demo``: the whole chain on the sandbox's synthetic world, scored against its
ground truth.

1. build (once, then cached) the small sandbox world and start its stand-ins;
2. discover and stage the demo's scenes (tiles 08WNB and 08WPB, July 2024) with their
   ArcticDEM and TCVIS, against the stand-ins;
3. stop the stand-ins, then run the packaged demo model
   (:data:`darts.demo.DEMO_MODEL`) offline over the staged scenes;
4. compare the detected polygons with the ground-truth slumps inside the processed
   scenes' valid-data extents (:func:`darts.processing.evaluate.match_polygons`).

Steps 2 and 3 go through the public Python API (`darts.Workspace`), which is what the
commands ``darts inference prep-data sentinel2 ... --optical --aux`` and
``darts inference sentinel2-sequential ... --offline`` run too. The workspaces ignore
the environment and take their endpoints from the sandbox's config file, so the user's
own settings cannot redirect the demo.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from darts.demo import DEMO_MODEL, DEMO_QUARTERS, DEMO_TILES, DEMO_YEARS
from darts.demo.data import build_demo_world, demo_workspace, running_sandbox
from darts.errors import DartsError
from darts.pipelines.step_clock import StepClock
from darts.processing.evaluate import MatchScores
from darts.sources.scene_ids import write_scene_id_file

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
    program: str = "darts"
    """How the printed commands start: the ``darts`` script that runs the demo (which
    need not be on the PATH: ``make demo`` runs ``.venv/bin/darts``)."""


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


def run_demo(request: DemoRequest, say: Say = print) -> DemoReport:
    """Run the demo; a failed step ends it with its exit code in the report (2 for a
    problem of the whole step, 1 when scenes or tiles failed)."""

    demo_dir = request.demo_dir.resolve()
    demo_dir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    clock = StepClock(seconds)
    with clock("world"):
        say(f"sandbox world: {request.sandbox_root / 'small-seed0'} (built once, then cached)")
        world = build_demo_world(request.sandbox_root, progress=lambda m: say(f"  {m}"))
    report = DemoReport(demo_dir=demo_dir, world=world.root, output_dir=demo_dir / "out")
    report.seconds = seconds
    ids_file = demo_dir / "scene-ids.json"
    config_file = demo_dir / "sandbox.toml"
    shown = shlex.join(_selection_flags(request))
    source = request.raw_data_source

    with clock("prep-data"), running_sandbox(world, config_file) as config:
        say("")
        staging = [
            "--config-file", str(config), "inference", "prep-data", "sentinel2",
            *_dirs_flags(demo_dir), *_selection_flags(request),
            "--raw-data-source", source, "--optical", "--aux",
        ]  # fmt: skip
        say(f"[1/3] staging (= {shlex.join([request.program, *staging])})")
        say(
            f"      (endpoints from {config}: the sandbox's stand-ins on 127.0.0.1, "
            "running only while the demo stages)"
        )
        try:
            online = demo_workspace(demo_dir, config, source)
            scenes = online.discover(
                tile_ids=request.tiles,
                years=request.years,
                quarters=request.quarters,
                max_cloud_cover=request.max_cloud_cover,
                max_snow_cover=request.max_snow_cover,
            )
            if not scenes:
                raise DartsError(f"no {source} scenes found for {shown}")
            report.scene_ids = [str(scene["id"]) for scene in scenes]
            write_scene_id_file(ids_file, report.scene_ids, scenes)
            staged = online.stage(scenes)
        except DartsError as error:
            say(f"      {error}")
            return _failed(report, "prep-data", error.exit_code)
        for outcome in staged.outcomes:
            say(f"      {outcome.scene_id}: {outcome.status}" + _error_note(outcome.error))
        if staged.failed or staged.aux_failed:
            return _failed(report, "prep-data", 1)

    say("")
    command = shlex.join([request.program, *offline_command(request, demo_dir, ids_file)])
    say(f"[2/3] offline run (= {command})")
    say("      (the stand-ins are stopped: nothing but staged data is used)")
    with clock("inference"):
        try:
            offline = demo_workspace(demo_dir, config_file, source, offline=True)
            run = offline.run(report.scene_ids, [request.model_file], device="cpu", overwrite=True)
        except DartsError as error:
            say(f"      {error}")
            return _failed(report, "inference", error.exit_code)
    report.run_dir, report.counts = run.run_dir, run.counts()
    for result in run.results:
        say(f"      {result.scene_id}: {result.status}" + _error_note(result.error))
    if run.failed:
        return _failed(report, "inference", 1)

    with clock("evaluate"):
        say("")
        say("[3/3] comparing the detected polygons with the world's ground-truth slumps")
        report.scores = evaluate_outputs(report.output_dir, report.scene_ids, world.truth)
    return report


def offline_command(request: DemoRequest, demo_dir: Path, ids_file: Path) -> list[str]:
    """The command line (after ``darts``) that does what the demo's offline step does,
    for the user to copy: every path the demo's workspace uses is pinned, so a
    ``DARTS_FAST_DATA_DIR`` or ``DARTS_LARGE_DATA_DIR`` of the user's own cannot send
    it elsewhere, and so are the device and --overwrite the step runs with."""
    return [
        "inference", "sentinel2-sequential", *_dirs_flags(demo_dir),
        "--scene-id-file", str(ids_file), "--raw-data-source", request.raw_data_source,
        "--offline", "--device", "cpu", "--overwrite", "--model-files", str(request.model_file),
    ]  # fmt: skip


def _dirs_flags(demo_dir: Path) -> list[str]:
    """The demo's workspace keeps everything under its folder (`demo_workspace`)."""
    return [
        item
        for name in ("darts-dir", "fast-dir", "large-dir")
        for item in (f"--{name}", str(demo_dir))
    ]


def _selection_flags(request: DemoRequest) -> list[str]:
    """The demo's selection as the command line's flags, for what the demo prints."""
    flags = ["--tile-ids", *request.tiles]
    for name, values in (("--years", request.years), ("--quarters", request.quarters)):
        if values:
            flags += [name, *(str(v) for v in values)]
    return [
        *flags,
        "--max-cloud-cover",
        f"{request.max_cloud_cover:g}",
        "--max-snow-cover",
        f"{request.max_snow_cover:g}",
    ]


def _error_note(error: str | None) -> str:
    return f" ({error.splitlines()[0]})" if error else ""


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
