"""`darts inference sentinel2-sequential` end to end against the sandbox, online and
offline, with a small real smp model (untrained: this tests the chain, not skill), and a
failing scene that must not stop the run but must show in its exit code."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch

from darts.cli.main import main
from darts.net.guard import forbid_sockets
from darts.processing.export import is_complete
from darts.sandbox.layout import WorldLayout
from darts.sandbox.service import Sandbox


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def main_scene(world: WorldLayout) -> str:
    manifest = json.loads(world.manifest.read_text())
    tile = manifest["main_tile"]
    return sorted(
        s["id"] for s in manifest["scenes"] if s["tile"] == tile and s["eo:cloud_cover"] <= 10
    )[0]


PATCHES = ["--patch-size", "256", "--overlap", "32", "--batch-size", "4"]


def test_online_run_exports_then_skips_then_offline_reruns_without_sockets(
    sandbox_world: WorldLayout, data_dir: Path, model_file: Path, other_model_file: Path, capsys
) -> None:
    scene = main_scene(sandbox_world)
    base = [
        "inference",
        "sentinel2-sequential",
        "--scene-ids",
        scene,
        "--model-files",
        str(model_file),
        *PATCHES,
    ]
    code, out, err = run(base, capsys)
    assert code == 0, out + err
    out_dir = data_dir / "out" / scene
    assert is_complete(out_dir)
    for name in (
        "probabilities.tif",
        "binarized.tif",
        "prediction_segments.gpkg",
        "prediction_segments.parquet",
        "prediction_extent.gpkg",
        "thumbnail.png",
    ):
        assert (out_dir / name).is_file(), name
    record = json.loads((out_dir / "darts_inference.json").read_text())
    assert record["scene_id"] == scene
    assert record["models"][0]["sha256"]
    assert record["preprocessing"]["preprocessing_version"] == "darts-reference-v1"
    runs = sorted((data_dir / "out" / "runs").iterdir())
    results = json.loads((runs[-1] / "results.json").read_text())
    assert results["counts"] == {"done": 1}
    objects = results["results"][0]["objects"]
    assert isinstance(objects, int) and objects >= 0  # polygons were written
    assert (runs[-1] / "config.json").is_file()
    assert record["exports"] == sorted(record["exports"]) and "polygonized" in record["exports"]
    source_link = check_provenance(out_dir, scene, record, [data_dir, model_file.parent])

    # Complete outputs of the same models and parameters are skipped.
    code, out, _ = run(base, capsys)
    assert code == 0 and "skipped (outputs current)" in out

    # Another threshold: the outputs answer another run, so the scene is redone and
    # the table says what differed; then they are current again.
    other = [*base, "--binarization-threshold", "0.6"]
    code, out, err = run(other, capsys)
    assert code == 0, out + err
    assert "done (redone: binarization_threshold 0.5 → 0.6)" in out
    rows = list(csv.DictReader((_latest_run(data_dir) / "results.csv").open()))
    assert rows[0]["note"] == "redone: binarization_threshold 0.5 → 0.6"
    code, out, _ = run(other, capsys)
    assert "skipped (outputs current)" in out
    # Other models: the checksums differ.
    swapped = [a if a != str(model_file) else str(other_model_file) for a in other]
    code, out, err = run(swapped, capsys)
    assert code == 0, out + err
    assert "done (redone: models [" in out

    # Offline, everything is staged by the online run: no socket is opened. --overwrite
    # with fewer exports replaces the folder's outputs as a whole.
    with forbid_sockets() as audit:
        code, out, err = run(
            [*swapped, "--offline", "--overwrite", "--export", "probabilities"], capsys
        )
    assert audit.blocked == []
    assert code == 0, out + err
    assert "1 done" in out and "redone: --overwrite" in out
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "darts_inference.json",
        "probabilities.tif",
        "stac_item.json",
    ]
    # Offline, the staged scene document still links the source item.
    item = json.loads((out_dir / "stac_item.json").read_text())
    assert item["links"] == [source_link]
    assert item["properties"]["darts:models"][0]["name"] == other_model_file.name


def check_provenance(out_dir: Path, scene: str, record: dict, local_dirs: list[Path]) -> dict:
    """Every output names its scene, tile, date, source and models; the record and the
    STAC item name no local path. Returns the STAC item's link to the source item."""
    import geopandas as gpd
    import numpy as np
    import rasterio
    from PIL import Image
    from pystac.validation import validate_dict

    tile = scene.split("_")[5].removeprefix("T")
    sha = record["models"][0]["sha256"]
    assert record["models"][0]["file"] == "tiny.pt"
    assert record["models"][0]["path"] is None  # outside the data dirs: the name only
    assert record["tile_id"] == tile and record["source"] == "cdse"
    texts = (out_dir / "darts_inference.json").read_text(), (out_dir / "stac_item.json").read_text()
    for text in texts:
        for local in local_dirs:
            assert str(local) not in text

    item = json.loads(texts[1])
    validate_dict(item, extensions=[])
    assert item["id"] == scene and item["properties"]["grid:code"] == f"MGRS-{tile}"
    assert item["properties"]["datetime"] == record["scene_datetime"]
    assert item["properties"]["darts:parameters_sha256"] == record["parameters_sha256"]
    (link,) = item["links"]
    assert link["rel"] == "derived_from" and link["href"].endswith(f"/items/{scene}")
    assert link["href"] == record["source_item"]
    listed = {entry["file"]: entry for entry in record["outputs"]}
    assert "stac_item.json" in listed
    for asset in item["assets"].values():
        name = asset["href"].removeprefix("./")
        if name != "darts_inference.json":
            assert asset["file:checksum"] == "1220" + listed[name]["sha256"]

    for name in ("probabilities.tif", "binarized.tif"):
        with rasterio.open(out_dir / name) as src:
            tags = src.tags()
            assert (tags["scene_id"], tags["tile_id"], tags["source"]) == (scene, tile, "cdse")
            assert tags["models"] == f"tiny.pt@{sha}"
            assert tags["parameters_sha256"] == record["parameters_sha256"]
            assert tags["datetime"] == record["scene_datetime"]
            shape = (src.height, src.width)
    with rasterio.open(out_dir / "probabilities.tif") as src:
        assert src.scales == (0.01,) and src.offsets == (0.0,)
    with rasterio.open(out_dir / "binarized.tif") as src:
        assert src.colormap(1)[1] == (255, 0, 255, 255)

    for layer in ("prediction_segments", "prediction_extent"):
        frame = gpd.read_parquet(out_dir / f"{layer}.parquet")
        assert list(frame.columns[:5]) == [
            "scene_id", "tile_id", "scene_datetime", "source", "models"
        ]  # fmt: skip
        assert (frame["scene_id"] == scene).all() and (frame["tile_id"] == tile).all()
        assert (frame["models"] == f"tiny.pt@{sha[:12]}").all()
        assert str(frame["scene_datetime"].dtype) == "datetime64[ms, UTC]"
    assert len(frame) == 1  # the extent

    from darts.processing.thumbnail import thumbnail_shape

    with Image.open(out_dir / "thumbnail.png") as image:
        pixels = np.asarray(image)
    map_rows, map_cols = thumbnail_shape(shape)
    # The map and, below it, its caption: text on white.
    assert pixels.shape[0] > map_rows + 40 and pixels.shape[1] >= map_cols
    caption = pixels[map_rows:]
    assert (caption == 255).all(axis=-1).mean() > 0.5 and (caption == 0).all(axis=-1).any()
    return link


def _latest_run(data_dir: Path) -> Path:
    return sorted((data_dir / "out" / "runs").iterdir())[-1]


def test_offline_run_with_nothing_staged_lists_the_gaps_and_fails(
    sandbox_world: WorldLayout, data_dir: Path, model_file: Path, capsys
) -> None:
    scene = main_scene(sandbox_world)
    with forbid_sockets() as audit:
        code, _, err = run(
            ["inference", "sentinel2-sequential", "--scene-ids", scene, "--offline",
             "--model-files", str(model_file)],
            capsys,
        )  # fmt: skip
    assert audit.blocked == []
    assert code == 2
    assert "Traceback" not in err
    assert scene in err and "not in the raw-data store" in err


def test_a_hostile_checkpoint_is_refused_before_any_work(
    data_dir: Path, tmp_path: Path, capsys
) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    bad = tmp_path / "bad.pt"
    torch.save({"config": Payload()}, bad)
    code, _, err = run(
        ["inference", "sentinel2-sequential", "--scene-ids", "x", "--model-files", str(bad)],
        capsys,
    )
    assert code == 2
    assert "refusing to load" in err
    assert not marker.exists()
    assert not (data_dir / "out").exists()


def two_scenes(world: WorldLayout) -> list[str]:
    manifest = json.loads(world.manifest.read_text())
    tile = manifest["main_tile"]
    ids = sorted(
        s["id"] for s in manifest["scenes"] if s["tile"] == tile and s["eo:cloud_cover"] <= 10
    )
    return ids[:2]


def test_one_failing_scene_does_not_stop_the_others_and_the_exit_code_says_so(
    sandbox: Sandbox, sandbox_world: WorldLayout, data_dir: Path, model_file: Path, capsys
) -> None:
    # Scenes run in time order: the good one first, so the keys have worked before the
    # object store refuses every file of the broken one (a 403 is not retried; before
    # any success it would mean wrong keys and end the run).
    good, broken = two_scenes(sandbox_world)
    sensing = broken.split("_")[2]  # e.g. 20180714T203849: only this scene's objects
    with sandbox.injector("s3").faults(error_rate=1.0, error_statuses=(403,), match=sensing):
        code = main(
            ["inference", "sentinel2-sequential", "--scene-ids", broken, good,
             "--model-files", str(model_file),
             "--patch-size", "256", "--overlap", "32", "--batch-size", "4"]
        )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "Traceback" not in err
    assert "1 done" in out and "1 failed" in out
    assert is_complete(data_dir / "out" / good)
    assert not is_complete(data_dir / "out" / broken)

    run_dir = sorted((data_dir / "out" / "runs").iterdir())[-1]
    with (run_dir / "results.csv").open() as table:
        rows = {row["scene_id"]: row for row in csv.DictReader(table)}
    assert rows[good]["status"] == "done"
    assert rows[broken]["status"] == "failed"
    for step in ("optical", "preprocess", "segment", "export"):
        assert float(rows[good][f"seconds_{step}"]) >= 0.0
    assert int(rows[good]["patches"]) > 0
    assert "403" in rows[broken]["error"] or "denied" in rows[broken]["error"].lower()


def test_offline_run_over_a_damaged_scene_or_cube_fails_that_scene_with_one_line(
    sandbox_world: WorldLayout, data_dir: Path, model_file: Path, capsys
) -> None:
    """Bytes flipped in place (same size: readiness and the stat check see nothing) in a
    staged band chunk, then in the ArcticDEM cube's chunks: the offline run reports the
    scene failed with the checksum error naming it, never "done" on wrong pixels."""
    scene = main_scene(sandbox_world)
    code, out, err = run(
        ["inference", "prep-data", "sentinel2", "--scene-ids", scene, "--optical", "--aux"],
        capsys,
    )
    assert code == 0, out + err
    scene_dir = data_dir / "sentinel2" / "cdse" / f"{scene}.zarr"
    chunk = max((scene_dir / "B04_10m" / "c").rglob("*"), key=lambda p: p.stat().st_size)
    original = chunk.read_bytes()
    chunk.write_bytes(
        original[:1000] + bytes(b ^ 0xFF for b in original[1000:1064]) + original[1064:]
    )
    base = ["inference", "sentinel2-sequential", "--scene-ids", scene, "--offline",
            "--model-files", str(model_file), *PATCHES]  # fmt: skip

    def failed_run() -> str:
        with forbid_sockets():
            code, out, err = run(base, capsys)
        assert code == 1, out + err
        assert "Traceback" not in out + err and "internal error" not in err
        assert "1 failed" in out and "done" not in out.replace("0 done", "")
        assert not is_complete(data_dir / "out" / scene)
        run_dir = sorted((data_dir / "out" / "runs").iterdir())[-1]
        with (run_dir / "results.csv").open() as table:
            (row,) = list(csv.DictReader(table))
        assert row["scene_id"] == scene and row["status"] == "failed"
        assert "\n" not in row["error"]
        return row["error"]

    error = failed_run()
    relative = chunk.relative_to(scene_dir / "B04_10m").as_posix()
    assert scene in error and "'B04_10m'" in error and relative in error
    assert "CRC-32C mismatch" in error
    assert "darts cache repair" in error

    chunk.write_bytes(original)
    (cube,) = (data_dir / "auxiliary").glob("arcticdem_*m.icechunk")
    for path in (cube / "chunks").iterdir():  # every chunk the scene's window may read
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    error = failed_run()
    assert str(cube) in error and "'dem'" in error and "CRC-32C mismatch" in error
    assert "--aux" in error
