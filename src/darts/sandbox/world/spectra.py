"""Surface reflectance of the world's materials in the twelve Sentinel-2 L2A bands.

Values are typical bottom-of-atmosphere reflectances for Arctic tundra scenes: green
shrub tundra has NIR ~0.33 and red ~0.035, sparse/brown tundra NIR ~0.25 and red
~0.06, fresh slump mud is brighter in the visible and SWIR and darker in the NIR than
vegetation, water is dark beyond the green, snow is bright in the visible and dark in
the SWIR, clouds are bright everywhere including the SWIR.
"""

from __future__ import annotations

import numpy as np

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
BAND_INDEX = {name: i for i, name in enumerate(BANDS)}


def _spectrum(*values: float) -> np.ndarray:
    assert len(values) == len(BANDS)
    return np.array(values, dtype=np.float32)[:, None, None]


# Reflectance per band, in the order of BANDS:
#   B01    B02    B03    B04    B05    B06    B07    B08    B8A    B09    B11    B12
# fmt: off
TUNDRA_SPARSE = _spectrum(
    0.035, 0.040, 0.065, 0.060, 0.110, 0.190, 0.230, 0.250, 0.260, 0.250, 0.220, 0.130)
TUNDRA_GREEN = _spectrum(
    0.025, 0.028, 0.055, 0.033, 0.090, 0.250, 0.310, 0.340, 0.350, 0.330, 0.170, 0.080)
SLUMP_MUD = _spectrum(
    0.070, 0.085, 0.120, 0.150, 0.170, 0.185, 0.195, 0.200, 0.210, 0.200, 0.270, 0.220)
WATER = _spectrum(
    0.050, 0.045, 0.040, 0.025, 0.020, 0.015, 0.012, 0.010, 0.008, 0.006, 0.004, 0.003)
SNOW = _spectrum(
    0.850, 0.860, 0.850, 0.830, 0.820, 0.800, 0.780, 0.760, 0.740, 0.650, 0.100, 0.060)
CLOUD = _spectrum(
    0.620, 0.610, 0.600, 0.600, 0.600, 0.600, 0.590, 0.590, 0.580, 0.500, 0.450, 0.330)
CIRRUS = _spectrum(
    0.060, 0.060, 0.055, 0.050, 0.050, 0.050, 0.050, 0.050, 0.050, 0.040, 0.040, 0.030)
# fmt: on

# L2A digital numbers: DN = (reflectance + 0.1) / 0.0001 (BOA_ADD_OFFSET -1000), 0 = no data.
SCALE = 0.0001
OFFSET = -0.1


def to_dn(reflectance: np.ndarray) -> np.ndarray:
    dn = np.rint((reflectance - OFFSET) / SCALE)
    return np.clip(dn, 1, 65535).astype(np.uint16)


def to_reflectance(dn: np.ndarray) -> np.ndarray:
    return dn.astype(np.float32) * SCALE + OFFSET
