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
    sandbox_world: WorldLayout, data_dir: Path, model_file: Path, capsys
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
    assert (runs[-1] / "config.json").is_file()

    # Complete outputs are skipped.
    code, out, _ = run(base, capsys)
    assert code == 0 and "skipped" in out

    # Offline, everything is staged by the online run: no socket is opened.
    with forbid_sockets() as audit:
        code, out, err = run([*base, "--offline", "--overwrite"], capsys)
    assert audit.blocked == []
    assert code == 0, out + err
    assert "1 done" in out


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
    broken, good = two_scenes(sandbox_world)
    sensing = broken.split("_")[2]  # e.g. 20180714T203849: only this scene's objects
    # The object store refuses every file of one scene (a 403 is not retried).
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
