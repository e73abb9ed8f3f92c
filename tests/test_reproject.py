"""Auxiliary rasters onto a UTM scene grid: values at known points, no data honoured."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import xarray as xr
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.warp import transform_bounds

from darts.grid.scene import Grid, grid_of_dataset
from darts.processing import reproject as rp
from darts.sources.decode import grid_coords

SCENE_CRS = "EPSG:32606"


def scene_grid_at(shape: tuple[int, int] = (60, 70)) -> Grid:
    transform = (10.0, 0.0, 600000.0, 0.0, -10.0, 7_500_000.0)
    return Grid(shape, transform, SCENE_CRS, CRS.from_user_input(SCENE_CRS).to_wkt())


def scene_of(grid: Grid) -> xr.Dataset:
    band = np.zeros(grid.shape, dtype=np.uint16)
    return xr.Dataset({"B04_10m": (("y", "x"), band)}, coords=grid_coords(grid))


def aux_dataset(
    variables: dict[str, np.ndarray], crs: str, transform: Affine, attrs: dict | None = None
) -> xr.Dataset:
    height, width = next(iter(variables.values())).shape
    x = transform.c + (np.arange(width) + 0.5) * transform.a
    y = transform.f + (np.arange(height) + 0.5) * transform.e
    data = {
        name: (("y", "x"), values, dict((attrs or {}).get(name, {})))
        for name, values in variables.items()
    }
    return xr.Dataset(
        data,
        coords={"y": y, "x": x},
        attrs={"crs": crs, "transform": list(transform)[:6]},
    )


def scene_points(grid: Grid, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Every scene pixel centre in ``crs``."""
    a, _b, c, _d, e, f = grid.transform
    rows, cols = np.mgrid[0 : grid.shape[0], 0 : grid.shape[1]]
    x = c + (cols + 0.5) * a
    y = f + (rows + 0.5) * e
    to = Transformer.from_crs(SCENE_CRS, crs, always_xy=True)
    px, py = to.transform(x, y)
    return np.asarray(px), np.asarray(py)


def polar_dem(grid: Grid) -> tuple[xr.Dataset, Affine]:
    """A tilted plane in EPSG:3413 at 10 m covering the scene's west part only, with a
    datamask hole (holding garbage heights) and a few declared nodata pixels."""
    west, south, east, north = transform_bounds(SCENE_CRS, "EPSG:3413", *_bounds(grid))
    transform = Affine(10.0, 0.0, np.floor(west) - 100.0, 0.0, -10.0, np.ceil(north) + 100.0)
    height = int((north - south + 200.0) // 10) + 1
    width = int((east - west + 200.0) // 10) + 1
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    heights = (500.0 + 0.02 * cols - 0.03 * rows).astype(np.float32)
    mask = np.ones((height, width), dtype=np.uint8)
    mask[20:40, 20:40] = 0
    heights[20:40, 20:40] = 9999.0
    heights[5, 5] = -9999.0
    keep = width * 2 // 3
    aux = aux_dataset(
        {"dem": heights[:, :keep], "datamask": mask[:, :keep]},
        "EPSG:3413",
        transform,
        {"dem": {"nodata": -9999.0, "units": "m"}},
    )
    return aux, transform


def _bounds(grid: Grid) -> tuple[float, float, float, float]:
    a, _b, c, _d, e, f = grid.transform
    height, width = grid.shape
    return c, f + e * height, c + a * width, f


def test_scene_grid_from_spatial_ref_or_from_dataset_attributes() -> None:
    grid = scene_grid_at()
    assert grid_of_dataset(scene_of(grid)).matches(grid)
    bare = scene_of(grid).drop_vars("spatial_ref").assign_attrs({"proj:code": SCENE_CRS})
    assert grid_of_dataset(bare).matches(grid)


def test_dem_values_at_known_points_nan_outside_and_datamask_honoured() -> None:
    grid = scene_grid_at()
    aux, transform = polar_dem(grid)
    before = {name: aux[name].values.copy() for name in aux.data_vars}
    result = rp.reproject_dem(aux, grid)
    dem = result["dem"].values
    assert dem.dtype == np.float32
    assert set(result.data_vars) == {"dem"}

    px, py = scene_points(grid, "EPSG:3413")
    col, row = ~transform @ (px, py)
    col, row = col - 0.5, row - 0.5  # fractional index of pixel centres
    expected = 500.0 + 0.02 * col - 0.03 * row
    width = aux.sizes["x"]
    inside = (col > 2) & (col < width - 3) & (row > 2) & (row < aux.sizes["y"] - 3)
    in_hole = (col > 21) & (col < 38) & (row > 21) & (row < 38)
    # GDAL gives no value where a bilinear neighbour (± 1 px) lies in the hole.
    by_hole = (col > 18.9) & (col < 40.1) & (row > 18.9) & (row < 40.1)
    outside = col > width + 2
    assert inside.sum() > 1000 and outside.sum() > 200 and in_hole.sum() > 10

    finite = np.isfinite(dem)
    # A linear surface is reproduced exactly by bilinear resampling; near the hole GDAL
    # renormalises over the valid neighbours, which stays within one pixel's rise.
    assert np.abs(dem[finite] - expected[finite]).max() < 0.05
    assert finite[inside & ~by_hole & ~_near(col, row, 5, 5)].all()
    assert not finite[outside].any()
    assert not finite[in_hole].any()
    assert np.nanmin(dem) > 400 and np.nanmax(dem) < 600  # neither garbage nor −9999 leak
    for name, values in before.items():
        np.testing.assert_array_equal(aux[name].values, values)


def _near(col: np.ndarray, row: np.ndarray, c: int, r: int) -> np.ndarray:
    return (np.abs(col - c) < 2) & (np.abs(row - r) < 2)


def test_output_carries_the_scene_coordinates() -> None:
    grid = scene_grid_at()
    aux, _transform = polar_dem(grid)
    result = rp.reproject_dem(aux, grid)
    scene = scene_of(grid)
    np.testing.assert_array_equal(result.x.values, scene.x.values)
    np.testing.assert_array_equal(result.y.values, scene.y.values)
    assert result["spatial_ref"].attrs["crs_wkt"] == scene["spatial_ref"].attrs["crs_wkt"]
    xr.align(scene, result, join="exact")  # raises if any coordinate differs


def test_dem_heights_are_clipped_to_the_valid_range() -> None:
    grid = scene_grid_at((20, 20))
    west, south, east, north = transform_bounds(SCENE_CRS, "EPSG:3413", *_bounds(grid))
    transform = Affine(10.0, 0.0, west - 100.0, 0.0, -10.0, north + 100.0)
    shape = (int((north - south) // 10) + 21, int((east - west) // 10) + 21)
    heights = np.full(shape, 3500.0, dtype=np.float32)
    heights[: shape[0] // 2] = -400.0
    aux = aux_dataset({"dem": heights}, "EPSG:3413", transform)
    dem = rp.reproject_dem(aux, grid)["dem"].values
    assert np.isfinite(dem).all()
    assert dem.min() == -100.0 and dem.max() == 3000.0


def test_tiles_give_the_same_result_as_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    grid = scene_grid_at()
    aux, _transform = polar_dem(grid)
    whole = rp.reproject_dem(aux, grid)["dem"].values
    monkeypatch.setattr(rp, "_TILE", 16)
    tiled = rp.reproject_dem(aux, grid)["dem"].values
    both = np.isfinite(whole) & np.isfinite(tiled)
    assert (np.isfinite(whole) != np.isfinite(tiled)).sum() <= 0.01 * whole.size
    np.testing.assert_allclose(tiled[both], whole[both], atol=0.01)


def test_tcvis_in_lonlat_becomes_uint8_with_a_valid_mask() -> None:
    grid = scene_grid_at()
    west, south, east, north = transform_bounds(SCENE_CRS, "EPSG:4326", *_bounds(grid))
    dlon, dlat = 0.0004, 0.0002
    transform = Affine(dlon, 0.0, west - 5 * dlon, 0.0, -dlat, north + 5 * dlat)
    height = int((north - south) / dlat) + 10
    width = int((east - west) / dlon) + 10
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    field = 40.0 + 0.5 * cols + 0.25 * rows
    keep = height * 3 // 4  # the southern quarter of the scene has no TCVIS
    bands = {
        "tc_brightness": np.rint(field).astype(np.uint8)[:keep],
        "tc_greenness": np.rint(field + 10).astype(np.uint8)[:keep],
        "tc_wetness": np.rint(255 - field).astype(np.uint8)[:keep],
    }
    aux = aux_dataset(bands, "EPSG:4326", transform)
    result = rp.reproject_tcvis(aux, grid)
    assert set(result.data_vars) == {*rp.TCVIS_BANDS, "valid"}
    for name in (*rp.TCVIS_BANDS, "valid"):
        assert result[name].dtype == np.uint8

    lon, lat = scene_points(grid, "EPSG:4326")
    col, row = ~transform @ (lon, lat)
    col, row = col - 0.5, row - 0.5
    covered = row < keep - 3
    uncovered = row > keep + 2
    assert covered.sum() > 1000 and uncovered.sum() > 200
    valid = result["valid"].values
    assert valid[covered].all() and not valid[uncovered].any()
    expected = 40.0 + 0.5 * col + 0.25 * row
    brightness = result["tc_brightness"].values.astype(float)
    # Rounded source values, bilinear, rounded again: within one step of the field.
    assert np.abs(brightness[covered] - expected[covered]).max() <= 1.01
    wetness = result["tc_wetness"].values.astype(float)
    assert np.abs(wetness[covered] - (255 - expected[covered])).max() <= 1.01
    assert (result["tc_brightness"].values[uncovered] == 0).all()


def test_reproject_to_grid_options_and_errors() -> None:
    grid = scene_grid_at((20, 20))
    aux, _transform = polar_dem(grid)
    as_float = rp.reproject_to_grid(aux, grid, resampling={"dem": "nearest"})
    assert as_float["dem"].dtype == np.float32 and "valid" not in as_float
    with pytest.raises(rp.ReprojectError, match="resampling"):
        rp.reproject_to_grid(aux, grid, resampling="smooth")
    with pytest.raises(rp.ReprojectError, match="crs"):
        rp.reproject_to_grid(aux.assign_attrs(crs=None), grid)
    with pytest.raises(rp.ReprojectError, match="tc_greenness"):
        rp.reproject_tcvis(aux.rename({"dem": "tc_brightness"}), grid)


def test_lazy_reprojection_computes_the_tiles_read_with_the_same_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rp, "_TILE", 16)
    grid = scene_grid_at()
    aux, _transform = polar_dem(grid)
    made: list[tuple[int, int]] = []
    tile = rp._Tiler.tile

    def counted(self, i, j):  # type: ignore[no-untyped-def]
        made.append((i, j))
        return tile(self, i, j)

    monkeypatch.setattr(rp._Tiler, "tile", counted)
    eager = rp.reproject_dem(aux, grid)
    made.clear()
    lazy = rp.reproject_to_grid(
        aux[["dem", "datamask"]],
        grid,
        dtype=np.float32,
        value_range={"dem": rp.DEM_HEIGHT_RANGE},
        lazy=True,
    )
    assert made == [] and not lazy["dem"].variable._in_memory
    xr.testing.assert_identical(lazy.coords.to_dataset(), eager.coords.to_dataset())
    assert lazy["dem"].attrs.keys() == eager["dem"].attrs.keys()
    part = lazy["dem"][20:40, 5:30].values  # tile rows 1–2, tile columns 0–1
    np.testing.assert_array_equal(part, eager["dem"].values[20:40, 5:30])
    assert sorted(made) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    again = lazy["dem"][33:37, 17:20].values  # kept: nothing made again
    np.testing.assert_array_equal(again, eager["dem"].values[33:37, 17:20])
    assert len(made) == 4
    np.testing.assert_array_equal(lazy["dem"].values, eager["dem"].values)
    assert copy.deepcopy(lazy)["dem"].shape == grid.shape


def test_lazy_tcvis_equals_the_eager_result(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rp, "_TILE", 16)
    grid = scene_grid_at()
    west, south, east, north = transform_bounds(SCENE_CRS, "EPSG:4326", *_bounds(grid))
    dlon, dlat = 0.0004, 0.0002
    transform = Affine(dlon, 0.0, west - 5 * dlon, 0.0, -dlat, north + 5 * dlat)
    rows, cols = np.mgrid[0 : int((north - south) / dlat) + 10, 0 : int((east - west) / dlon) + 10]
    keep = rows.shape[0] * 2 // 3
    bands = {
        name: ((offset + rows * 3 + cols * 5) % 250).astype(np.uint8)[:keep]
        for offset, name in enumerate(rp.TCVIS_BANDS)
    }
    aux = aux_dataset(bands, "EPSG:4326", transform)
    eager = rp.reproject_tcvis(aux, grid)
    lazy = rp.reproject_tcvis(aux, grid, lazy=True)
    assert set(lazy.data_vars) == set(eager.data_vars)
    for name in eager.data_vars:
        assert lazy[name].dtype == eager[name].dtype == np.uint8
        np.testing.assert_array_equal(lazy[name].values, eager[name].values, err_msg=name)
    assert 0 < eager["valid"].values.sum() < eager["valid"].size


def test_tile_cache_makes_each_tile_once_and_retries_failures() -> None:
    calls: list[tuple[int, int]] = []

    def make(i: int, j: int) -> int:
        calls.append((i, j))
        if (i, j) == (9, 9) and calls.count((9, 9)) == 1:
            raise OSError("flaky")
        return 10 * i + j

    cache = rp.TileCache(make, capacity=2)
    assert [cache.get(0, 1), cache.get(0, 1), cache.get(1, 0)] == [1, 1, 10]
    assert cache.get(2, 2) == 22  # evicts (0, 1), the least recently used
    assert cache.get(0, 1) == 1 and calls.count((0, 1)) == 2
    with pytest.raises(OSError, match="flaky"):
        cache.get(9, 9)
    assert cache.get(9, 9) == 99  # a failure is not kept
    cache.clear()
    cache.get(9, 9)
    assert calls.count((9, 9)) == 3 and cache.made == 6
