"""Postprocessing: valid mask, erosion, edge, thresholds and object filtering."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from pyproj import CRS
from scipy.ndimage import binary_erosion

from darts.grid.scene import Grid
from darts.processing import postprocess as pp
from darts.processing.postprocess import PostprocessParams, postprocess
from darts.sources.decode import grid_coords

SHAPE = (60, 60)
NO_EROSION = PostprocessParams(mask_erosion_size=0, edge_erosion_size=0, min_object_size=0)


def _coords() -> dict:
    crs = "EPSG:32606"
    grid = Grid(SHAPE, (10.0, 0.0, 600000.0, 0.0, -10.0, 7_500_000.0), crs, CRS(crs).to_wkt())
    return grid_coords(grid)


def arrays(probabilities: np.ndarray, quality: np.ndarray) -> tuple[xr.DataArray, xr.DataArray]:
    coords = _coords()
    prob = xr.DataArray(probabilities.astype(np.float32), dims=("y", "x"), coords=coords)
    qual = xr.DataArray(quality.astype(np.uint8), dims=("y", "x"), coords=coords)
    return prob, qual


def disk(radius: int) -> np.ndarray:
    offsets = np.arange(-radius, radius + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2


# -- the valid mask ---------------------------------------------------------------------


def test_valid_is_quality_at_or_above_the_level() -> None:
    rng = np.random.default_rng(3)
    quality = rng.integers(0, 3, SHAPE)
    prob, qual = arrays(np.full(SHAPE, 0.2), quality)
    for level in (0, 1, 2):
        params = PostprocessParams(
            mask_erosion_size=0, edge_erosion_size=0, min_object_size=0, quality_level=level
        )
        result = postprocess(prob, qual, params)
        assert result["valid"].dtype == np.uint8
        np.testing.assert_array_equal(result["valid"].values, quality >= level)


def test_erosion_removes_a_disk_around_invalid_pixels() -> None:
    quality = np.full(SHAPE, 2)
    quality[30, 30] = 0
    prob, qual = arrays(np.full(SHAPE, 0.2), quality)
    params = PostprocessParams(mask_erosion_size=2, edge_erosion_size=0)
    invalid = postprocess(prob, qual, params)["valid"].values == 0
    expected = np.zeros(SHAPE, dtype=bool)
    expected[28:33, 28:33] = disk(2)
    np.testing.assert_array_equal(invalid, expected)
    assert invalid.sum() == 13


@pytest.mark.parametrize("rows_per_block", [512, 7])
def test_erosion_matches_a_plain_disk_erosion(
    rows_per_block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pp, "_EROSION_ROWS", rows_per_block)
    rng = np.random.default_rng(11)
    mask = rng.random(SHAPE) > 0.02
    mask[:, :8] = True  # a fully valid block and a fully invalid one
    mask[40:55, 40:55] = False
    for radius in (1, 3, 5):
        expected = binary_erosion(mask, structure=disk(radius), border_value=1)
        np.testing.assert_array_equal(pp.erode_disk(mask, radius), expected)


def test_edge_blanking_defaults_to_the_mask_erosion() -> None:
    prob, qual = arrays(np.full(SHAPE, 0.2), np.full(SHAPE, 2))
    explicit = postprocess(prob, qual, PostprocessParams(mask_erosion_size=0, edge_erosion_size=3))
    valid = explicit["valid"].values.astype(bool)
    assert not valid[:3].any() and not valid[-3:].any()
    assert not valid[:, :3].any() and not valid[:, -3:].any()
    assert valid[3:-3, 3:-3].all()
    default = postprocess(prob, qual, PostprocessParams(mask_erosion_size=4))
    inner = default["valid"].values.astype(bool)
    assert not inner[:4].any() and inner[4:-4, 4:-4].all()
    # The outside of the scene is not invalid data: nothing beyond the edge is eroded.
    assert inner[4, 4]


# -- detections -------------------------------------------------------------------------


def scene_with_objects() -> tuple[np.ndarray, np.ndarray, dict[str, tuple[slice, slice]]]:
    prob = np.full(SHAPE, 0.1)
    quality = np.full(SHAPE, 2)
    quality[:, 50:] = 0  # clouds along the east side
    objects = {
        "kept": (slice(5, 11), slice(5, 11)),  # 36 px, inside
        "small": (slice(20, 23), slice(5, 8)),  # 9 px
        "at clouds": (slice(5, 11), slice(42, 48)),  # reaches the eroded cloud border
        "at edge": (slice(0, 6), slice(25, 31)),  # reaches the blanked scene edge
        "at threshold": (slice(45, 51), slice(5, 11)),  # p = 0.5 exactly
        "below threshold": (slice(45, 51), slice(20, 26)),  # p = 0.49
    }
    for name, where in objects.items():
        prob[where] = {"at threshold": 0.5, "below threshold": 0.49}.get(name, 0.9)
    # Two 4×4 squares meeting at one corner: one object of 32 px at 8-connectivity,
    # two of 16 px (both too small) at 4-connectivity.
    prob[30:34, 10:14] = 0.9
    prob[34:38, 14:18] = 0.9
    return prob, quality, objects


def test_objects_filtered_as_processing_md_says() -> None:
    prob, quality, objects = scene_with_objects()
    params = PostprocessParams(mask_erosion_size=2, edge_erosion_size=1, min_object_size=32)
    result = postprocess(*arrays(prob, quality), params)
    binary = result["binarized"].values
    assert binary.dtype == np.uint8 and set(np.unique(binary)) <= {0, 1}
    valid = result["valid"].values.astype(bool)
    assert valid[:, 47].any() and not valid[:, 48:].any()  # erosion 2 from column 50

    assert binary[objects["kept"]].all()
    assert binary[objects["at threshold"]].all()
    for dropped in ("small", "at clouds", "at edge", "below threshold"):
        assert not binary[objects[dropped]].any(), dropped
    assert binary[30:34, 10:14].all() and binary[34:38, 14:18].all()
    assert binary.sum() == 36 + 36 + 32
    assert pp.CONNECTIVITY == 8 and result.attrs["connectivity"] == 8


def test_probabilities_are_nodata_outside_valid_and_untouched_inside() -> None:
    prob, quality, _objects = scene_with_objects()
    prob[12:18, 30:36] = np.nan  # a patch that was never computed
    prob[14:16, 36:40] = 0.95  # a detection next to it
    result = postprocess(*arrays(prob, quality), PostprocessParams(mask_erosion_size=2))
    out = result["probabilities"].values
    valid = result["valid"].values.astype(bool)
    assert out.dtype == np.float32
    assert np.isnan(out[~valid]).all()
    np.testing.assert_array_equal(out[valid], prob.astype(np.float32)[valid])
    assert not valid[12:18, 30:36].any()
    assert not result["binarized"].values[14:16, 36:40].any()  # touches the NaN patch


def test_outputs_keep_the_coordinates() -> None:
    prob, qual = arrays(np.full(SHAPE, 0.2), np.full(SHAPE, 2))
    result = postprocess(prob, qual)
    xr.align(prob, result, join="exact")
    assert result["spatial_ref"].attrs == prob["spatial_ref"].attrs
    assert result.attrs["binarization_threshold"] == 0.5
    assert result.attrs["edge_erosion_size"] is None


def test_inputs_are_not_modified_and_order_does_not_matter() -> None:
    prob, quality, _objects = scene_with_objects()
    probabilities, qual = arrays(prob, quality)
    before = (probabilities.values.copy(), qual.values.copy())
    params = PostprocessParams(mask_erosion_size=2, edge_erosion_size=1)
    first = postprocess(probabilities, qual, params)
    # A later step converting the output in place (pitfall 22) must not leak back.
    first["probabilities"].values[...] = np.nan_to_num(first["probabilities"].values) * 100
    first["binarized"].values[...] = 0
    second = postprocess(probabilities, qual, params)
    np.testing.assert_array_equal(probabilities.values, before[0])
    np.testing.assert_array_equal(qual.values, before[1])
    third = postprocess(probabilities, qual, params)
    for name in ("probabilities", "binarized", "valid"):
        np.testing.assert_array_equal(second[name].values, third[name].values)
    assert second["binarized"].values.sum() == 36 + 36 + 32


def test_parameters_are_checked() -> None:
    assert PostprocessParams().edge_size == 10
    assert PostprocessParams(mask_erosion_size=3, edge_erosion_size=0).edge_size == 0
    with pytest.raises(ValueError, match="binarization_threshold"):
        PostprocessParams(binarization_threshold=1.5)
    with pytest.raises(ValueError, match="mask_erosion_size"):
        PostprocessParams(mask_erosion_size=-1)
    with pytest.raises(ValueError, match="edge_erosion_size"):
        PostprocessParams(edge_erosion_size=-2)
    prob, qual = arrays(np.zeros(SHAPE), np.full(SHAPE, 2))
    with pytest.raises(ValueError, match="shape"):
        postprocess(prob[:10], qual, NO_EROSION)


def test_object_filtering_in_strips_equals_the_whole_scene(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(12)
    binary = rng.random((90, 70)) < 0.45
    valid = np.ones(binary.shape, dtype=bool)
    valid[40:50, 20:35] = False
    whole = pp.remove_objects(binary, valid, min_size=6)
    assert 0 < whole.sum() < binary.sum()
    monkeypatch.setattr(pp, "_EROSION_ROWS", 7)
    np.testing.assert_array_equal(pp.remove_objects(binary, valid, min_size=6), whole)


def test_a_handed_over_probability_raster_is_reused_with_the_same_result() -> None:
    prob, quality, _objects = scene_with_objects()
    params = PostprocessParams(mask_erosion_size=2, edge_erosion_size=1)
    expected = postprocess(*arrays(prob, quality), params)
    probabilities, qual = arrays(prob, quality)
    taken = postprocess(probabilities, qual, params, take_probabilities=True)
    assert np.shares_memory(taken["probabilities"].values, probabilities.values)
    for name in ("probabilities", "binarized", "valid"):
        np.testing.assert_array_equal(taken[name].values, expected[name].values)
    # Not float32: converting makes a copy anyway, and the input stays as it was.
    as_float64 = probabilities.astype(np.float64)
    before = as_float64.values.copy()
    postprocess(as_float64, qual, params, take_probabilities=True)
    np.testing.assert_array_equal(as_float64.values, before)
