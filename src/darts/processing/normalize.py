"""Physical feature values → the 0..1 model space the checkpoints were trained on.

``clip(nan→0((x − lo) / (hi − lo)), 0, 1)`` with the ranges of processing.md. The
table is fixed by the trained models: changing a range silently changes what every
checkpoint sees.
"""

from __future__ import annotations

import numpy as np

from darts.errors import DartsError

NORMALIZATION: dict[str, tuple[float, float]] = {
    # surface reflectance, DN·1e-4 − 0.1 for CDSE L2A
    "blue": (-0.1, 0.5),
    "green": (-0.1, 0.5),
    "red": (-0.1, 0.5),
    "nir": (-0.1, 0.5),
    "ndvi": (-1.0, 1.0),
    "relative_elevation": (-50.0, 50.0),  # metres
    "slope": (0.0, 90.0),  # degrees
    "aspect": (0.0, 360.0),  # degrees
    "hillshade": (0.0, 1.0),
    "curvature": (-1.0, 1.0),  # Zevenbergen–Thorne ×100/cell²
    "tc_brightness": (0.0, 255.0),
    "tc_greenness": (0.0, 255.0),
    "tc_wetness": (0.0, 255.0),
}


class UnknownBandError(DartsError):
    """A band name no normalisation (and so no model input) is defined for."""


def band_range(name: str) -> tuple[float, float]:
    try:
        return NORMALIZATION[name]
    except KeyError:
        known = ", ".join(NORMALIZATION)
        raise UnknownBandError(f"unknown model input band {name!r}; known bands: {known}") from None


def normalize(name: str, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float32 model-space values of band ``name``; NaN (no data) becomes 0. Written
    into ``out`` (float32, the shape of ``values``) when given, else a new array."""
    lo, hi = band_range(name)
    values = np.asarray(values)
    if out is None:
        out = np.empty(values.shape, dtype=np.float32)
    # In place on one float32 array: no float64 intermediates for a large window.
    if values.dtype == np.float32:
        np.subtract(values, np.float32(lo), out=out)
    else:  # rounded to float32 first, as the values are
        out[...] = values
        out -= np.float32(lo)
    out /= np.float32(hi - lo)
    # fmax/fmin ignore NaN: NaN → 0, then clipped to [0, 1] (±inf → 1 / 0).
    np.fmax(out, np.float32(0.0), out=out)
    np.fmin(out, np.float32(1.0), out=out)
    return out
