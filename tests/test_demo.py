"""`darts demo` and the demo model: the whole chain on the small sandbox world finds
the world's ground-truth slumps in the right place; the polygon scores are right on
shapes whose overlap can be worked out by hand."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
import shapely
from shapely.affinity import translate

from darts.demo import DEMO_MODEL, DEMO_TILES, DEMO_YEARS
from darts.pipelines.demo import evaluate_outputs
from darts.processing.evaluate import match_polygons
from darts.processing.export import scene_output_dir
from darts.processing.models import load_model
from darts.sandbox.layout import WorldLayout
from darts.sources.scene_ids import read_scene_id_file

UTM_8N = "EPSG:32608"
"""Tiles 08WNB and 08WPB are in UTM zone 8 north."""

# -- match_polygons on hand-computable shapes ------------------------------------------


def squares(*boxes: tuple[float, float, float, float], crs: str = UTM_8N) -> gpd.GeoDataFrame:
    # Near the sandbox world (about 69° N, 133° W); coordinates in metres.
    x0, y0 = 500_000.0, 7_650_000.0
    geometries = [shapely.box(x0 + a, y0 + b, x0 + c, y0 + d) for a, b, c, d in boxes]
    return gpd.GeoDataFrame(geometry=geometries, crs=crs)


def test_iou_of_overlapping_squares() -> None:
    detected = squares((0, 0, 100, 100))
    reference = squares((25, 0, 125, 100))
    scores = match_polygons(detected, reference)
    # ∩ = 75 × 100, ∪ = 125 × 100: 0.6, measured in an equal-area CRS.
    assert scores.iou == pytest.approx(0.6, rel=1e-3)
    assert scores.intersection_m2 == pytest.approx(7_500, rel=1e-3)
    assert scores.union_m2 == pytest.approx(12_500, rel=1e-3)
    assert scores.detected_m2 == pytest.approx(scores.reference_m2, rel=1e-6)
    # 75 % of the reference is covered, and the detection's centroid (x=50) is on it.
    assert (scores.reference_found, scores.reference_objects) == (1, 1)
    assert (scores.detected_on_reference, scores.detected_objects) == (1, 1)


def test_identical_polygons_in_different_crs_match_exactly() -> None:
    reference = squares((0, 0, 200, 100), (1000, 1000, 1100, 1100))
    detected = reference.to_crs(4326)  # the same ground, another CRS
    scores = match_polygons(detected, reference)
    assert scores.iou == pytest.approx(1.0, abs=1e-6)
    assert scores.reference_found == 2 == scores.reference_objects
    assert scores.detected_on_reference == 2 == scores.detected_objects
    assert scores.centroid_offset_m == pytest.approx(0.0, abs=0.01)
    assert scores.recall == scores.precision == 1.0


def test_a_georeferencing_shift_shows_in_iou_and_centroid_offset() -> None:
    reference = squares((0, 0, 100, 100))
    shifted = squares((20, 0, 120, 100))  # 20 m east: ∩ 80 × 100, ∪ 120 × 100
    scores = match_polygons(shifted, reference)
    assert scores.iou == pytest.approx(80 / 120, rel=1e-3)
    assert scores.reference_found == 1
    # The covered part (x 20..100) has its centroid 10 m east of the truth's.
    assert scores.centroid_offset_m == pytest.approx(10.0, rel=1e-2)
    far = match_polygons(squares((300, 0, 400, 100)), reference)
    assert far.iou == 0.0
    assert far.reference_found == 0
    assert far.centroid_offset_m is None


def test_only_the_evaluated_area_counts_and_overlapping_scenes_count_once() -> None:
    # Two scenes saw the same detection; one reference object lies outside both.
    detected = squares((0, 0, 100, 100), (0, 0, 100, 100))
    reference = squares((0, 0, 100, 100), (5000, 5000, 5100, 5100))
    area = squares((-500, -500, 500, 500))
    scores = match_polygons(detected, reference, area)
    assert scores.iou == pytest.approx(1.0, abs=1e-6)
    assert scores.reference_objects == 1  # the far one is in no scene: no miss
    assert scores.detected_objects == 1  # dissolved
    assert scores.area_m2 == pytest.approx(1_000_000, rel=1e-3)
    # Without the area, the far reference object is a miss: ∩ 1e4 / ∪ 2e4.
    assert match_polygons(detected, reference).iou == pytest.approx(0.5, rel=1e-3)


def test_no_detections_scores_zero_and_missing_crs_is_refused() -> None:
    reference = squares((0, 0, 100, 100))
    empty = gpd.GeoDataFrame(geometry=[], crs=UTM_8N)
    scores = match_polygons(empty, reference)
    assert scores.iou == 0.0
    assert scores.detected_objects == 0
    assert scores.reference_found == 0
    with pytest.raises(ValueError, match="no CRS"):
        match_polygons(gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1)]), reference)


# -- the packaged demo model ------------------------------------------------------------


def test_demo_model_ships_small_in_the_darts_layout() -> None:
    assert DEMO_MODEL.is_file()
    assert DEMO_MODEL.stat().st_size <= 3 * 1024 * 1024
    assert (DEMO_MODEL.parent / "MODEL.md").is_file()
    import torch

    model = load_model(DEMO_MODEL, torch.device("cpu"))
    assert model.spec.layout == "darts"
    assert model.spec.bands[:4] == ("red", "green", "blue", "nir")
    assert len(model.spec.bands) == model.spec.in_channels == 13


# -- `darts demo` end to end ------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(sandbox_world: WorldLayout, tmp_path_factory: pytest.TempPathFactory):
    """One `darts demo` run in a child process, the way a user starts it."""
    return run_demo_command(sandbox_world, tmp_path_factory)


def run_demo_command(
    sandbox_world: WorldLayout, tmp_path_factory: pytest.TempPathFactory, *extra: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    home = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DARTS_", "AWS_"))}
    env["DARTS_DATA_DIR"] = str(home / "darts")
    demo_dir = home / "demo"
    command = [
        sys.executable,
        "-c",
        "import sys; from darts.cli.main import main; sys.exit(main())",
        "demo",
        "--demo-dir",
        str(demo_dir),
        # The world the test session already built (same builder, same seed).
        "--sandbox-root",
        str(sandbox_world.root.parent),
        *extra,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    return done, demo_dir


def test_darts_demo_exits_zero_and_prints_summary_folder_and_iou(demo_run) -> None:
    done, demo_dir = demo_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"summary:\s+2 done", out), out[-2000:]
    assert f"output folder:  {demo_dir / 'out'}" in out
    match = re.search(r"IoU:\s+([0-9.]+)", out)
    assert match, out[-2000:]
    assert float(match.group(1)) >= 0.5
    assert "not a model for real Sentinel-2 imagery" in out


def test_the_offline_command_the_demo_prints_works_when_copied(demo_run, tmp_path: Path) -> None:
    done, demo_dir = demo_run
    assert done.returncode == 0, done.stderr[-3000:]
    match = re.search(r"\[2/3\] offline run \(= (.+)\)$", done.stdout, re.MULTILINE)
    assert match, done.stdout[-2000:]
    program, *argv = shlex.split(match.group(1))
    assert program == "darts"  # the demo ran as `python -c ...`: no script to name
    # A user's own environment: fast and large dirs elsewhere, a config file of theirs.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DARTS_", "AWS_"))}
    env.update(
        DARTS_FAST_DATA_DIR=str(tmp_path / "fast"),
        DARTS_LARGE_DATA_DIR=str(tmp_path / "large"),
        DARTS_CONFIG_FILE=str(demo_dir / "sandbox.toml"),  # the stand-ins are gone
    )
    script = Path(sys.executable).parent / "darts"
    copied = subprocess.run(
        [str(script), *argv], env=env, capture_output=True, text=True, timeout=600
    )
    assert copied.returncode == 0, copied.stdout[-3000:] + copied.stderr[-3000:]
    assert re.search(r"summary: 2 done", copied.stdout), copied.stdout[-2000:]
    assert not (tmp_path / "large").exists() and not (tmp_path / "fast").exists()


@pytest.mark.parametrize("source", ["gee", "cdse-mosaic"])
def test_demo_on_the_other_sources_finds_the_slumps(
    source: str, sandbox_world: WorldLayout, tmp_path_factory: pytest.TempPathFactory
) -> None:
    done, demo_dir = run_demo_command(sandbox_world, tmp_path_factory, "--raw-data-source", source)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    match = re.search(r"IoU:\s+([0-9.]+)", done.stdout)
    assert match, done.stdout[-2000:]
    assert float(match.group(1)) >= 0.5
    scene_ids = list(read_scene_id_file(demo_dir / "scene-ids.json", source=source))
    assert len(scene_ids) == 2
    assert (demo_dir / "sentinel2" / source).is_dir()
    for scene_id in scene_ids:
        assert (scene_output_dir(demo_dir / "out", scene_id) / "probabilities.tif").is_file()


def test_demo_finds_the_ground_truth_slumps_in_the_right_place(
    demo_run, sandbox_world: WorldLayout
) -> None:
    done, demo_dir = demo_run
    assert done.returncode == 0, done.stderr[-3000:]
    output_dir = demo_dir / "out"
    scene_ids = list(read_scene_id_file(demo_dir / "scene-ids.json"))
    manifest = json.loads(sandbox_world.manifest.read_text())
    expected = sorted(
        s["id"]
        for s in manifest["scenes"]
        if s["tile"] in DEMO_TILES and int(s["datetime"][:4]) in DEMO_YEARS
    )
    assert sorted(scene_ids) == expected

    for scene_id in scene_ids:
        out = scene_output_dir(output_dir, scene_id)
        segments = gpd.read_file(out / "prediction_segments.gpkg")
        assert segments.crs == UTM_8N
        assert len(segments) > 0
        with rasterio.open(out / "probabilities.tif") as raster:
            assert raster.crs == UTM_8N
            bounds = shapely.box(*raster.bounds)
        # Polygons lie on the raster they were traced from.
        assert bounds.contains(shapely.union_all(segments.geometry.values))

    scores = evaluate_outputs(output_dir, scene_ids, sandbox_world.truth)
    assert scores.iou >= 0.5, scores
    assert scores.reference_objects > 0
    assert scores.recall >= 0.8, scores
    assert scores.precision >= 0.8, scores
    # Found slumps sit where the truth has them, to well under a 10 m pixel.
    assert scores.centroid_offset_m is not None and scores.centroid_offset_m < 5.0, scores

    # The same detections moved by 100 m (a georeferencing error) would score far lower.
    detected = gpd.GeoDataFrame(
        geometry=[
            translate(g, xoff=100.0)
            for scene_id in scene_ids
            for g in gpd.read_file(
                scene_output_dir(output_dir, scene_id) / "prediction_segments.gpkg"
            ).geometry
        ],
        crs=UTM_8N,
    )
    truth = gpd.read_parquet(sandbox_world.truth)
    assert match_polygons(detected, truth).iou < scores.iou / 2


# -- failures end the demo with a non-zero exit code -----------------------------------


def test_darts_demo_refuses_a_missing_model_before_staging_anything(tmp_path: Path, capsys) -> None:
    from darts.cli.main import main

    demo_dir = tmp_path / "demo"
    code = main(["demo", "--demo-dir", str(demo_dir), "--model-file", str(tmp_path / "no.pt")])
    assert code != 0
    assert "no.pt does not exist" in capsys.readouterr().err
    assert not demo_dir.exists()


def test_a_failing_step_stops_the_demo_with_its_exit_code(
    sandbox_world: WorldLayout, tmp_path: Path
) -> None:
    from darts.pipelines.demo import DemoRequest, format_report, run_demo

    said: list[str] = []
    # A tile the world does not have: discovery finds nothing, staging stops there.
    request = DemoRequest(
        demo_dir=tmp_path / "demo", sandbox_root=sandbox_world.root.parent, tiles=("33UUP",)
    )
    report = run_demo(request, say=said.append)
    assert (report.exit_code, report.failed_step) == (2, "prep-data")
    assert any("no cdse scenes found for --tile-ids 33UUP" in line for line in said)
    assert report.scores is None and report.run_dir is None
    assert "the demo stopped: prep-data failed (exit code 2)" in format_report(report)
    assert not (tmp_path / "demo" / "out").exists()
