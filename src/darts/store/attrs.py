"""Band attributes as stored: JSON-safe, and never CF packing attributes.

Bands are kept as the digital numbers the provider delivered (uint16 DN for
reflectance). If a band carried CF ``scale_factor`` / ``add_offset`` /
``_FillValue``, xarray would silently decode it to float on read; so those are
renamed to their STAC spellings (``raster:scale``, ``raster:offset``,
``nodata``), which carry the same information and which no library applies
behind the reader's back. ``darts.processing.reflectance`` applies them
explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from darts.store.errors import StoreError

# CF name → STAC name; an explicit STAC attribute wins over the CF one.
_CF_PACKING = {
    "scale_factor": "raster:scale",
    "add_offset": "raster:offset",
    "_FillValue": "nodata",
    "missing_value": "nodata",
}
# Georeferencing is written by the store from the checked grid, never copied.
_GEOREF_KEYS = {
    "grid_mapping",
    "coordinates",
    "_Unsigned",
    "GeoTransform",
    "proj:transform",
    "proj:shape",
    "proj:code",
    "proj:epsg",
    "proj:wkt2",
    "crs",
    "crs_wkt",
    "spatial_ref",
    "transform",
}


def to_json_value(value: Any) -> Any:
    """A JSON-safe copy; non-finite floats become "nan"/"inf"/"-inf" as STAC writes them."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def band_attributes(name: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if key in _GEOREF_KEYS:
            continue
        target = _CF_PACKING.get(key, key)
        if target != key and target in attrs:
            continue
        out[target] = to_json_value(value)
    return out


def fill_value_for(name: str, dtype: np.dtype[Any], nodata: Any) -> Any:
    """The zarr fill value: the band's nodata value in its dtype (0 if it has none).

    Using nodata as fill lets zarr skip chunks that are entirely nodata, and a
    reader of a skipped chunk gets nodata back, which is what was there.
    """
    if nodata is None:
        return 0
    try:
        value = float(nodata)
    except (TypeError, ValueError):
        raise StoreError(f"band {name!r}: nodata {nodata!r} is not a number") from None
    if dtype.kind == "f":
        return value
    if not value.is_integer():
        raise StoreError(f"band {name!r}: nodata {nodata!r} is not valid for {dtype}")
    info = np.iinfo(dtype)
    if not info.min <= value <= info.max:
        raise StoreError(f"band {name!r}: nodata {nodata!r} does not fit {dtype}")
    return int(value)
