"""`darts inference prep-data sentinel2` and `readiness` end to end against the sandbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from darts.cli.main import main
from darts.net.guard import forbid_sockets
from darts.sandbox.layout import WorldLayout
from darts.sandbox.servers.faults import FaultConfig
from darts.sandbox.service import Sandbox
from darts.store.scenes import SceneStore

DEFAULT_KEYS = ["B02_10m", "B03_10m", "B04_10m", "B08_10m", "SCL_20m"]


def manifest(world: WorldLayout) -> dict:
    return json.loads(world.manifest.read_text())


def expected_scenes(world: WorldLayout, tile: str, max_cloud=10.0, max_snow=10.0) -> list[str]:
    return sorted(
        s["id"]
        for s in manifest(world)["scenes"]
        if s["tile"] == tile and s["eo:cloud_cover"] <= max_cloud and s["eo:snow_cover"] <= max_snow
    )


def s3_gets(sandbox: Sandbox) -> list[dict]:
    return [r for r in sandbox.injector("s3").requests() if r["method"] == "GET"]


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_tile_staging_then_rerun_downloads_nothing(
    sandbox: Sandbox, sandbox_world: WorldLayout, data_dir: Path, capsys
) -> None:
    tile = manifest(sandbox_world)["main_tile"]
    expected = expected_scenes(sandbox_world, tile)
    assert expected, "the world should have clear scenes on its main tile"
    ids_file = data_dir / "ids.json"
    args = [
        "inference",
        "prep-data",
        "sentinel2",
        "--pipeline.tile-ids",
        tile,
        "--pipeline.prep-data-scene-id-file",
        str(ids_file),
        "--optical",
    ]
    sandbox.clear_requests()
    code, out, _ = run(args, capsys)
    assert code == 0, out
    assert sorted(json.loads(ids_file.read_text())["scene_ids"]) == expected
    assert len(s3_gets(sandbox)) == len(expected) * len(DEFAULT_KEYS)
    store = SceneStore(data_dir / "sentinel2" / "cdse")
    for scene_id in expected:
        assert store.stored_bands(scene_id) == set(DEFAULT_KEYS)
        assert store.verify(scene_id) == []
    report_files = list((data_dir / "logs").glob("prep-data-*.json"))
    assert len(report_files) == 1
    report = json.loads(report_files[0].read_text())
    assert sorted(report["ready"]) == expected and report["failed_count"] == 0

    sandbox.clear_requests()
    code, out, _ = run([*args[:4], f"T{tile}", *args[5:]], capsys)
    assert code == 0
    assert s3_gets(sandbox) == []
    assert out.count(" cached ") == len(expected)


def test_dry_run_lists_without_staging(
    sandbox: Sandbox, sandbox_world: WorldLayout, data_dir: Path, capsys
) -> None:
    tile = manifest(sandbox_world)["main_tile"]
    sandbox.clear_requests()
    code, out, _ = run(
        ["inference", "prep-data", "sentinel2", "--tile-ids", tile, "--optical", "--dry-run"],
        capsys,
    )
    assert code == 0
    assert "to download" in out and "dry run:" in out
    for scene_id in expected_scenes(sandbox_world, tile):
        assert scene_id in out
    assert s3_gets(sandbox) == []
    assert not (data_dir / "sentinel2").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "say what to stage"),
        (["--aux", "--offline"], "cannot run with --offline"),
        (["--optical", "--offline"], "cannot run with --offline"),
        (["--optical", "--no-raw-data-store"], "--no-raw-data-store keeps nothing"),
        (
            ["--optical", "--raw-data-source", "gee", "--ee-credentials-file", "/no/such/key"],
            "credentials file /no/such/key does not exist",
        ),
        (["--optical", "--start-date", "2024-13-01"], "start-date"),
        (["--optical", "--months", "13"], "month"),
    ],
)
def test_bad_requests_are_one_line_and_touch_nothing(
    data_dir: Path, capsys, extra: list[str], message: str
) -> None:
    code, _, err = run(
        ["inference", "prep-data", "sentinel2", "--tile-ids", "08WNB", *extra], capsys
    )
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert not (data_dir / "sentinel2").exists()


def test_a_failing_scene_makes_the_exit_code_non_zero(
    sandbox: Sandbox, sandbox_world: WorldLayout, data_dir: Path, capsys
) -> None:
    tile = manifest(sandbox_world)["main_tile"]
    scenes = expected_scenes(sandbox_world, tile)
    broken = scenes[0]
    sandbox.set_faults("s3", FaultConfig(error_rate=1.0, error_statuses=(503,), match=broken))
    try:
        code, out, _ = run(
            [
                "inference",
                "prep-data",
                "sentinel2",
                "--tile-ids",
                tile,
                "--optical",
                "--max-retries",
                "0",
            ],
            capsys,
        )
    finally:
        sandbox.set_faults("s3", FaultConfig())
    assert code == 1
    store = SceneStore(data_dir / "sentinel2" / "cdse")
    assert store.stored_bands(broken) == set()
    for scene_id in scenes[1:]:
        assert store.stored_bands(scene_id) == set(DEFAULT_KEYS)
    assert "failed" in out


def test_readiness_offline_lists_everything_missing(
    sandbox: Sandbox, sandbox_world: WorldLayout, data_dir: Path, capsys
) -> None:
    tile = manifest(sandbox_world)["main_tile"]
    staged = expected_scenes(sandbox_world, tile)[:1]
    code, _, _ = run(
        ["inference", "prep-data", "sentinel2", "--scene-ids", *staged, "--optical", "--aux"],
        capsys,
    )
    assert code == 0
    other = next(s["id"] for s in manifest(sandbox_world)["scenes"] if s["tile"] != tile)
    with forbid_sockets() as audit:
        code, out, _ = run(["inference", "readiness", "sentinel2", "--scene-ids", *staged], capsys)
        assert code == 0 and "ready for an offline run" in out
        code, out, _ = run(
            [
                "inference",
                "readiness",
                "sentinel2",
                "--scene-ids",
                *staged,
                other,
                "--bands",
                "B02",
                "B05",
            ],
            capsys,
        )
    assert audit.blocked == []
    assert code == 1
    assert f"{staged[0]}: missing band(s) B05_20m" in out
    assert f"{other}: scene not in the raw-data store" in out


def test_readiness_with_tile_ids_needs_the_saved_id_file(data_dir: Path, capsys) -> None:
    with forbid_sockets():
        code, _, err = run(
            [
                "inference",
                "readiness",
                "sentinel2",
                "--tile-ids",
                "08WNB",
                "--prep-data-scene-id-file",
                str(data_dir / "missing.json"),
            ],
            capsys,
        )
    assert code == 2
    assert "prep-data" in err and "missing.json" in err


def test_killed_staging_run_is_completed_by_a_rerun(
    sandbox: Sandbox, sandbox_world: WorldLayout, data_dir: Path, tmp_path: Path
) -> None:
    tile = manifest(sandbox_world)["main_tile"]
    expected = expected_scenes(sandbox_world, tile)
    args = [
        sys.executable,
        "-m",
        "darts.cli.main",
        "inference",
        "prep-data",
        "sentinel2",
        "--tile-ids",
        tile,
        "--optical",
    ]
    env = dict(os.environ)
    # Slow every S3 answer so the kill lands in the middle of the run.
    sandbox.set_faults("s3", FaultConfig(latency_ms=150))
    store = SceneStore(data_dir / "sentinel2" / "cdse")
    try:
        process = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(store.stored_bands(s) for s in expected):
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        sandbox.set_faults("s3", FaultConfig())
    complete = [s for s in expected if store.stored_bands(s) == set(DEFAULT_KEYS)]
    assert len(complete) < len(expected), "the kill came too late to test anything"

    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    for scene_id in expected:
        assert store.stored_bands(scene_id) == set(DEFAULT_KEYS)
        assert store.verify(scene_id) == []


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (["--scene-ids", "S2B_MSIL2A_2024"], "S2B_MSIL2A_2024"),
        (["--scene-ids", "20230701T194909_20230701T195350_T11XNA"], "Earth Engine"),
        (["--tile-ids", "08WNB", "--scene-ids", "x"], "--scene-ids"),
        (["--aoi-file", "{tmp}/aoi.gpkg"], "aoi.gpkg"),
        (["--scene-id-file", "{tmp}/ids.json"], "ids.json"),
    ],
)
def test_bad_selections_are_one_clear_line(
    data_dir: Path, tmp_path: Path, capsys, selection: list[str], message: str
) -> None:
    (tmp_path / "aoi.gpkg").write_text("not a geopackage")
    (tmp_path / "ids.json").write_text('["S2B_MSIL2A_bad"]')
    args = [a.replace("{tmp}", str(tmp_path)) for a in selection]
    with forbid_sockets(allow_loopback=True):
        code, _, err = run(["inference", "prep-data", "sentinel2", *args, "--optical"], capsys)
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
