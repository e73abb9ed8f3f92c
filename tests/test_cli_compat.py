"""The DARTS guides' minimal config files, as existing users write them, run against the
sandbox with only the endpoints and the paths changed (the facts of their shapes are in
the reference's compat notes: a ``[darts]`` table with flattened sub-tables and command
tables, kebab- and snake_case keys, older keys, top-level ``[default_dirs]`` /
``[pipeline]`` tables, quality levels by name, ``metadata`` among the exports, models in
``<fast-dir>/models/``)."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest
import rasterio

from darts.cli.main import main
from darts.processing.export import is_complete

TILE = "08WPB"  # one cloud-free 2024 scene in the small world


def endpoints_of(sandbox_config: Path) -> str:
    """The sandbox's endpoint settings as TOML lines: the one part a guide's file has
    to change to run here."""
    table = tomllib.loads(sandbox_config.read_text())["darts"]["endpoints"]
    return "\n".join(f"{key} = {json.dumps(value)}" for key, value in table.items())


def config_guide_file(root: Path, sandbox_config: Path) -> str:
    """The config guide's shape: one ``[darts]`` table for every command, grouping
    sub-tables that are flattened, older keys, and per-command tables."""
    return f"""\
[darts]
tile-ids = ["{TILE}"]
years = [2024]
prep-data-scene-id-file = "{root}/scene_ids.json"
arcticdem-dir = "{root}/aux/arcticdem_10m.icechunk"
tcvis-dir = "{root}/aux/tcvis.icechunk"

[darts.paths]
darts-dir = "{root}/darts"
fast-dir = "{root}/fast"
input-cache = "{root}/s2_raw_data"
output-data-dir = "{root}/out"
dask-worker = 2

[darts.endpoints]
{endpoints_of(sandbox_config)}

[darts.inference.prep-data.sentinel2]
optical = true
aux = true

[darts.inference.sentinel2-sequential]
offline = true
patch-size = 256
overlap = 32
batch-size = 4
reflection = 0
quality-level = "high_quality"
export-bands = ["probabilities", "binarized", "polygonized", "metadata"]
write-model-outputs = true
"""


def paths_guide_file(root: Path) -> str:
    """The paths guide's shape: top-level ``[default_dirs]`` and ``[pipeline]`` tables,
    snake_case keys. Offline, so no endpoint is needed."""
    return f"""\
[default_dirs]
darts_dir = "{root}/darts"
fast_dir = "{root}/fast"

[pipeline]
raw_data_store = "{root}/s2_raw_data"
arcticdem_dir = "{root}/aux/arcticdem_10m.icechunk"
tcvis_dir = "{root}/aux/tcvis.icechunk"
output_data_dir = "{root}/out-again"
prep_data_scene_id_file = "{root}/scene_ids.json"
offline = true
patch_size = 256
overlap = 32
quality_level = "low_quality"
"""


def test_the_guides_config_files_stage_and_run(
    data_dir: Path, sandbox_config: Path, model_file: Path, monkeypatch, capsys
) -> None:
    # Only what the files say: no data dir or config file from the environment.
    monkeypatch.delenv("DARTS_DATA_DIR")
    monkeypatch.delenv("DARTS_CONFIG_FILE")
    root = data_dir.parent / "guide"
    # No --model-files: the checkpoints in <fast-dir>/models/ are the models.
    (root / "fast" / "models").mkdir(parents=True)
    shutil.copy(model_file, root / "fast" / "models" / model_file.name)
    config = root / "darts.toml"
    config.write_text(config_guide_file(root, sandbox_config))

    code = main(["--config-file", str(config), "inference", "prep-data", "sentinel2"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    (scene,) = json.loads((root / "scene_ids.json").read_text())["scene_ids"]
    assert (root / "s2_raw_data" / f"{scene}.zarr").is_dir()
    assert (root / "aux" / "arcticdem_10m.icechunk").is_dir()

    code = main(["--config-file", str(config), "inference", "sentinel2-sequential"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "note: --dask-worker" in err and "is ignored" in err
    out_dir = root / "out" / scene
    assert is_complete(out_dir)
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == sorted(
        [
            "darts_inference.json",
            "probabilities.tif",
            f"probabilities-{model_file.stem}.tif",
            "binarized.tif",
            "prediction_segments.gpkg",
            "prediction_segments.parquet",
            "stac_item.json",
        ]
    )
    record = json.loads((out_dir / "darts_inference.json").read_text())
    assert record["postprocess"]["quality_level"] == 2
    # The record names files relative to the data roots, never absolutely.
    assert record["models"][0]["file"] == model_file.name
    assert record["models"][0]["path"] == f"<fast-dir>/models/{model_file.name}"
    assert "model_probabilities" in record["exports"] and "metadata" not in record["exports"]
    # One model: its own probabilities are the ensemble's.
    with (
        rasterio.open(out_dir / "probabilities.tif") as mean,
        rasterio.open(out_dir / f"probabilities-{model_file.stem}.tif") as own,
    ):
        assert (mean.read() == own.read()).all()
        # It carries the scene's provenance and scale like every GeoTIFF of the scene.
        assert own.tags()["scene_id"] == scene and own.tags() == mean.tags()
        assert own.scales == mean.scales
        assert own.nodata == 255 and own.crs == mean.crs
    stac = json.loads((out_dir / "stac_item.json").read_text())
    assert stac["assets"][f"probabilities-{model_file.stem}"]["roles"] == ["data"]

    # The paths guide's file, offline, reads the ids prep-data saved as its selection.
    other = root / "paths.toml"
    other.write_text(paths_guide_file(root))
    code = main(["--config-file", str(other), "inference", "sentinel2-sequential"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    again = root / "out-again" / scene
    assert is_complete(again)
    record = json.loads((again / "darts_inference.json").read_text())
    assert record["postprocess"]["quality_level"] == 1
    assert not any(p.name.startswith("probabilities-") for p in again.iterdir())


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("quality-level", '"best_quality"', "choose 0, 1 or 2 (or by name: none"),
        ("export-bands", '["probabilities", "metdata"]', "(did you mean 'metadata'?)"),
    ],
)
def test_a_wrong_value_of_a_reference_name_says_what_it_takes(
    tmp_path: Path, capsys, key: str, value: str, says: str
) -> None:
    config = tmp_path / "darts.toml"
    config.write_text(f"[darts.inference.sentinel2-sequential]\n{key} = {value}\n")
    code = main(["--config-file", str(config), "debug-paths"])
    err = capsys.readouterr().err
    assert code == 2 and says in err and key in err
