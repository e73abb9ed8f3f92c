"""Per-pixel data quality from the Sentinel-2 scene classification (SCL) or, for
quarterly mosaics, from the number of valid observations behind each pixel.

uint8 levels: 0 invalid, 1 low, 2 high. Pixels below the run's ``quality_level``
are excluded from detections.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

INVALID, LOW, HIGH = 0, 1, 2

# SCL classes: 0 no data, 1 saturated/defective → invalid; 2 dark area, 4 vegetation,
# 5 not vegetated, 6 water, 7 unclassified, 10 thin cirrus → high; 3 cloud shadow,
# 8/9 cloud medium/high probability, 11 snow/ice → low.
SCL_QUALITY = {0: 0, 1: 0, 2: 2, 3: 1, 4: 2, 5: 2, 6: 2, 7: 2, 8: 1, 9: 1, 10: 2, 11: 1}

# Values that are not SCL classes (12..255, negative, NaN, fractions from a wrong
# resampling) are invalid rather than guessed.
_LOOKUP = np.zeros(256, dtype=np.uint8)
for _class, _level in SCL_QUALITY.items():
    _LOOKUP[_class] = _level


def quality_mask_from_scl(scl: xr.DataArray) -> xr.DataArray:
    """uint8 quality (0 invalid, 1 low, 2 high) with the SCL array's coordinates."""
    mask = xr.apply_ufunc(_lookup, scl, dask="parallelized", output_dtypes=[np.uint8])
    mask.name = "quality"
    mask.attrs = {
        "long_name": "data quality from the Sentinel-2 scene classification",
        "flag_values": [INVALID, LOW, HIGH],
        "flag_meanings": "invalid low high",
    }
    return mask


# Mosaic observation counts: 0 → invalid, 1–3 → low, more → high (processing.md).
HIGH_QUALITY_OBSERVATIONS = 4
# The names under which the two kinds of quality source are stored.
SCL_BANDS = ("SCL_20m", "SCL_60m", "SCL_10m", "SCL")
OBSERVATIONS_BAND = "observations"


def quality_mask_from_observations(observations: xr.DataArray) -> xr.DataArray:
    """uint8 quality from a mosaic's per-pixel count of valid observations."""
    mask = xr.apply_ufunc(
        _observation_levels, observations, dask="parallelized", output_dtypes=[np.uint8]
    )
    mask.name = "quality"
    mask.attrs = {
        "long_name": "data quality from the number of valid observations",
        "flag_values": [INVALID, LOW, HIGH],
        "flag_meanings": "invalid low high",
    }
    return mask


def quality_mask(band: xr.DataArray) -> xr.DataArray:
    """The quality mask from whichever quality band a scene carries, by its name."""
    name = str(band.name)
    if name == OBSERVATIONS_BAND:
        return quality_mask_from_observations(band)
    if name in SCL_BANDS or name.startswith("SCL"):
        return quality_mask_from_scl(band)
    raise ValueError(f"no quality mask can be derived from band {name!r}")


def _observation_levels(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind == "f":
        values = np.where(np.isfinite(values), values, 0)
    levels = np.full(values.shape, LOW, dtype=np.uint8)
    levels[values >= HIGH_QUALITY_OBSERVATIONS] = HIGH
    levels[values <= 0] = INVALID
    return levels


def _lookup(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind in "ui":
        # Out-of-range integers map to 255, which the table marks invalid.
        index = np.where((values >= 0) & (values < 256), values, 255).astype(np.uint8)
        return _LOOKUP[index]
    finite = np.isfinite(values)
    whole = finite & (values == np.round(np.where(finite, values, 0)))
    in_range = whole & (values >= 0) & (values < 256)
    index = np.where(in_range, np.where(finite, values, 255), 255).astype(np.uint8)
    return _LOOKUP[index]
