"""NDVI and the normalisation to model space (processing.md table)."""

from __future__ import annotations

import numpy as np
import pytest

from darts.errors import DartsError
from darts.processing.indices import OPTICAL_ALIASES, ndvi
from darts.processing.normalize import NORMALIZATION, UnknownBandError, normalize

EXPECTED_RANGES = {
    "blue": (-0.1, 0.5),
    "green": (-0.1, 0.5),
    "red": (-0.1, 0.5),
    "nir": (-0.1, 0.5),
    "ndvi": (-1.0, 1.0),
    "relative_elevation": (-50.0, 50.0),
    "slope": (0.0, 90.0),
    "aspect": (0.0, 360.0),
    "hillshade": (0.0, 1.0),
    "curvature": (-1.0, 1.0),
    "tc_brightness": (0.0, 255.0),
    "tc_greenness": (0.0, 255.0),
    "tc_wetness": (0.0, 255.0),
}


def test_the_table_is_the_one_of_processing_md() -> None:
    assert NORMALIZATION == EXPECTED_RANGES


@pytest.mark.parametrize("band", sorted(EXPECTED_RANGES))
def test_corners_midpoint_outside_and_nan(band: str) -> None:
    lo, hi = EXPECTED_RANGES[band]
    span = hi - lo
    values = np.array([lo, hi, (lo + hi) / 2, lo - span, hi + span, np.nan], dtype=np.float32)
    result = normalize(band, values)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, [0.0, 1.0, 0.5, 0.0, 1.0, 0.0], atol=1e-6)


def test_normalize_does_not_touch_its_input_and_keeps_the_shape() -> None:
    values = np.array([[0.1, np.nan], [0.7, -0.3]], dtype=np.float32)
    before = values.copy()
    result = normalize("red", values)
    np.testing.assert_array_equal(values, before)
    np.testing.assert_allclose(result, [[1 / 3, 0.0], [1.0, 0.0]], atol=1e-6)
    integers = normalize("tc_wetness", np.array([0, 51, 255], dtype=np.uint8))
    np.testing.assert_allclose(integers, [0.0, 0.2, 1.0], atol=1e-6)


def test_unknown_band_names_are_a_clear_user_error() -> None:
    with pytest.raises(UnknownBandError, match=r"'swir'.*known bands: blue") as caught:
        normalize("swir", np.zeros(3))
    assert isinstance(caught.value, DartsError)


def test_optical_aliases_map_colours_to_the_stored_10m_bands() -> None:
    assert OPTICAL_ALIASES == {
        "blue": "B02_10m",
        "green": "B03_10m",
        "red": "B04_10m",
        "nir": "B08_10m",
    }


def test_ndvi_by_hand() -> None:
    red = np.array([0.1, 0.2, 0.3, -0.05, 0.0, 0.2, np.nan, 1.4], dtype=np.float32)
    nir = np.array([0.5, 0.2, 0.1, 0.3, 0.0, np.nan, 0.3, 0.2], dtype=np.float32)
    result = ndvi(red, nir)
    assert result.dtype == np.float32
    expected = [
        0.4 / 0.6,  # vegetation
        0.0,  # equal
        -0.2 / 0.4,  # water-like
        1.0,  # negative red reflectance clipped to 0 first
        np.nan,  # 0 / 0
        np.nan,  # no nir
        np.nan,  # no red
        (0.2 - 1.0) / 1.2,  # red above 1 clipped to 1
    ]
    np.testing.assert_allclose(result, expected, atol=1e-6)
    assert (np.nan_to_num(result) >= -1).all() and (np.nan_to_num(result) <= 1).all()


def test_normalize_into_a_given_buffer_is_the_same_as_a_new_array() -> None:
    values = np.array([[0.0, 0.25, np.nan], [1.5, -0.3, 0.7]], dtype=np.float64)
    expected = normalize("red", values)
    out = np.full((2, 2, 3), 9.0, dtype=np.float32)
    returned = normalize("red", values, out=out[1])
    assert np.shares_memory(returned, out)
    np.testing.assert_array_equal(out[1], expected)
    assert (out[0] == 9.0).all()
