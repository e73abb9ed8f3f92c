"""The georeferencing of a scene: one north-up pixel grid shared by all its bands.

Stored as plain attributes (``proj:code``, ``proj:transform``, WKT, GDAL
``GeoTransform``) plus a CF-style ``spatial_ref`` scalar coordinate, so a reader
can rebuild a georeferenced Dataset with xarray alone, and rioxarray / GDAL-aware
tools find what they expect.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from pyproj import CRS
from pyproj.exceptions import CRSError

from darts.store.errors import GridMismatchError, StoreError

DIMS = ("y", "x")
GRID_MAPPING = "spatial_ref"
# Coordinates may be off by float noise; a thousandth of a pixel is far below
# anything a resampling error would produce.
_PIXEL_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Grid:
    """``transform`` is the affine ``(a, b, c, d, e, f)`` in STAC ``proj:transform`` /
    rasterio order: x = a·col + b·row + c, y = d·col + e·row + f (pixel corners)."""

    shape: tuple[int, int]
    transform: tuple[float, float, float, float, float, float]
    crs_code: str | None
    crs_wkt: str

    @property
    def resolution(self) -> tuple[float, float]:
        return (abs(self.transform[0]), abs(self.transform[4]))

    def geotransform(self) -> str:
        """GDAL order: origin x, pixel width, row rotation, origin y, col rotation, height."""
        a, b, c, d, e, f = self.transform
        return " ".join(repr(float(v)) for v in (c, a, b, f, d, e))

    def matches(self, other: Grid) -> bool:
        if self.shape != other.shape:
            return False
        if not CRS.from_wkt(self.crs_wkt).equals(CRS.from_wkt(other.crs_wkt)):
            return False
        tol = _PIXEL_TOLERANCE * min(self.resolution + other.resolution)
        pairs = zip(self.transform, other.transform, strict=True)
        return all(math.isclose(p, q, abs_tol=tol) for p, q in pairs)

    def describe(self) -> str:
        rx, ry = self.resolution
        _a, _b, c, _d, _e, f = self.transform
        crs = self.crs_code or "custom CRS"
        return (
            f"{self.shape[0]}×{self.shape[1]} px at {rx:g}×{ry:g}, {crs}, "
            f"upper-left corner ({c:g}, {f:g})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "transform": list(self.transform),
            "proj:code": self.crs_code,
            "crs_wkt": self.crs_wkt,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Grid:
        t = [float(v) for v in doc["transform"]]
        return cls(
            shape=(int(doc["shape"][0]), int(doc["shape"][1])),
            transform=(t[0], t[1], t[2], t[3], t[4], t[5]),
            crs_code=doc.get("proj:code"),
            crs_wkt=str(doc["crs_wkt"]),
        )

    def band_attrs(self) -> dict[str, Any]:
        """Attributes that make a single band array self-describing."""
        return {
            "proj:code": self.crs_code,
            "proj:shape": list(self.shape),
            "proj:transform": list(self.transform),
            "GeoTransform": self.geotransform(),
            "grid_mapping": GRID_MAPPING,
            # xarray turns names listed here into coordinates when it opens the store,
            # so spatial_ref comes back as a coordinate, not as a data variable.
            "coordinates": GRID_MAPPING,
        }

    def spatial_ref_attrs(self) -> dict[str, Any]:
        """CF grid-mapping attributes plus the GDAL/rioxarray spellings."""
        attrs: dict[str, Any] = {}
        # Not every CRS has a CF grid mapping; the WKT below is enough on its own.
        with suppress(CRSError):
            attrs.update(CRS.from_wkt(self.crs_wkt).to_cf())
        attrs["crs_wkt"] = self.crs_wkt
        attrs["spatial_ref"] = self.crs_wkt
        attrs["GeoTransform"] = self.geotransform()
        if self.crs_code:
            attrs["proj:code"] = self.crs_code
        return {k: v for k, v in attrs.items() if _json_safe(v)}


def _json_safe(value: Any) -> bool:
    return not (isinstance(value, float) and not math.isfinite(value))


def grid_of(name: str, band: xr.DataArray, item: Mapping[str, Any]) -> Grid:
    """The grid a band array is on, from its y/x coordinates and its CRS.

    The CRS comes from the array (``proj:code``, ``crs``, a ``spatial_ref``
    coordinate or WKT attribute) or else from the STAC item; when both give one they
    must agree.
    """
    if band.dims != DIMS:
        raise GridMismatchError(
            f"band {name!r} must be a 2-D array with dims {DIMS}, got {band.dims}"
        )
    height, width = band.shape
    x_res, x_origin = _axis(name, band, "x", width)
    y_res, y_origin = _axis(name, band, "y", height)
    transform = (x_res, 0.0, x_origin, 0.0, y_res, y_origin)
    declared = band.attrs.get("proj:transform")
    if declared is not None:
        declared_grid = tuple(float(v) for v in declared)
        tol = _PIXEL_TOLERANCE * min(abs(x_res), abs(y_res))
        if len(declared_grid) < 6 or not all(
            math.isclose(p, q, abs_tol=tol)
            for p, q in zip(transform, declared_grid[:6], strict=True)
        ):
            raise GridMismatchError(
                f"band {name!r}: attribute proj:transform {list(declared)} disagrees with its "
                f"x/y coordinates {list(transform)}"
            )
    crs = _crs_of(name, band, item)
    return Grid((height, width), transform, _code_of(crs), crs.to_wkt())


def _axis(name: str, band: xr.DataArray, dim: str, size: int) -> tuple[float, float]:
    """(pixel size, corner origin) along one axis, from pixel-centre coordinates."""
    if dim not in band.coords:
        raise GridMismatchError(f"band {name!r} has no {dim!r} coordinate")
    values = np.asarray(band.coords[dim].values, dtype="float64")
    if size < 2:
        # One pixel says nothing about spacing; take it from the declared transform.
        declared = band.attrs.get("proj:transform")
        if declared is None:
            raise GridMismatchError(
                f"band {name!r} is 1 pixel wide along {dim!r}: give a proj:transform attribute"
            )
        res = float(declared[0] if dim == "x" else declared[4])
    else:
        res = float((values[-1] - values[0]) / (size - 1))
        expected = values[0] + res * np.arange(size)
        if res == 0 or np.max(np.abs(values - expected)) > _PIXEL_TOLERANCE * abs(res):
            raise GridMismatchError(f"band {name!r}: {dim!r} coordinates are not regularly spaced")
    return res, float(values[0] - res / 2)


def _crs_of(name: str, band: xr.DataArray, item: Mapping[str, Any]) -> CRS:
    own = _band_crs(band)
    from_item = _item_crs(item)
    if own is None and from_item is None:
        raise StoreError(
            f"band {name!r}: no CRS found; set attribute 'proj:code' on the array or give the "
            "item a proj:code (item properties or on every asset)"
        )
    try:
        crs = CRS.from_user_input(own if own is not None else from_item)
        if from_item is not None and not crs.equals(CRS.from_user_input(from_item)):
            raise GridMismatchError(f"band {name!r} is in {own}, but the item says {from_item}")
    except CRSError as error:
        raise StoreError(f"band {name!r}: cannot read its CRS: {error}") from None
    return crs


def _band_crs(band: xr.DataArray) -> str | None:
    for key in ("proj:code", "crs", "proj:wkt2", "crs_wkt", "spatial_ref"):
        value = band.attrs.get(key)
        if isinstance(value, str) and value:
            return value
    if GRID_MAPPING in band.coords:
        ref = band.coords[GRID_MAPPING].attrs
        for key in ("crs_wkt", "spatial_ref"):
            if isinstance(ref.get(key), str):
                return str(ref[key])
    return None


def _item_crs(item: Mapping[str, Any]) -> str | None:
    """The item's CRS: properties ``proj:code`` or, as on CDSE where the projection is
    per asset, the one code all assets share (ambiguous codes give None)."""
    properties = item.get("properties") or {}
    if properties.get("proj:code"):
        return str(properties["proj:code"])
    if properties.get("proj:epsg"):
        return f"EPSG:{properties['proj:epsg']}"
    codes = {
        str(asset["proj:code"])
        for asset in (item.get("assets") or {}).values()
        if isinstance(asset, Mapping) and asset.get("proj:code")
    }
    return codes.pop() if len(codes) == 1 else None


def _code_of(crs: CRS) -> str | None:
    authority = crs.to_authority()
    return f"{authority[0]}:{authority[1]}" if authority else None


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


def crs_code(crs: CRS) -> str | None:
    """The ``AUTHORITY:CODE`` of ``crs`` ("EPSG:3413"), or None for a custom CRS."""
    return _code_of(crs)
