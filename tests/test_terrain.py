"""Terrain features on synthetic surfaces whose values are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from darts.processing import terrain

PX = 10.0


def _coords(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """East and north coordinates (metres) of pixel centres; rows run south."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    return cols * PX, -rows * PX


def _interior(array: np.ndarray, margin: int) -> np.ndarray:
    return array[margin:-margin, margin:-margin]


# -- relative elevation -----------------------------------------------------------------


def test_tpi_of_a_plane_is_zero_where_the_disk_is_complete() -> None:
    east, north = _coords((41, 45))
    plane = 200.0 + 0.3 * east - 0.2 * north
    tpi = terrain.relative_elevation(plane, PX, outer_radius_m=100.0)
    assert tpi.dtype == np.float32
    np.testing.assert_allclose(_interior(tpi, 10), 0.0, atol=1e-4)


def test_tpi_at_the_tip_of_a_cone_is_its_mean_drop_over_the_disk() -> None:
    east, north = _coords((41, 41))
    distance = np.hypot(east - 200.0, north + 200.0)
    steepness = 0.5
    cone = 1000.0 - steepness * distance
    tpi = terrain.relative_elevation(cone, PX, outer_radius_m=100.0)
    # The disk holds the pixels within 100 m; their mean distance from the tip is the
    # discrete version of 2R/3 for a continuous disk.
    offsets = np.arange(-10, 11) * PX
    d = np.hypot(offsets[:, None], offsets[None, :])
    mean_distance = d[d <= 100.0].mean()
    assert tpi[20, 20] == pytest.approx(steepness * mean_distance, abs=1e-3)
    assert mean_distance == pytest.approx(2 * 100.0 / 3, rel=0.02)


def test_tpi_annulus_leaves_out_the_centre_and_inner_disk() -> None:
    east, north = _coords((41, 41))
    distance = np.hypot(east - 200.0, north + 200.0)
    cone = 1000.0 - distance
    tpi = terrain.relative_elevation(cone, PX, outer_radius_m=100.0, inner_radius_m=50.0)
    offsets = np.arange(-10, 11) * PX
    d = np.hypot(offsets[:, None], offsets[None, :])
    ring = d[(d >= 50.0) & (d <= 100.0)]
    assert tpi[20, 20] == pytest.approx(ring.mean(), abs=1e-3)


def test_tpi_averages_only_valid_heights_and_is_nan_at_missing_ones() -> None:
    east, _north = _coords((31, 31))
    surface = 100.0 + 0.0 * east
    surface[15, 15] = np.nan
    surface[15, 17] = 160.0  # one bump
    tpi = terrain.relative_elevation(surface, PX, outer_radius_m=30.0)
    assert np.isnan(tpi[15, 15])
    assert np.isfinite(np.delete(tpi.ravel(), 15 * 31 + 15)).all()
    # Neighbour of the hole: its disk has 29 pixels, one NaN, one bump of +60.
    kernel = terrain.tpi_kernel(PX, 30.0)
    count = int(kernel.sum())
    assert count == 29
    assert tpi[15, 16] == pytest.approx(-60.0 / (count - 1), abs=1e-4)


def test_tpi_kernel_includes_the_rim_and_rejects_bad_radii() -> None:
    kernel = terrain.tpi_kernel(10.0, 100.0)
    assert kernel.shape == (21, 21)
    assert kernel[10, 0] == 1 and kernel[0, 10] == 1 and kernel[0, 0] == 0
    with pytest.raises(ValueError, match="inner"):
        terrain.tpi_kernel(10.0, 50.0, 60.0)
    with pytest.raises(ValueError, match="no pixel"):
        terrain.tpi_kernel(10.0, 14.0, 10.5)  # between 10 m and 14.1 m


def test_halo_is_the_disk_reach_and_at_least_one_pixel() -> None:
    assert terrain.TERRAIN_HALO_PX(10.0, 100.0) == 10
    assert terrain.TERRAIN_HALO_PX(10.0, 105.0) == 10
    assert terrain.TERRAIN_HALO_PX(3.0, 100.0) == 33
    assert terrain.TERRAIN_HALO_PX(10.0, 5.0) == 1


# -- slope, aspect, hillshade, curvature ------------------------------------------------


def test_slope_of_a_tilted_plane_and_of_flat_ground() -> None:
    east, north = _coords((8, 9))
    for gradient in (0.1, 1.0, 3.0):
        plane = gradient * east
        slope = terrain.slope(plane, PX)
        expected = math.degrees(math.atan(gradient))
        np.testing.assert_allclose(_interior(slope, 1), expected, atol=1e-4)
        assert np.isnan(slope[0]).all() and np.isnan(slope[:, -1]).all()
    np.testing.assert_array_equal(_interior(terrain.slope(np.full((5, 5), 7.0), PX), 1), 0.0)
    diagonal = 0.3 * east + 0.4 * north
    np.testing.assert_allclose(
        _interior(terrain.slope(diagonal, PX), 1), math.degrees(math.atan(0.5)), atol=1e-4
    )


@pytest.mark.parametrize(
    ("rise_east", "rise_north", "faces"),
    [(0.0, -1.0, 0.0), (-1.0, 0.0, 90.0), (0.0, 1.0, 180.0), (1.0, 0.0, 270.0), (-1, -1, 45)],
)
def test_aspect_is_the_downhill_direction_clockwise_from_north(
    rise_east: float, rise_north: float, faces: float
) -> None:
    east, north = _coords((6, 6))
    plane = rise_east * east + rise_north * north
    aspect = terrain.aspect(plane, PX)
    np.testing.assert_allclose(_interior(aspect, 1), faces, atol=1e-4)


def test_aspect_of_flat_ground_is_nan_and_north_bearing_rotates_it() -> None:
    assert np.isnan(terrain.aspect(np.full((5, 5), 3.0), PX)).all()
    east, _north = _coords((6, 6))
    facing_west = 0.5 * east
    rotated = terrain.aspect(facing_west, PX, north_bearing_deg=100.0)
    np.testing.assert_allclose(_interior(rotated, 1), 170.0, atol=1e-4)
    wrapped = terrain.aspect(facing_west, PX, north_bearing_deg=-100.0)
    np.testing.assert_allclose(_interior(wrapped, 1), 10.0, atol=1e-4)


def test_hillshade_flat_sun_facing_and_self_shadowed() -> None:
    flat = terrain.hillshade(np.full((5, 5), 50.0), PX, 225.0, 25.0)
    np.testing.assert_allclose(_interior(flat, 1), math.sin(math.radians(25.0)), atol=1e-6)
    east, _north = _coords((6, 6))
    # A slope of 65° facing west, sun in the west at 25°: the sun is perpendicular to it.
    facing_west = math.tan(math.radians(65.0)) * east
    lit = terrain.hillshade(facing_west, PX, 270.0, 25.0)
    np.testing.assert_allclose(_interior(lit, 1), 1.0, atol=1e-5)
    shadowed = terrain.hillshade(facing_west, PX, 90.0, 25.0)
    np.testing.assert_allclose(_interior(shadowed, 1), 0.0, atol=1e-6)


def test_hillshade_north_bearing_turns_the_sun_on_the_grid() -> None:
    east, north = _coords((7, 7))
    surface = 0.4 * east + 0.1 * north + 0.02 * east * north / PX
    turned = terrain.hillshade(surface, PX, 200.0, 30.0, north_bearing_deg=35.0)
    plain = terrain.hillshade(surface, PX, 235.0, 30.0)
    np.testing.assert_allclose(turned, plain, atol=1e-6)


def test_curvature_of_a_paraboloid_and_its_sign() -> None:
    east, north = _coords((9, 9))
    k = 0.002
    bowl = k * ((east - 40.0) ** 2 + (north + 40.0) ** 2)
    np.testing.assert_allclose(_interior(terrain.curvature(bowl, PX), 1), -400 * k, rtol=1e-6)
    np.testing.assert_allclose(_interior(terrain.curvature(-bowl, PX), 1), 400 * k, rtol=1e-6)
    plane = 0.3 * east - 0.1 * north
    np.testing.assert_allclose(_interior(terrain.curvature(plane, PX), 1), 0.0, atol=1e-9)


def test_nan_heights_spread_to_the_pixels_whose_stencil_uses_them() -> None:
    east, _north = _coords((9, 9))
    surface = 0.2 * east
    surface[4, 4] = np.nan
    square = np.zeros((9, 9), dtype=bool)
    square[3:6, 3:6] = True
    for result in (
        terrain.slope(surface, PX),
        terrain.aspect(surface, PX),
        terrain.hillshade(surface, PX, 225.0, 25.0),
    ):
        np.testing.assert_array_equal(np.isnan(result)[1:-1, 1:-1], square[1:-1, 1:-1])
    # Zevenbergen–Thorne uses the centre and its four edge neighbours only.
    cross = np.zeros((9, 9), dtype=bool)
    cross[3:6, 4] = True
    cross[4, 3:6] = True
    curvature = terrain.curvature(surface, PX)
    np.testing.assert_array_equal(np.isnan(curvature)[1:-1, 1:-1], cross[1:-1, 1:-1])


# -- conventions ------------------------------------------------------------------------


def test_preprocessing_versions_and_unknown_conventions() -> None:
    assert terrain.preprocessing_version("reference") == "darts-reference-v1"
    assert terrain.preprocessing_version("true-north") == "true-north-v1"
    with pytest.raises(ValueError, match="true-north"):
        terrain.terrain_convention("grid")


def test_true_north_bearing_of_utm_and_polar_stereographic() -> None:
    # UTM zone 6 (central meridian −147°), on the meridian: grid north is true north.
    assert terrain.true_north_bearing("EPSG:32606", 500000.0, 7_500_000.0) == pytest.approx(
        0.0, abs=1e-6
    )
    # East of the central meridian true north leans west on the grid: −Δλ·sin φ.
    east_of_cm = terrain.true_north_bearing("EPSG:32606", 600000.0, 7_500_000.0)
    assert -3.0 < east_of_cm < -1.5
    # EPSG:3413 (central meridian −45°): the bearing is −(λ + 45°).
    assert terrain.true_north_bearing("EPSG:3413", 0.0, -2_000_000.0) == pytest.approx(0.0)
    assert terrain.true_north_bearing("EPSG:3413", -2_000_000.0, 0.0) == pytest.approx(90.0)


def test_reference_convention_uses_the_epsg3413_north_at_the_scene() -> None:
    x, y = 600000.0, 7_500_000.0
    reference = terrain.north_bearing_for("reference", "EPSG:32606", x, y)
    true_north = terrain.north_bearing_for("true-north", "EPSG:32606", x, y)
    assert true_north == pytest.approx(terrain.true_north_bearing("EPSG:32606", x, y))
    from pyproj import Transformer

    lon, _lat = Transformer.from_crs("EPSG:32606", "EPSG:4326", always_xy=True).transform(x, y)
    assert reference == pytest.approx(-(lon + 45.0), abs=1e-6)
    # The rotation between the two is ≈ 100° here (Alaska), the "~90°" of the reference.
    assert 95.0 < reference - true_north < 110.0


# -- shortcuts of the per-window feature computation -------------------------------------


@pytest.mark.parametrize("shape", [(7, 9), (41, 45), (30, 64), (1, 5)])
@pytest.mark.parametrize("radii", [(100.0, 0.0), (100.0, 45.0), (30.0, 0.0)])
def test_counts_of_a_window_without_gaps_equal_the_convolved_counts(
    shape: tuple[int, int], radii: tuple[float, float]
) -> None:
    from scipy.signal import fftconvolve

    kernel = terrain.tpi_kernel(PX, *radii)
    convolved = np.rint(fftconvolve(np.ones(shape), kernel, mode="same"))
    counts = terrain._full_counts(shape, PX, *radii)
    np.testing.assert_array_equal(counts, convolved)
    assert not counts.flags.writeable  # cached and shared: nobody may change it


def test_tpi_without_gaps_is_the_brute_force_mean_over_the_disk() -> None:
    rng = np.random.default_rng(5)
    heights = 250.0 + rng.normal(0.0, 4.0, (15, 18))
    reach = 3  # 30 m at 10 m pixels
    expected = np.empty(heights.shape)
    for r in range(heights.shape[0]):
        for c in range(heights.shape[1]):
            values = [
                heights[r + dy, c + dx]
                for dy in range(-reach, reach + 1)
                for dx in range(-reach, reach + 1)
                if dy * dy + dx * dx <= reach * reach
                and 0 <= r + dy < heights.shape[0]
                and 0 <= c + dx < heights.shape[1]
            ]
            expected[r, c] = heights[r, c] - np.mean(values)
    tpi = terrain.relative_elevation(heights, PX, outer_radius_m=30.0)
    np.testing.assert_allclose(tpi, expected, atol=1e-4)
    gap = heights.copy()
    gap[0, 0] = np.nan  # the general path (counts of the valid heights) agrees
    np.testing.assert_allclose(
        terrain.relative_elevation(gap, PX, 30.0)[8:, 8:], tpi[8:, 8:], atol=1e-4
    )


def test_slope_aspect_and_hillshade_can_share_one_gradient() -> None:
    east, north = _coords((12, 14))
    dem = 40.0 + 0.2 * east + 0.02 * east * north / 50.0 + 3.0 * np.sin(north / 30.0)
    gradient = terrain.horn_gradient(dem, PX)
    np.testing.assert_array_equal(
        terrain.slope(None, PX, gradient=gradient), terrain.slope(dem, PX)
    )
    np.testing.assert_array_equal(
        terrain.aspect(None, PX, north_bearing_deg=12.0, gradient=gradient),
        terrain.aspect(dem, PX, north_bearing_deg=12.0),
    )
    np.testing.assert_array_equal(
        terrain.hillshade(None, PX, 135.0, 30.0, north_bearing_deg=5.0, gradient=gradient),
        terrain.hillshade(dem, PX, 135.0, 30.0, north_bearing_deg=5.0),
    )
    with pytest.raises(ValueError, match="DEM or its gradient"):
        terrain.slope(None, PX)
