"""The georeferencing a store writes beside a scene's or a cube's pixels.

Stored as plain attributes (``proj:code``, ``proj:transform``, WKT, GDAL
``GeoTransform``) plus a CF-style ``spatial_ref`` scalar coordinate, so a reader
can rebuild a georeferenced Dataset with xarray alone, and rioxarray / GDAL-aware
tools find what they expect. The grid itself, and how it is read back from such
arrays, is :mod:`darts.grid.scene`.
"""

from __future__ import annotations

import math
from contextlib import suppress
from typing import Any

from pyproj import CRS
from pyproj.exceptions import CRSError

from darts.grid.scene import GRID_MAPPING, Grid


def band_attrs(grid: Grid) -> dict[str, Any]:
    """Attributes that make a single band array on ``grid`` self-describing."""
    return {
        "proj:code": grid.crs_code,
        "proj:shape": list(grid.shape),
        "proj:transform": list(grid.transform),
        "GeoTransform": grid.geotransform(),
        "grid_mapping": GRID_MAPPING,
        # xarray turns names listed here into coordinates when it opens the store,
        # so spatial_ref comes back as a coordinate, not as a data variable.
        "coordinates": GRID_MAPPING,
    }


def spatial_ref_attrs(grid: Grid) -> dict[str, Any]:
    """CF grid-mapping attributes of ``grid``'s CRS plus the GDAL/rioxarray spellings."""
    attrs: dict[str, Any] = {}
    # Not every CRS has a CF grid mapping; the WKT below is enough on its own.
    with suppress(CRSError):
        attrs.update(CRS.from_wkt(grid.crs_wkt).to_cf())
    attrs["crs_wkt"] = grid.crs_wkt
    attrs["spatial_ref"] = grid.crs_wkt
    attrs["GeoTransform"] = grid.geotransform()
    if grid.crs_code:
        attrs["proj:code"] = grid.crs_code
    return {k: v for k, v in attrs.items() if _json_safe(v)}


def _json_safe(value: Any) -> bool:
    return not (isinstance(value, float) and not math.isfinite(value))


def axis_attributes(dim: str, crs: CRS) -> dict[str, Any]:
    """CF attributes of the ``x`` or ``y`` coordinate array (pixel centres) in ``crs``:
    longitude/latitude in degrees for a geographic CRS, else projection coordinates in
    the CRS's unit."""
    if crs.is_geographic:
        name = "longitude" if dim == "x" else "latitude"
        return {
            "standard_name": name,
            "long_name": f"{name} (pixel centre)",
            "units": "degrees_east" if dim == "x" else "degrees_north",
            "axis": dim.upper(),
        }
    unit = crs.axis_info[0].unit_name if crs.axis_info else "metre"
    return {
        "standard_name": f"projection_{dim}_coordinate",
        "long_name": f"{dim} coordinate of projection (pixel centre)",
        "units": unit,
        "axis": dim.upper(),
    }
