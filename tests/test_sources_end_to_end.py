"""Every optical source through the same commands, against the sandbox: prep-data by
tile id stages exactly the scenes its filters select into ``sentinel2/<source>/``, a
re-run fetches nothing, ``--dry-run`` reports what would be fetched without fetching
it, readiness passes, and the offline sequential run (no socket at all) writes
probabilities and polygons."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from darts.cli.main import main
from darts.net.guard import forbid_sockets
from darts.sandbox.layout import WorldLayout
from darts.sandbox.service import Sandbox
from darts.store.scenes import SceneStore

TILE = "08WNB"
PATCHES = ["--patch-size", "256", "--overlap", "32", "--batch-size", "4"]


@dataclass(frozen=True)
class Case:
    source: str
    filters: tuple[str, ...]
    keys: tuple[str, ...]
    server: str  # the stand-in that serves the pixels
    pixel_path: str  # part of the path of a pixel request

    def expected(self, world: WorldLayout) -> list[str]:
        manifest = json.loads(world.manifest.read_text())
        if self.source == "cdse-mosaic":
            return [m for m in manifest["mosaics"] if m == f"Sentinel-2_mosaic_2024_Q3_{TILE}_0_0"]
        clear = [
            s
            for s in manifest["scenes"]
            if s["tile"] == TILE
            and s["datetime"].startswith("2024")
            and s["eo:cloud_cover"] <= 10
            and s["eo:snow_cover"] <= 10
        ]
        if self.source == "cdse":
            return sorted(s["id"] for s in clear)
        from darts.sandbox.servers.ee_sentinel2 import load_images

        wanted = {s["id"] for s in clear}
        return sorted(image.id for image in load_images(world) if image.product_id in wanted)


OPTICAL_10M = ("B02_10m", "B03_10m", "B04_10m", "B08_10m")
CASES = [
    Case("cdse", ("--years", "2024"), (*OPTICAL_10M, "SCL_20m"), "s3", "/eodata/"),
    Case(
        "cdse-mosaic",
        ("--years", "2024", "--quarters", "3"),
        (*OPTICAL_10M, "observations"),
        "s3",
        "/eodata/",
    ),
    Case("gee", ("--years", "2024"), (*OPTICAL_10M, "SCL_20m"), "earthengine", ":computePixels"),
]


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def pixel_requests(sandbox: Sandbox, case: Case) -> list[dict]:
    return [
        r
        for r in sandbox.injector(case.server).requests()
        if case.pixel_path in r["path"] and r["method"] in ("GET", "POST")
    ]


@pytest.mark.parametrize("case", CASES, ids=[c.source for c in CASES])
def test_stage_rerun_dry_run_and_offline_run(
    case: Case,
    sandbox: Sandbox,
    sandbox_world: WorldLayout,
    data_dir: Path,
    model_file: Path,
    capsys,
) -> None:
    expected = case.expected(sandbox_world)
    assert len(expected) == 1, expected
    ids_file = data_dir / "ids.json"
    select = [
        "--raw-data-source",
        case.source,
        "--pipeline.tile-ids",
        TILE,
        "--prep-data-scene-id-file",
        str(ids_file),
    ]
    prep = ["inference", "prep-data", "sentinel2", *select, *case.filters]

    sandbox.clear_requests()
    code, out, err = run([*prep, "--optical", "--dry-run"], capsys)
    assert code == 0, err
    assert "dry run: 1 scene(s), 0 complete in the store, 1 to stage" in out
    assert expected[0] in out
    assert pixel_requests(sandbox, case) == []
    assert not (data_dir / "sentinel2" / case.source).exists()

    code, out, err = run([*prep, "--optical", "--aux"], capsys)
    assert code == 0, out + err
    # Earth Engine's caveat is shown once per run; other sources have none here.
    assert err.count("less comparable across years") == (case.source == "gee")
    assert json.loads(ids_file.read_text())["scene_ids"] == expected
    store = SceneStore(data_dir / "sentinel2" / case.source)
    assert store.scenes() == expected
    assert store.stored_bands(expected[0]) == set(case.keys)
    assert store.verify(expected[0]) == []
    assert store.item(expected[0])["id"] == expected[0]
    assert pixel_requests(sandbox, case)

    sandbox.clear_requests()
    code, out, err = run([*prep, "--optical", "--aux"], capsys)
    assert code == 0, out + err
    assert pixel_requests(sandbox, case) == []
    assert " cached " in out

    code, out, err = run(["inference", "readiness", "sentinel2", *select], capsys)
    assert code == 0, out + err
    assert f"raw-data source: {case.source}" in out

    with forbid_sockets() as audit:
        code, out, err = run(
            [
                "inference",
                "sentinel2-sequential",
                *select,
                *case.filters,
                "--offline",
                "--model-files",
                str(model_file),
                *PATCHES,
            ],
            capsys,
        )
    assert audit.blocked == []
    assert code == 0, out + err
    scene_out = data_dir / "out" / expected[0]
    assert (scene_out / "probabilities.tif").is_file()
    assert (scene_out / "prediction_segments.gpkg").is_file()
    record = json.loads((scene_out / "darts_inference.json").read_text())
    assert record["source"] == case.source


@pytest.mark.parametrize("case", CASES, ids=[c.source for c in CASES])
def test_online_run_without_a_store_keeps_nothing(
    case: Case,
    sandbox: Sandbox,
    sandbox_world: WorldLayout,
    data_dir: Path,
    model_file: Path,
    capsys,
) -> None:
    """Online, ``--no-raw-data-store``: the scene is fetched into memory, processed, and
    nothing of it is kept; the selection's filters pick the same scene as prep-data."""
    expected = case.expected(sandbox_world)
    sandbox.clear_requests()
    code, out, err = run(
        [
            "inference",
            "sentinel2-sequential",
            "--raw-data-source",
            case.source,
            "--tile-ids",
            TILE,
            *case.filters,
            "--no-raw-data-store",
            "--model-files",
            str(model_file),
            *PATCHES,
        ],
        capsys,
    )
    assert code == 0, out + err
    assert pixel_requests(sandbox, case)
    assert not (data_dir / "sentinel2").exists()
    assert (data_dir / "out" / expected[0] / "probabilities.tif").is_file()
