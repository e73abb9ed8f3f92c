"""A scene that fails does not stop the run, and makes its exit code non-zero."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
import torch

from darts.cli.main import main
from darts.net.guard import get_gate
from darts.processing.export import is_complete
from darts.processing.features import ALL_FEATURES
from darts.processing.models import save_darts_checkpoint
from darts.sandbox.layout import WorldLayout
from darts.sandbox.service import Sandbox

TINY = {
    "arch": "unet",
    "encoder_name": "tu-test_resnet",
    "in_channels": len(ALL_FEATURES),
    "classes": 1,
    "encoder_depth": 3,
    "decoder_channels": [16, 8, 4],
}


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox_config: Path) -> Path:
    monkeypatch.setenv("DARTS_CONFIG_FILE", str(sandbox_config))
    monkeypatch.setenv("DARTS_DATA_DIR", str(tmp_path / "darts"))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "DARTS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    yield tmp_path / "darts"
    get_gate().set_offline(False)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    settings = dict(TINY)
    torch.manual_seed(0)
    module = smp.create_model(
        arch=settings.pop("arch"),
        encoder_name=settings.pop("encoder_name"),
        encoder_weights=None,
        **settings,
    )
    path = tmp_path / "tiny.pt"
    save_darts_checkpoint(module, {"model": TINY, "bands": list(ALL_FEATURES), "name": "t"}, path)
    return path


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
