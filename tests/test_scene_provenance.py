"""A scene's provenance from its document and the run; model files named without
absolute paths."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import torch

from darts.paths import DataPaths
from darts.pipelines.scene_provenance import (
    model_entries,
    relative_to_data_dirs,
    scene_provenance,
)
from darts.processing.models import LoadedModel, load_model

CDSE_ID = "S2A_MSIL2A_20180714T203849_N0500_R071_T08WMA_20230713T100203"
FOOTPRINT = {
    "type": "Polygon",
    "coordinates": [[[-135.0, 68.4], [-134.0, 68.4], [-134.0, 68.9], [-135.0, 68.4]]],
}


def data_paths(darts: Path, fast: Path, large: Path) -> DataPaths:
    return DataPaths(
        darts_dir=darts,
        fast_dir=fast,
        large_dir=large,
        raw_data_store=large / "sentinel2" / "cdse",
        arcticdem_dir=fast / "auxiliary" / "arcticdem_10m.icechunk",
        arcticdem_index_dir=fast / "auxiliary" / "arcticdem_index",
        tcvis_dir=fast / "auxiliary" / "tcvis.icechunk",
        models_dir=fast / "models",
        output_dir=large / "out",
        log_dir=darts / "logs",
        sandbox_dir=darts / "sandbox",
    )


@pytest.fixture(scope="module")
def model(model_file: Path) -> LoadedModel:
    return load_model(model_file, torch.device("cpu"))


def test_cdse_scene(model: LoadedModel) -> None:
    self_href = (
        f"https://stac.dataspace.copernicus.eu/v1/collections/sentinel-2-l2a/items/{CDSE_ID}"
    )
    item = {
        "id": CDSE_ID,
        "geometry": FOOTPRINT,
        "properties": {"datetime": "2018-07-14T20:38:49.024000Z", "grid:code": "MGRS-08WMA"},
        "links": [
            {"rel": "root", "href": "https://stac.dataspace.copernicus.eu/v1/"},
            {"rel": "self", "href": self_href},
        ],
    }
    provenance = scene_provenance(item, "cdse", [model], {"patch": {"size": 1024}})
    assert provenance.scene_id == CDSE_ID and provenance.tile_id == "08WMA"
    assert provenance.acquired == datetime(2018, 7, 14, 20, 38, 49, 24000, tzinfo=UTC)
    assert provenance.period_start is None and provenance.period_end is None
    assert provenance.source_href == self_href
    assert provenance.footprint == FOOTPRINT
    assert provenance.models_text() == f"tiny.pt@{model.spec.sha256}"
    assert provenance.parameters == {"patch": {"size": 1024}}


def test_earth_engine_and_mosaic_scenes(model: LoadedModel) -> None:
    # Earth Engine documents have no self link: the source item is named by its id.
    gee = {
        "id": "20180714T203849_20180714T203848_T08WMA",
        "properties": {"datetime": "2018-07-14T20:38:49Z", "grid:code": "MGRS-08WMA"},
    }
    provenance = scene_provenance(gee, "gee", [model], {})
    assert provenance.source_href is None and provenance.tile_id == "08WMA"
    assert provenance.footprint is None
    # A mosaic covers a quarter: its span travels along; a relative self link does not.
    mosaic = {
        "id": "Sentinel-2_mosaic_2024_Q3_08WMA_0_0",
        "properties": {
            "datetime": "2024-07-01T00:00:00Z",
            "start_datetime": "2024-07-01T00:00:00Z",
            "end_datetime": "2024-09-30T23:59:59Z",
            "grid:code": "MGRS-08WMA",
        },
        "links": [{"rel": "self", "href": "items/Sentinel-2_mosaic_2024_Q3_08WMA_0_0"}],
    }
    provenance = scene_provenance(mosaic, "cdse-mosaic", [model], {})
    assert provenance.period_start == datetime(2024, 7, 1, tzinfo=UTC)
    assert provenance.period_end == datetime(2024, 9, 30, 23, 59, 59, tzinfo=UTC)
    assert provenance.source_href is None
    # A document that names no tile still has a provenance.
    assert scene_provenance({"id": "x", "properties": {}}, "cdse", [model], {}).tile_id is None


def test_model_files_are_named_relative_to_the_data_dirs(tmp_path: Path, model_file: Path) -> None:
    darts, fast = tmp_path / "darts", tmp_path / "fast"
    paths = data_paths(darts, fast, darts)
    (fast / "models").mkdir(parents=True)
    (darts / "mine").mkdir(parents=True)
    inside = shutil.copy(model_file, fast / "models" / "unet.pt")
    beside = shutil.copy(model_file, darts / "mine" / "unet2.pt")
    assert relative_to_data_dirs(Path(inside), paths) == "<fast-dir>/models/unet.pt"
    assert relative_to_data_dirs(Path(beside), paths) == "<darts-dir>/mine/unet2.pt"
    assert relative_to_data_dirs(model_file, paths) is None
    # The fast dir inside the darts dir (the usual HPC layout): the deeper root names it.
    nested = data_paths(tmp_path, tmp_path / "fast", tmp_path)
    assert relative_to_data_dirs(Path(inside), nested) == "<fast-dir>/models/unet.pt"
    # A large dir of its own names what lies in it.
    large = data_paths(darts, fast, tmp_path / "large")
    (tmp_path / "large").mkdir()
    bulk = shutil.copy(model_file, tmp_path / "large" / "bulk.pt")
    assert relative_to_data_dirs(Path(bulk), large) == "<large-dir>/bulk.pt"
    # All roots the same (nothing set): named after the fast dir, where models belong.
    same = data_paths(fast, fast, fast)
    assert relative_to_data_dirs(Path(inside), same) == "<fast-dir>/models/unet.pt"

    models = [
        load_model(Path(inside), torch.device("cpu")),
        load_model(model_file, torch.device("cpu")),
    ]
    entries = model_entries(models, paths)
    assert [(e["file"], e["path"]) for e in entries] == [
        ("unet.pt", "<fast-dir>/models/unet.pt"),
        ("tiny.pt", None),
    ]
    assert entries[0]["sha256"] == entries[1]["sha256"]  # the same bytes
    assert all(str(tmp_path) not in str(e) for e in entries)
