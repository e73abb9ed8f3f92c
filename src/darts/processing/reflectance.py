"""Digital numbers → surface reflectance, applied explicitly by the reader.

The scene store keeps bands as delivered (uint16 DN) with the STAC attributes
``raster:scale``, ``raster:offset`` and ``nodata``; nothing decodes them
implicitly, so the conversion happens exactly once, here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr

_PACKING_KEYS = ("raster:scale", "raster:offset", "nodata")
# Converted in row blocks so the float64 intermediate stays small (a full 10980²
# band in float64 would be ~1 GB on top of the float32 result).
_BLOCK_ROWS = 1024


def is_dn_band(band: xr.DataArray) -> bool:
    return "raster:scale" in band.attrs or "raster:offset" in band.attrs


def dn_to_reflectance(band: xr.DataArray) -> xr.DataArray:
    """float32 ``DN·scale + offset``; nodata pixels become NaN."""
    scale = float(band.attrs.get("raster:scale", 1.0))
    offset = float(band.attrs.get("raster:offset", 0.0))
    nodata = _number(band.attrs.get("nodata"))
    result = xr.apply_ufunc(
        _convert,
        band,
        kwargs={"scale": scale, "offset": offset, "nodata": nodata},
        dask="parallelized",
        output_dtypes=[np.float32],
    )
    result.attrs = {k: v for k, v in band.attrs.items() if k not in _PACKING_KEYS}
    return result


def to_reflectance(ds: xr.Dataset) -> xr.Dataset:
    """Every DN band (one with ``raster:scale``/``raster:offset``) as float32
    reflectance; other variables (e.g. SCL) are returned unchanged."""
    converted = {
        name: dn_to_reflectance(var) for name, var in ds.data_vars.items() if is_dn_band(var)
    }
    return ds.assign(converted)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    return float(value)  # also parses STAC's "nan"


def _convert(dn: np.ndarray, *, scale: float, offset: float, nodata: float | None) -> np.ndarray:
    # When offset is a whole number of scale steps (CDSE: -0.1 = -1000 · 1e-4) the
    # subtraction is done on integers first: DN 1000 then gives exactly 0.0 instead
    # of a float64 rounding residue like 1e-17.
    steps = -offset / scale if scale else math.nan
    integral = math.isfinite(steps) and abs(steps - round(steps)) < 1e-6
    if dn.ndim == 0:
        return _convert(dn[None], scale=scale, offset=offset, nodata=nodata)[0]
    out = np.empty(dn.shape, dtype=np.float32)
    for start in range(0, dn.shape[0], _BLOCK_ROWS):
        rows = slice(start, start + _BLOCK_ROWS)
        block = dn[rows].astype(np.float64)
        values = (block - round(steps)) * scale if integral else block * scale + offset
        if nodata is not None and not math.isnan(nodata):
            values[dn[rows] == nodata] = np.nan
        out[rows] = values
    return out
