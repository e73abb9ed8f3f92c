"""The scene grid and the things it is taken from (darts.grid.scene), and what each layer
makes of a thing that defines no usable grid: the scene store keeps its own errors
(GridMismatchError for a band off any consistent grid, StoreError for one without a
CRS), and staging fails just that scene."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from darts.grid.errors import GridError, InconsistentGridError
from darts.grid.scene import (
    Grid,
    grid_of_band,
    grid_of_dataset,
    grid_of_item,
    grid_of_variable,
)
from darts.pipelines.staging import stage_scene
from darts.sources.cdse_source import CdseSource
from darts.store.errors import GridMismatchError, StoreError
from darts.store.scenes import BandEncoding, SceneStore

FIXTURE = (
    Path(__file__).parents[1] / "src/darts/sandbox/fixtures/cdse/search-sentinel-2-l2a-T36NYH.json"
)
SCENE = "S2B_MSIL2A_20200322T074609_N0500_R135_T36NYH_20230612T214223"
# Upper-left corner of T36NYH (the recorded item's proj:transform).
X0, Y0, RES = 699960.0, 300000.0, 10.0


@pytest.fixture(scope="module")
def item() -> dict[str, Any]:
    """A real CDSE item: its CRS is only given per asset, as in production."""
    document = json.loads(FIXTURE.read_text())
    return next(f for f in document["features"] if f["id"] == SCENE)


def band(rows: int = 40, cols: int = 30, attrs: dict[str, Any] | None = None) -> xr.DataArray:
    return xr.DataArray(
        np.ones((rows, cols), np.uint16),
        dims=("y", "x"),
        coords={
            "y": Y0 - RES / 2 - RES * np.arange(rows),
            "x": X0 + RES / 2 + RES * np.arange(cols),
        },
        attrs=dict(attrs or {}),
    )


def test_the_item_grid_is_that_of_its_10m_assets(item: dict[str, Any]) -> None:
    grid = grid_of_item(item)
    asset = item["assets"]["B02_10m"]
    assert grid.shape == tuple(asset["proj:shape"])
    assert list(grid.transform) == asset["proj:transform"][:6]
    assert grid.crs_code == asset["proj:code"]
    assert Grid.from_json(grid.to_json()) == grid


def test_an_item_without_a_usable_10m_asset_has_no_grid(item: dict[str, Any]) -> None:
    only_20m = {**item, "assets": {k: a for k, a in item["assets"].items() if "_10m" not in k}}
    with pytest.raises(GridError, match="no 10 m asset"):
        grid_of_item(only_20m)
    rotated = copy.deepcopy(item)
    rotated["assets"]["B02_10m"]["proj:transform"][1] = 0.5
    with pytest.raises(GridError, match="lacks a usable"):
        grid_of_item(rotated)


def test_band_dataset_and_variable_give_the_same_grid(item: dict[str, Any]) -> None:
    code = item["assets"]["B02_10m"]["proj:code"]
    from_item = grid_of_band("B02", band(), item)
    assert from_item.shape == (40, 30)
    assert from_item.transform == (RES, 0.0, X0, 0.0, -RES, Y0)
    assert from_item.crs_code == code
    dataset = xr.Dataset({"B02": band()}, attrs={"crs": code})
    assert grid_of_dataset(dataset) == from_item
    assert grid_of_variable(xr.Dataset({"p": band(attrs={"proj:code": code})}), "p") == from_item
    with pytest.raises(GridError, match="no variable with dims"):
        grid_of_dataset(xr.Dataset({"t": ("time", np.arange(3))}))
    with pytest.raises(GridError, match="no 'p' variable"):
        grid_of_variable(dataset, "p")


def test_inconsistent_bands_and_bands_without_a_crs_are_told_apart(
    item: dict[str, Any],
) -> None:
    irregular = band().assign_coords(x=lambda d: d.x + np.linspace(0, 3, d.sizes["x"]) ** 2)
    with pytest.raises(InconsistentGridError, match="not regularly spaced"):
        grid_of_band("B02", irregular, item)
    with pytest.raises(InconsistentGridError, match="the item says"):
        grid_of_band("B02", band(attrs={"proj:code": "EPSG:32635"}), item)
    with pytest.raises(GridError, match="no CRS found") as caught:
        grid_of_band("B02", band(), {})
    assert not isinstance(caught.value, InconsistentGridError)


def test_the_scene_store_keeps_its_own_errors(tmp_path: Path, item: dict[str, Any]) -> None:
    store = SceneStore(tmp_path / "sentinel2" / "cdse", BandEncoding(chunk=256))
    irregular = band().assign_coords(x=lambda d: d.x + np.linspace(0, 3, d.sizes["x"]) ** 2)
    with pytest.raises(GridMismatchError, match="not regularly spaced"):
        store.write_bands(SCENE, item, {"B02": irregular})
    without_crs = copy.deepcopy(item)
    for asset in without_crs["assets"].values():
        asset.pop("proj:code", None)
    with pytest.raises(StoreError, match="no CRS found") as caught:
        store.write_bands(SCENE, without_crs, {"B02": band()})
    assert not isinstance(caught.value, GridMismatchError | GridError)
    assert store.stored_bands(SCENE) == set()


def test_staging_fails_only_the_scene_whose_item_has_no_grid(item: dict[str, Any]) -> None:
    rotated = copy.deepcopy(item)
    rotated["assets"]["B02_10m"]["proj:transform"][1] = 0.5
    # No store: the grid is needed (and found unusable) before anything is fetched.
    result = stage_scene(CdseSource(), rotated, ["B02"], None)
    assert result.status == "failed" and not result.ok
    assert result.error is not None and "lacks a usable" in result.error
