"""`darts inference sentinel2-sequential` end to end against the sandbox, online and
offline, with a small real smp model (untrained: this tests the chain, not skill)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
import torch

from darts.cli.main import main
from darts.net.guard import forbid_sockets, get_gate
from darts.processing.export import is_complete
from darts.processing.features import ALL_FEATURES
from darts.processing.models import save_darts_checkpoint
from darts.sandbox.layout import WorldLayout

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


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = dict(TINY)
    torch.manual_seed(0)
    module = smp.create_model(
        arch=settings.pop("arch"),
        encoder_name=settings.pop("encoder_name"),
        encoder_weights=None,
        **settings,
    )
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_darts_checkpoint(
        module, {"model": TINY, "bands": list(ALL_FEATURES), "name": "tiny"}, path
    )
    return path


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
