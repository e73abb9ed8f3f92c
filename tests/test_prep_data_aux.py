"""`prep-data --aux` and the auxiliary half of the readiness check, against the sandbox."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from darts.cli.main import main
from darts.grid.cube import Window
from darts.net.guard import forbid_sockets
from darts.sandbox.layout import WorldLayout
from darts.sandbox.service import Sandbox
from darts.sources.arcticdem import arcticdem_spec
from darts.sources.tcvis import tcvis_period, tcvis_spec
from darts.store.datacube import Datacube


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def stage_aux(scene: dict, arcticdem_dir: Path, capsys) -> tuple[int, str, str]:
    """`prep-data --aux` for ``scene`` with the ArcticDEM cube at ``arcticdem_dir``."""
    args = ["inference", "prep-data", "sentinel2", "--scene-ids", scene["id"], "--aux"]
    return run([*args, "--arcticdem-dir", str(arcticdem_dir)], capsys)


def main_scene(world: WorldLayout) -> dict:
    manifest = json.loads(world.manifest.read_text())
    tile = manifest["main_tile"]
    return sorted(
        (s for s in manifest["scenes"] if s["tile"] == tile and s["eo:cloud_cover"] <= 10),
        key=lambda s: s["id"],
    )[0]


def aux_requests(sandbox: Sandbox) -> list[dict]:
    return [
        r
        for name in ("pgc-data", "pgc-stac", "earthengine")
        for r in sandbox.injector(name).requests()
    ]


def test_aux_staging_fills_both_cubes_once_and_readiness_sees_them(
    sandbox: Sandbox, sandbox_world: WorldLayout, data_dir: Path, capsys
) -> None:
    scene = main_scene(sandbox_world)
    args = ["inference", "prep-data", "sentinel2", "--scene-ids", scene["id"]]

    # Dry run: lists the tiles of both cubes and fetches no pixels.
    sandbox.clear_requests()
    code, out, _ = run([*args, "--aux", "--dry-run"], capsys)
    assert code == 0
    assert "ArcticDEM 10 m" in out and "TCVIS" in out
    assert not any("computePixels" in r["path"] for r in aux_requests(sandbox))
    assert not (data_dir / "auxiliary" / "arcticdem_10m.icechunk").exists()

    code, out, err = run([*args, "--optical", "--aux"], capsys)
    assert code == 0, err
    dem = Datacube.open(data_dir / "auxiliary" / "arcticdem_10m.icechunk", arcticdem_spec(10))
    filled = [r for r in dem.records().values() if r.status == "filled"]
    assert filled, "the scene footprint lies on ArcticDEM tiles of the world"
    year = int(scene["datetime"][:4])
    period = tcvis_period(year)
    tcvis = Datacube.open(data_dir / "auxiliary" / "tcvis.icechunk", tcvis_spec(), group=period)
    assert tcvis.records()
    # Periods live side by side in one repository, never nested (pitfall 12).
    assert not (data_dir / "auxiliary" / "tcvis.icechunk" / period / "tcvis.icechunk").exists()
    # The cube holds real heights where the tile was written.
    record = filled[0]
    window = record.pixel_window
    middle = Window(
        (window.row0 + window.row1) // 2 - 50,
        (window.row0 + window.row1) // 2 + 50,
        (window.col0 + window.col1) // 2 - 50,
        (window.col0 + window.col1) // 2 + 50,
    )
    assert dem.read(middle)["datamask"].values.any() or record.source.get("valid_pixels", 0) > 0

    # A re-run fetches nothing: the cubes are caches.
    sandbox.clear_requests()
    code, out, _ = run([*args, "--optical", "--aux"], capsys)
    assert code == 0
    assert not [
        r
        for r in aux_requests(sandbox)
        if "computePixels" in r["path"] or r["path"].endswith(".tif")
    ]

    # Offline readiness covers both cubes and opens no socket.
    with forbid_sockets() as audit:
        code, out, _ = run(
            ["inference", "readiness", "sentinel2", "--scene-ids", scene["id"]], capsys
        )
    assert audit.blocked == []
    assert code == 0, out
    assert "ready for an offline run" in out


def test_readiness_lists_every_missing_aux_tile(
    sandbox: Sandbox, sandbox_world: WorldLayout, data_dir: Path, capsys
) -> None:
    scene = main_scene(sandbox_world)
    code, _, err = run(
        ["inference", "prep-data", "sentinel2", "--scene-ids", scene["id"], "--optical"], capsys
    )
    assert code == 0, err
    with forbid_sockets() as audit:
        code, out, err = run(
            ["inference", "readiness", "sentinel2", "--scene-ids", scene["id"]], capsys
        )
    assert audit.blocked == []
    assert code == 1
    assert f"{scene['id']}: ArcticDEM 10 m: tile(s)" in out
    assert f"{scene['id']}: TCVIS " in out
    assert "--aux" in err


def test_the_saved_id_file_lets_readiness_name_aux_gaps_of_unstaged_scenes(
    sandbox: Sandbox, sandbox_world: WorldLayout, data_dir: Path, capsys, tmp_path: Path
) -> None:
    # prep-data keeps each scene's footprint in the id file it writes, so an offline
    # check lists the auxiliary tiles of a scene whose optical data is not staged yet.
    scene = main_scene(sandbox_world)
    ids_file = tmp_path / "ids.json"
    code, _, err = run(
        [
            "inference", "prep-data", "sentinel2", "--scene-ids", scene["id"], "--aux",
            "--prep-data-scene-id-file", str(ids_file),
        ],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    saved = json.loads(ids_file.read_text())
    assert saved["type"] == "FeatureCollection" and saved["scene_ids"] == [scene["id"]]
    assert saved["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    readiness = ["inference", "readiness", "sentinel2", "--scene-id-file", str(ids_file)]
    with forbid_sockets() as audit:
        code, out, _ = run(readiness, capsys)
    assert code == 1
    assert f"{scene['id']}: scene not in the raw-data store" in out
    assert ": ArcticDEM" not in out and ": TCVIS" not in out  # those are staged
    shutil.rmtree(data_dir / "auxiliary" / "tcvis.icechunk")
    with forbid_sockets() as more:
        code, out, _ = run(readiness, capsys)
    assert audit.blocked == [] and more.blocked == []
    assert code == 1
    assert f"{scene['id']}: scene not in the raw-data store" in out
    assert f"{scene['id']}: TCVIS " in out and "not staged" in out
    assert ": ArcticDEM" not in out


def test_aux_with_a_cube_of_another_resolution_is_one_clear_error(
    sandbox: Sandbox, sandbox_world: WorldLayout, data_dir: Path, capsys, tmp_path: Path
) -> None:
    scene = main_scene(sandbox_world)
    cube_dir = tmp_path / "dem.icechunk"
    Datacube.open(cube_dir, arcticdem_spec(32))
    code, _, err = stage_aux(scene, cube_dir, capsys)
    assert code == 2
    assert "Traceback" not in err
    assert str(cube_dir) in err


def test_an_arcticdem_cube_of_an_older_darts_is_one_clear_error(
    sandbox: Sandbox, sandbox_world: WorldLayout, data_dir: Path, capsys, tmp_path: Path
) -> None:
    """A cube staged when heights were stored in metres must not be read as
    centimetres: refused before anything is fetched, saying what to do, untouched."""
    import dataclasses

    scene = main_scene(sandbox_world)
    current = arcticdem_spec(10)
    older = dataclasses.replace(
        current,
        variables=tuple(dataclasses.replace(v, scale=None) for v in current.variables),
    )
    cube_dir = tmp_path / "arcticdem_10m.icechunk"
    Datacube.open(cube_dir, older)
    before = sorted(p.relative_to(cube_dir) for p in cube_dir.rglob("*"))
    sandbox.clear_requests()
    code, _, err = stage_aux(scene, cube_dir, capsys)
    assert code == 2
    assert "Traceback" not in err
    assert str(cube_dir) in err and "stage the cube again" in err
    assert not [r for r in aux_requests(sandbox) if r["path"].endswith(".tif")]
    assert sorted(p.relative_to(cube_dir) for p in cube_dir.rglob("*")) == before


def test_the_pipeline_reads_heights_alone_and_they_carry_the_data_mask(
    sandbox: Sandbox, sandbox_world: WorldLayout, data_dir: Path, capsys
) -> None:
    from darts.cli.commands import ALL_COMMANDS, GROUP_HELP
    from darts.cli.main import resolve_command
    from darts.cli.parser import build_parser
    from darts.net.http import HttpClient
    from darts.pipelines.aux_data import AuxCubes
    from darts.pipelines.aux_regions import regions_for_scenes
    from darts.pipelines.runtime import runtime_of
    from darts.store.scenes import SceneStore

    scene = main_scene(sandbox_world)
    code, _, err = run(
        ["inference", "prep-data", "sentinel2", "--scene-ids", scene["id"], "--optical", "--aux"],
        capsys,
    )
    assert code == 0, err
    args = build_parser(ALL_COMMANDS, GROUP_HELP).parse_args(
        ["inference", "readiness", "sentinel2", "--scene-ids", scene["id"]]
    )
    runtime = runtime_of(resolve_command(args))
    item = SceneStore(runtime.paths.raw_data_store).item(scene["id"])
    assert item is not None
    region = regions_for_scenes([item])[0]
    # A buffer wide enough to reach beyond the world's terrain, so the mask has gaps;
    # the tiles that adds are fetched from the sandbox.
    buffer_m = 25_000.0
    with HttpClient(runtime.net) as http:
        cubes = AuxCubes(runtime, http, resolution_m=10)
        heights = cubes.load_dem(region, buffer_m)
        everything = cubes.load_dem(region, buffer_m, variables=None)
    assert list(heights.data_vars) == ["dem"]
    assert sorted(everything.data_vars) == ["datamask", "dem"]
    # What makes reading the mask unnecessary: no height where the mask says no data.
    mask = everything["datamask"].values
    assert 0 < int(mask.sum()) < mask.size
    assert np.array_equal(np.isfinite(heights["dem"].values), mask == 1)
