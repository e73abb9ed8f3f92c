"""Spectral indices from surface reflectance.

The model's optical inputs are named by colour; the scene store names bands by their
Sentinel-2 band and resolution. `OPTICAL_ALIASES` is the one place that maps them.
"""

from __future__ import annotations

import numpy as np

OPTICAL_ALIASES: dict[str, str] = {
    "blue": "B02_10m",
    "green": "B03_10m",
    "red": "B04_10m",
    "nir": "B08_10m",
}


def ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """float32 ``(nir − red) / (nir + red)`` as in processing.md: both reflectances
    clipped to [0, 1] first (so negative L2A values cannot flip the sign), the result
    clipped to [−1, 1]. NaN where either input is NaN or both are 0."""
    r = np.clip(np.asarray(red, dtype=np.float32), 0.0, 1.0)
    n = np.clip(np.asarray(nir, dtype=np.float32), 0.0, 1.0)
    total = n + r
    with np.errstate(divide="ignore", invalid="ignore"):
        index = (n - r) / total
    index[~(total > 0)] = np.nan
    return np.clip(index, -1.0, 1.0)
