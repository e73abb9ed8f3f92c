"""Per-window features: the same values a whole-scene computation gives, at any window."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import xarray as xr
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.warp import transform_bounds
from xarray.backends import BackendArray
from xarray.core import indexing

from darts.grid.scene import Grid, grid_of_dataset
from darts.processing import features as ft
from darts.processing import terrain
from darts.processing.normalize import UnknownBandError, normalize
from darts.processing.reflectance import to_reflectance
from darts.sources.decode import grid_coords

SCENE_CRS = "EPSG:32606"
SHAPE = (64, 80)
PARAMS = ft.FeatureParams()  # TPI disk of 100 m: a 10 px halo at 10 m
WINDOWS = {
    "interior": (20, 44, 25, 55),
    "top-left corner": (0, 16, 0, 20),
    "bottom-right corner": (50, 64, 60, 80),
    "left edge": (10, 40, 0, 12),
    "one pixel": (30, 31, 30, 31),
    "whole scene": (0, 64, 0, 80),
}


def make_grid() -> Grid:
    transform = (10.0, 0.0, 600000.0, 0.0, -10.0, 7_500_000.0)
    return Grid(SHAPE, transform, SCENE_CRS, CRS.from_user_input(SCENE_CRS).to_wkt())


def make_optical(grid: Grid) -> xr.Dataset:
    """What load_optical(..., reflectance=False) returns: DN bands, SCL, quality."""
    rng = np.random.default_rng(7)
    attrs = {"raster:scale": 1e-4, "raster:offset": -0.1, "nodata": 0}
    bands = {}
    for name in ("B02_10m", "B03_10m", "B04_10m", "B08_10m"):
        dn = rng.integers(600, 6000, SHAPE).astype(np.uint16)
        dn[3, 4] = 0  # nodata
        bands[name] = (("y", "x"), dn, dict(attrs))
    quality = np.full(SHAPE, 2, dtype=np.uint8)
    quality[40:50, 5:15] = 1
    quality[3, 4] = 0
    bands["SCL_20m"] = (("y", "x"), np.full(SHAPE, 4, dtype=np.uint8), {})
    bands[ft.QUALITY_BAND] = (("y", "x"), quality, {})
    return xr.Dataset(bands, coords=grid_coords(grid), attrs={"id": "S2_TEST"})


def _aux(variables: dict[str, np.ndarray], crs: str, transform: Affine) -> xr.Dataset:
    height, width = next(iter(variables.values())).shape
    x = transform.c + (np.arange(width) + 0.5) * transform.a
    y = transform.f + (np.arange(height) + 0.5) * transform.e
    return xr.Dataset(
        {name: (("y", "x"), values) for name, values in variables.items()},
        coords={"y": y, "x": x},
        attrs={"crs": crs, "transform": list(transform)[:6]},
    )


def _bounds(grid: Grid) -> tuple[float, float, float, float]:
    a, _b, c, _d, e, f = grid.transform
    return c, f + e * grid.shape[0], c + a * grid.shape[1], f


def make_dem(grid: Grid) -> xr.Dataset:
    """Rolling hills in EPSG:3413 covering the scene with a 300 m buffer, one datamask
    hole inside the scene."""
    west, south, east, north = transform_bounds(SCENE_CRS, "EPSG:3413", *_bounds(grid))
    transform = Affine(10.0, 0.0, np.floor(west) - 300.0, 0.0, -10.0, np.ceil(north) + 300.0)
    height = int((north - south + 600.0) // 10) + 1
    width = int((east - west + 600.0) // 10) + 1
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    heights = 300.0 + 15.0 * np.sin(cols / 6.0) * np.cos(rows / 9.0) + 0.4 * cols
    mask = np.ones((height, width), dtype=np.uint8)
    to_polar = Transformer.from_crs(SCENE_CRS, "EPSG:3413", always_xy=True)
    hx, hy = to_polar.transform(600400.0, 7_499_700.0)  # scene row 30, col 40
    hc, hr = ~transform @ (hx, hy)
    mask[int(hr) - 2 : int(hr) + 3, int(hc) - 2 : int(hc) + 3] = 0
    return _aux({"dem": heights.astype(np.float32), "datamask": mask}, "EPSG:3413", transform)


def make_tcvis(grid: Grid, cover: float = 1.0) -> xr.Dataset:
    west, south, east, north = transform_bounds(SCENE_CRS, "EPSG:4326", *_bounds(grid))
    dlon, dlat = 0.0004, 0.0002
    transform = Affine(dlon, 0.0, west - 5 * dlon, 0.0, -dlat, north + 5 * dlat)
    height = int((north - south) / dlat) + 10
    width = int((east - west) / dlon) + 10
    rows, cols = np.mgrid[0:height, 0:width]
    keep = int(height * cover)
    bands = {
        "tc_brightness": (60 + cols % 50).astype(np.uint8)[:keep],
        "tc_greenness": (120 + rows % 30).astype(np.uint8)[:keep],
        "tc_wetness": (200 - (rows + cols) % 40).astype(np.uint8)[:keep],
    }
    return _aux(bands, "EPSG:4326", transform)


@pytest.fixture(scope="module")
def scene() -> tuple[xr.Dataset, xr.Dataset]:
    """(optical, inputs with DEM and TCVIS)."""
    grid = make_grid()
    optical = make_optical(grid)
    return optical, ft.build_inputs(optical, make_dem(grid), make_tcvis(grid), PARAMS)


# -- build_inputs ------------------------------------------------------------------------


def test_inputs_are_compact_and_on_the_scene_grid(scene: tuple[xr.Dataset, xr.Dataset]) -> None:
    optical, inputs = scene
    assert inputs["B04_10m"].dtype == np.uint16
    assert inputs["B04_10m"].attrs["raster:scale"] == 1e-4
    assert inputs["dem"].dtype == np.float32
    for name in ("tc_brightness", "tc_greenness", "tc_wetness", "tcvis_valid", ft.QUALITY_BAND):
        assert inputs[name].dtype == np.uint8
    assert "SCL_20m" not in inputs
    xr.align(optical, inputs, join="exact")
    assert inputs["spatial_ref"].attrs == optical["spatial_ref"].attrs
    assert inputs.attrs["preprocessing_version"] == "darts-reference-v1"
    assert inputs.attrs["tpi_outer_radius_m"] == 100.0
    assert inputs.attrs["id"] == "S2_TEST"


def test_quality_is_invalid_where_the_dem_leaves_terrain_undefined(
    scene: tuple[xr.Dataset, xr.Dataset],
) -> None:
    optical, inputs = scene
    dem = inputs["dem"].values
    hole = np.isnan(dem)
    assert 5 <= hole.sum() < 100
    quality = inputs[ft.QUALITY_BAND].values
    rows, cols = np.nonzero(hole)
    grown = np.zeros(SHAPE, dtype=bool)
    for r, c in zip(rows, cols, strict=True):
        grown[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = True
    assert (quality[grown] == 0).all()
    np.testing.assert_array_equal(quality[~grown], optical[ft.QUALITY_BAND].values[~grown])


def test_build_inputs_does_not_modify_its_inputs() -> None:
    grid = make_grid()
    optical, dem, tcvis = make_optical(grid), make_dem(grid), make_tcvis(grid, cover=0.7)
    before = [{n: ds[n].values.copy() for n in ds.data_vars} for ds in (optical, dem, tcvis)]
    ft.build_inputs(optical, dem, tcvis, PARAMS)
    for ds, copies in zip((optical, dem, tcvis), before, strict=True):
        for name, values in copies.items():
            np.testing.assert_array_equal(ds[name].values, values)


def test_quality_is_invalid_where_tcvis_is_missing() -> None:
    grid = make_grid()
    optical = make_optical(grid)
    inputs = ft.build_inputs(optical, None, make_tcvis(grid, cover=0.7), PARAMS)
    no_tcvis = inputs["tcvis_valid"].values == 0
    assert 100 < no_tcvis.sum() < no_tcvis.size
    assert (inputs[ft.QUALITY_BAND].values[no_tcvis] == 0).all()
    assert "dem" not in inputs


# -- the key property: windows match the whole scene -------------------------------------


@pytest.mark.parametrize("where", sorted(WINDOWS))
def test_feature_window_is_the_crop_of_the_whole_scene(
    scene: tuple[xr.Dataset, xr.Dataset], where: str
) -> None:
    _optical, inputs = scene
    r0, r1, c0, c1 = WINDOWS[where]
    whole = ft.feature_dataset(inputs, ft.ALL_FEATURES, PARAMS)
    window = ft.feature_window(inputs, (r0, r1, c0, c1), ft.ALL_FEATURES, PARAMS)
    assert window.dtype == np.float32
    assert window.shape == (len(ft.ALL_FEATURES), r1 - r0, c1 - c0)
    for index, band in enumerate(ft.ALL_FEATURES):
        expected = normalize(band, whole[band].values[r0:r1, c0:c1])
        np.testing.assert_allclose(window[index], expected, atol=2e-6, err_msg=band)


def test_a_window_without_its_halo_would_differ(scene: tuple[xr.Dataset, xr.Dataset]) -> None:
    """The test above can fail: the TPI of a window cut out bare is wrong inside it."""
    _optical, inputs = scene
    r0, r1, c0, c1 = WINDOWS["interior"]
    bare = terrain.relative_elevation(inputs["dem"].values[r0:r1, c0:c1], 10.0, 100.0)
    right = ft.feature_dataset(inputs, ["relative_elevation"], PARAMS, window=(r0, r1, c0, c1))
    difference = np.abs(bare - right["relative_elevation"].values)
    assert np.nanmax(difference) > 1.0


def test_blocks_of_feature_dataset_join_seamlessly(
    scene: tuple[xr.Dataset, xr.Dataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    _optical, inputs = scene
    whole = ft.feature_dataset(inputs, ft.ALL_FEATURES, PARAMS)
    monkeypatch.setattr(ft, "_BLOCK", 24)
    blocked = ft.feature_dataset(inputs, ft.ALL_FEATURES, PARAMS)
    for band in ft.ALL_FEATURES:
        np.testing.assert_allclose(
            blocked[band].values, whole[band].values, atol=1e-4, equal_nan=True, err_msg=band
        )


def test_feature_dataset_of_a_window_has_its_coordinates(
    scene: tuple[xr.Dataset, xr.Dataset],
) -> None:
    _optical, inputs = scene
    part = ft.feature_dataset(inputs, ["slope", "red"], PARAMS, window=(5, 25, 10, 40))
    np.testing.assert_array_equal(part.x.values, inputs.x.values[10:40])
    np.testing.assert_array_equal(part.y.values, inputs.y.values[5:25])
    assert "spatial_ref" in part.coords
    assert part["slope"].dtype == np.float32 and part["slope"].attrs["units"] == "degree"


# -- values -----------------------------------------------------------------------------


def test_optical_features_are_normalised_reflectance(
    scene: tuple[xr.Dataset, xr.Dataset],
) -> None:
    optical, inputs = scene
    red = ft.feature_window(inputs, (0, 10, 0, 10), ["red", "ndvi"], PARAMS)
    dn = optical["B04_10m"].values[:10, :10].astype(np.float64)
    reflectance = np.where(dn == 0, np.nan, dn * 1e-4 - 0.1)
    np.testing.assert_allclose(red[0], normalize("red", reflectance), atol=1e-6)
    assert red[0][3, 4] == 0.0 and red[1][3, 4] == 0.0  # nodata → 0 in model space
    physical = ft.feature_dataset(inputs, ["ndvi"], PARAMS, window=(0, 10, 0, 10))["ndvi"]
    assert np.isnan(physical.values[3, 4])


def test_float_reflectance_inputs_give_the_same_features() -> None:
    grid = make_grid()
    optical = make_optical(grid)
    from_dn = ft.build_inputs(optical, None, None, PARAMS)
    from_float = ft.build_inputs(to_reflectance(optical), None, None, PARAMS)
    assert from_float["B04_10m"].dtype == np.float32
    bands = ["red", "green", "blue", "nir", "ndvi"]
    a = ft.feature_dataset(from_dn, bands, PARAMS)
    b = ft.feature_dataset(from_float, bands, PARAMS)
    for band in bands:
        np.testing.assert_array_equal(a[band].values, b[band].values)


def test_tcvis_features_are_the_reprojected_values(scene: tuple[xr.Dataset, xr.Dataset]) -> None:
    _optical, inputs = scene
    tc = ft.feature_dataset(inputs, ["tc_wetness"], PARAMS)["tc_wetness"].values
    np.testing.assert_array_equal(tc, inputs["tc_wetness"].values.astype(np.float32))


def test_conventions_rotate_aspect_by_the_convergence_and_leave_slope(
    scene: tuple[xr.Dataset, xr.Dataset],
) -> None:
    _optical, inputs = scene
    true_north = ft.FeatureParams(terrain_convention="true-north")
    bands = ["slope", "aspect", "hillshade"]
    ref = ft.feature_dataset(inputs, bands, PARAMS)
    geo = ft.feature_dataset(inputs, bands, true_north)
    np.testing.assert_array_equal(ref["slope"].values, geo["slope"].values)
    centre = (600400.0, 7_499_680.0)
    rotation = terrain.north_bearing_for("true-north", SCENE_CRS, *centre) - (
        terrain.north_bearing_for("reference", SCENE_CRS, *centre)
    )
    assert -110.0 < rotation < -95.0  # EPSG:3413 north is ~100° off at −145° longitude
    both = np.isfinite(ref["aspect"].values) & np.isfinite(geo["aspect"].values)
    turned = np.mod(ref["aspect"].values[both] - geo["aspect"].values[both], 360.0)
    np.testing.assert_allclose(turned, np.mod(rotation, 360.0), atol=1e-3)
    assert not np.allclose(ref["hillshade"].values, geo["hillshade"].values, equal_nan=True)
    assert geo.attrs["preprocessing_version"] == "true-north-v1"


# -- what a model may ask for ------------------------------------------------------------


def test_missing_sources_name_the_band_and_unused_data_is_not_needed() -> None:
    grid = make_grid()
    optical_only = ft.build_inputs(make_optical(grid), None, None, PARAMS)
    features = ft.feature_window(optical_only, (0, 8, 0, 8), ["ndvi", "blue", "red"], PARAMS)
    assert features.shape == (3, 8, 8)
    with pytest.raises(ft.MissingFeatureInputError, match=r"'slope'.*ArcticDEM"):
        ft.feature_window(optical_only, (0, 8, 0, 8), ["red", "slope"], PARAMS)
    with pytest.raises(ft.MissingFeatureInputError, match=r"'tc_wetness'.*TCVIS"):
        ft.feature_dataset(optical_only, ["tc_wetness"], PARAMS)
    with pytest.raises(UnknownBandError, match="'swir'"):
        ft.feature_window(optical_only, (0, 8, 0, 8), ["swir"], PARAMS)
    with pytest.raises(ValueError, match="outside"):
        ft.feature_window(optical_only, (0, 8, 75, 81), ["red"], PARAMS)
    with_dem = ft.build_inputs(make_optical(grid), make_dem(grid), None, PARAMS)
    ft.feature_window(with_dem, (0, 8, 0, 8), ["red", "slope", "relative_elevation"], PARAMS)


def test_valid_window_is_quality_at_or_above_the_level(
    scene: tuple[xr.Dataset, xr.Dataset],
) -> None:
    _optical, inputs = scene
    quality = inputs[ft.QUALITY_BAND].values
    for level in (0, 1, 2):
        valid = ft.valid_window(inputs, (35, 55, 0, 20), level)
        assert valid.dtype == bool
        np.testing.assert_array_equal(valid, quality[35:55, 0:20] >= level)


def test_params_take_the_sun_from_the_item_and_validate() -> None:
    item = {"properties": {"view:sun_azimuth": 161.5, "view:sun_elevation": 38.25}}
    params = ft.FeatureParams.for_item(item, terrain_convention="true-north")
    assert (params.sun_azimuth_deg, params.sun_elevation_deg) == (161.5, 38.25)
    assert params.terrain_convention == "true-north"
    assert params.preprocessing_version == "true-north-v1"
    assert ft.FeatureParams.for_item({"properties": {}}).sun_azimuth_deg == 225.0
    with pytest.raises(ValueError, match="terrain convention"):
        ft.FeatureParams(terrain_convention="grid-north")
    with pytest.raises(ValueError, match="TPI radii"):
        ft.FeatureParams(tpi_outer_radius_m=50.0, tpi_inner_radius_m=60.0)


# -- bounded memory: aux on the scene grid, lazy optical bands, lazy feature datasets -----


def test_aux_already_on_the_scene_grid_is_taken_as_it_is(
    scene: tuple[xr.Dataset, xr.Dataset],
) -> None:
    optical, inputs = scene
    grid = grid_of_dataset(optical)
    dem = ft.reproject_dem(make_dem(grid), grid)
    tcvis = ft.reproject_tcvis(make_tcvis(grid), grid)
    assert ft.on_scene_grid(dem, optical) and ft.on_scene_grid(tcvis, optical)
    assert not ft.on_scene_grid(make_dem(grid), optical)  # a cube read: its own grid
    assert not ft.on_scene_grid(dem.isel(x=slice(1, None)), optical)
    again = ft.build_inputs(optical, dem, tcvis, PARAMS)
    for name in inputs.data_vars:
        np.testing.assert_array_equal(again[name].values, inputs[name].values, err_msg=name)
    with pytest.raises(ft.MissingFeatureInputError, match="'valid'"):
        ft.build_inputs(optical, None, tcvis.drop_vars("valid"), PARAMS)


class _CountingBackend(BackendArray):
    """A 2-D array read lazily, counting the reads (stands in for a store band)."""

    def __init__(self, values: np.ndarray) -> None:
        self.values, self.shape, self.dtype = values, values.shape, values.dtype
        self.reads: list[tuple[int, int]] = []  # (rows, cols) of each read

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._read
        )

    def _read(self, key: tuple) -> np.ndarray:
        out = self.values[key]
        self.reads.append(out.shape)
        return out.copy()


def _lazy_optical(
    optical: xr.Dataset, chunks: tuple[int, int]
) -> tuple[xr.Dataset, dict[str, _CountingBackend]]:
    """``optical`` with its DN bands lazily backed (as a scene opened from the store)."""
    backends = {}
    lazy = optical.copy()
    for name in ("B02_10m", "B03_10m", "B04_10m", "B08_10m"):
        backends[name] = _CountingBackend(optical[name].values)
        variable = xr.Variable(
            ("y", "x"), indexing.LazilyIndexedArray(backends[name]), optical[name].attrs
        )
        variable.encoding = {"chunks": chunks}
        lazy[name] = variable
    return lazy, backends


def test_lazy_optical_bands_stay_lazy_and_are_decoded_about_once(
    scene: tuple[xr.Dataset, xr.Dataset],
) -> None:
    optical, inputs = scene
    grid = grid_of_dataset(optical)
    lazy, backends = _lazy_optical(optical, (32, 32))
    streamed = ft.build_inputs(lazy, make_dem(grid), make_tcvis(grid), PARAMS)
    assert not streamed["B04_10m"].variable._in_memory
    assert all(b.reads == [] for b in backends.values())  # nothing read yet
    for window in WINDOWS.values():
        np.testing.assert_array_equal(
            ft.feature_window(streamed, window, ft.ALL_FEATURES, PARAMS),
            ft.feature_window(inputs, window, ft.ALL_FEATURES, PARAMS),
        )
    # Patches row by row: the cache (one row of chunks + 2) decodes every chunk once.
    for band in backends.values():
        band.reads.clear()
    streamed = ft.build_inputs(lazy, None, None, PARAMS)
    for r0 in range(0, SHAPE[0], 12):
        for c0 in range(0, SHAPE[1], 12):
            window = (r0, min(r0 + 16, SHAPE[0]), c0, min(c0 + 16, SHAPE[1]))
            ft.feature_window(streamed, window, ["red", "nir"], PARAMS)
    chunks = 2 * 3
    for name in ("B04_10m", "B08_10m"):
        assert set(backends[name].reads) <= {(32, 32), (32, 16)}  # whole chunks only
        assert len(backends[name].reads) == chunks, backends[name].reads
    assert backends["B02_10m"].reads == []  # blue was never asked for


def test_chunk_cache_serves_threads_with_one_decode_per_chunk() -> None:
    rng = np.random.default_rng(3)
    values = rng.integers(0, 60000, (50, 70)).astype(np.uint16)
    backend = _CountingBackend(values)
    source = xr.Variable(("y", "x"), indexing.LazilyIndexedArray(backend))
    cached = ft.ChunkCachedArray(source, (16, 16), capacity=100)
    band = xr.Variable(("y", "x"), indexing.LazilyIndexedArray(cached))
    windows = [(r, r + 20, c, c + 25) for r in range(0, 30, 7) for c in range(0, 45, 9)]
    with ThreadPoolExecutor(4) as pool:
        parts = list(pool.map(lambda w: band[w[0] : w[1], w[2] : w[3]].values, windows * 3))
    for (r0, r1, c0, c1), part in zip(windows * 3, parts, strict=True):
        np.testing.assert_array_equal(part, values[r0:r1, c0:c1])
    assert len(backend.reads) == cached.decoded == 3 * 4  # every chunk touched, once
    np.testing.assert_array_equal(band[3, 5:40:3].values, values[3, 5:40:3])
    np.testing.assert_array_equal(band[-1, :].values, values[-1, :])


def test_lazy_feature_dataset_computes_what_is_read(
    scene: tuple[xr.Dataset, xr.Dataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    _optical, inputs = scene
    bands = ["red", "relative_elevation", "aspect", "tc_greenness"]
    eager = ft.feature_dataset(inputs, bands, PARAMS, window=(4, 60, 6, 77))
    computed: list[ft.Window] = []
    physical = ft._physical

    def counting(inputs, window, names, params):  # type: ignore[no-untyped-def]
        computed.append(window)
        return physical(inputs, window, names, params)

    monkeypatch.setattr(ft, "_physical", counting)
    lazy = ft.feature_dataset(inputs, bands, PARAMS, window=(4, 60, 6, 77), lazy=True)
    assert computed == []
    xr.testing.assert_identical(lazy.coords.to_dataset(), eager.coords.to_dataset())
    for band in bands:
        assert lazy[band].attrs["units"] == eager[band].attrs["units"]
        assert lazy[band].dtype == np.float32
        part = lazy[band][10:20].values  # rows 14..24 of the scene
        np.testing.assert_array_equal(part, eager[band].values[10:20], err_msg=band)
        assert computed[-1] == (14, 24, 6, 77)
        np.testing.assert_array_equal(
            lazy[band].isel(y=5, x=slice(2, 30, 4)).values, eager[band].values[5, 2:30:4]
        )
        np.testing.assert_array_equal(lazy[band].values, eager[band].values, err_msg=band)


def test_feature_window_writes_into_a_given_buffer(scene: tuple[xr.Dataset, xr.Dataset]) -> None:
    _optical, inputs = scene
    window = WINDOWS["interior"]
    expected = ft.feature_window(inputs, window, ft.ALL_FEATURES, PARAMS)
    buffer = np.full((2, len(ft.ALL_FEATURES), 24, 30), np.nan, dtype=np.float32)
    out = ft.feature_window(inputs, window, ft.ALL_FEATURES, PARAMS, out=buffer[1])
    assert out is buffer[1] or np.shares_memory(out, buffer)
    np.testing.assert_array_equal(buffer[1], expected)
    assert np.isnan(buffer[0]).all()
    with pytest.raises(ValueError, match="out must be"):
        ft.feature_window(inputs, window, ["red"], PARAMS, out=buffer[1])


def test_tcvis_validity_is_kept_as_bits_and_caches_can_be_released(
    scene: tuple[xr.Dataset, xr.Dataset],
) -> None:
    optical, inputs = scene
    assert not inputs[ft.TCVIS_VALID].variable._in_memory  # bits, unpacked when read
    grid = grid_of_dataset(optical)
    expected = ft.reproject_tcvis(make_tcvis(grid, cover=0.7), grid)["valid"].values
    partial = ft.build_inputs(optical, None, make_tcvis(grid, cover=0.7), PARAMS)
    valid = partial[ft.TCVIS_VALID]
    np.testing.assert_array_equal(valid.values, expected)
    assert valid.dtype == np.uint8 and 0 < expected.sum() < expected.size
    for rows, cols in [(slice(3, 40), slice(5, 77)), (slice(0, 64, 5), slice(9, 10)), (7, 3)]:
        np.testing.assert_array_equal(valid[rows, cols].values, expected[rows, cols])
    lazy, backends = _lazy_optical(optical, (32, 32))
    streamed = ft.build_inputs(lazy, None, None, PARAMS)
    ft.feature_window(streamed, (0, 40, 0, 40), ["red"], PARAMS)
    reads = len(backends["B04_10m"].reads)
    ft.feature_window(streamed, (0, 40, 0, 40), ["red"], PARAMS)
    assert len(backends["B04_10m"].reads) == reads  # kept
    ft.release_caches(streamed)
    ft.feature_window(streamed, (0, 40, 0, 40), ["red"], PARAMS)
    assert len(backends["B04_10m"].reads) == 2 * reads  # decoded again
