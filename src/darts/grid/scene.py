"""The pixel grid of a scene: one north-up grid shared by all its bands, and where to
take it from.

Every layer meets the scene grid: the sources decode bands onto it, the scene store
refuses bands off it, processing puts the auxiliary rasters on it and exports rasters
in it. It is found in one of four things, each with its own function:

- :func:`grid_of_item`: a STAC item, from its 10 m assets' ``proj:*`` fields (before
  any pixel is fetched);
- :func:`grid_of_band`: one ``(y, x)`` band array, from its pixel-centre coordinates and
  its CRS (the array's own or the item's);
- :func:`grid_of_dataset`: a scene Dataset, from its first ``(y, x)`` variable;
- :func:`grid_of_variable`: one named variable of a Dataset (a scene result).

Writing the grid as CF / GDAL attributes is the store's business
(:mod:`darts.store.georef`); this module only reads what it needs to find the grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine
from pyproj import CRS
from pyproj.exceptions import CRSError

from darts.grid.errors import GridError, InconsistentGridError

if TYPE_CHECKING:
    import xarray as xr

DIMS = ("y", "x")
# The CF grid-mapping coordinate that carries a band's CRS (WKT) beside it.
GRID_MAPPING = "spatial_ref"
SCENE_RESOLUTION = 10.0
# The assets that define a Sentinel-2 item's 10 m grid, in order of preference.
_GRID_ASSETS = ("B02_10m", "B03_10m", "B04_10m", "B08_10m")
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


def crs_code(crs: CRS) -> str | None:
    """The ``AUTHORITY:CODE`` of ``crs`` ("EPSG:3413"), or None for a custom CRS."""
    authority = crs.to_authority()
    return f"{authority[0]}:{authority[1]}" if authority else None


# -- from a STAC item ------------------------------------------------------------------


def grid_of_item(item: Mapping[str, Any]) -> Grid:
    """The scene's 10 m grid, from the item's 10 m reflectance assets."""
    assets = item.get("assets") or {}
    key = next((k for k in _GRID_ASSETS if k in assets), None)
    if key is None:
        key = next(
            (
                k
                for k, a in assets.items()
                if isinstance(a, Mapping)
                and a.get("proj:transform")
                and math.isclose(abs(float(a["proj:transform"][0])), SCENE_RESOLUTION)
            ),
            None,
        )
    if key is None:
        raise GridError(f"item {item.get('id')!r} has no 10 m asset to take the scene grid from")
    asset = assets[key]
    try:
        transform = north_up_transform(asset)
        rows, cols = (int(v) for v in asset["proj:shape"])
        code = str(asset["proj:code"])
        wkt = CRS.from_user_input(code).to_wkt()
    except (KeyError, TypeError, ValueError, CRSError) as error:
        raise GridError(
            f"item {item.get('id')!r}: asset {key!r} lacks a usable proj:code, "
            f"proj:shape or proj:transform ({error})"
        ) from None
    t = transform
    return Grid((rows, cols), (t.a, t.b, t.c, t.d, t.e, t.f), code, wkt)


def north_up_transform(asset: Mapping[str, Any]) -> Affine:
    """An asset's ``proj:transform``; ValueError (or KeyError, TypeError) unless it is
    a north-up grid (no rotation, x growing east, y growing south)."""
    values = [float(v) for v in asset["proj:transform"][:6]]
    transform = Affine(*values)
    if transform.b or transform.d or transform.a <= 0 or transform.e >= 0:
        raise ValueError(f"not a north-up grid: {values}")
    return transform


# -- from xarray objects ---------------------------------------------------------------


def grid_of_band(name: str, band: xr.DataArray, item: Mapping[str, Any]) -> Grid:
    """The grid a band array is on, from its y/x coordinates and its CRS.

    The CRS comes from the array (``proj:code``, ``crs``, a ``spatial_ref``
    coordinate or WKT attribute) or else from the STAC item; when both give one they
    must agree.
    """
    if band.dims != DIMS:
        raise InconsistentGridError(
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
            raise InconsistentGridError(
                f"band {name!r}: attribute proj:transform {list(declared)} disagrees with its "
                f"x/y coordinates {list(transform)}"
            )
    crs = _crs_of(name, band, item)
    return Grid((height, width), transform, crs_code(crs), crs.to_wkt())


def grid_of_dataset(scene: xr.Dataset) -> Grid:
    """The grid of a scene Dataset, from its first (y, x) variable, its coordinates and
    its CRS (``spatial_ref`` coordinate or CRS attributes of the band or the Dataset)."""
    for name, variable in scene.data_vars.items():
        if variable.dims == DIMS:
            item = _item_with_crs(scene.attrs)
            return grid_of_band(str(name), variable, item)
    raise GridError(f"the scene has no variable with dims {DIMS}")


def grid_of_variable(dataset: xr.Dataset, name: str) -> Grid:
    """The grid of the variable ``name`` of ``dataset``, from its x/y coordinates and
    its own CRS (its attributes or the ``spatial_ref`` coordinate), nothing else."""
    if name not in dataset:
        raise GridError(f"the Dataset has no {name!r} variable to take the grid from")
    return grid_of_band(name, dataset[name], {})


def _axis(name: str, band: xr.DataArray, dim: str, size: int) -> tuple[float, float]:
    """(pixel size, corner origin) along one axis, from pixel-centre coordinates."""
    if dim not in band.coords:
        raise InconsistentGridError(f"band {name!r} has no {dim!r} coordinate")
    values = np.asarray(band.coords[dim].values, dtype="float64")
    if size < 2:
        # One pixel says nothing about spacing; take it from the declared transform.
        declared = band.attrs.get("proj:transform")
        if declared is None:
            raise InconsistentGridError(
                f"band {name!r} is 1 pixel wide along {dim!r}: give a proj:transform attribute"
            )
        res = float(declared[0] if dim == "x" else declared[4])
    else:
        res = float((values[-1] - values[0]) / (size - 1))
        expected = values[0] + res * np.arange(size)
        if res == 0 or np.max(np.abs(values - expected)) > _PIXEL_TOLERANCE * abs(res):
            raise InconsistentGridError(
                f"band {name!r}: {dim!r} coordinates are not regularly spaced"
            )
    return res, float(values[0] - res / 2)


def _crs_of(name: str, band: xr.DataArray, item: Mapping[str, Any]) -> CRS:
    own = _band_crs(band)
    from_item = _item_crs(item)
    if own is None and from_item is None:
        raise GridError(
            f"band {name!r}: no CRS found; set attribute 'proj:code' on the array or give the "
            "item a proj:code (item properties or on every asset)"
        )
    try:
        crs = CRS.from_user_input(own if own is not None else from_item)
        if from_item is not None and not crs.equals(CRS.from_user_input(from_item)):
            raise InconsistentGridError(f"band {name!r} is in {own}, but the item says {from_item}")
    except CRSError as error:
        raise GridError(f"band {name!r}: cannot read its CRS: {error}") from None
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


def _item_with_crs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A STAC-like item carrying the Dataset-level CRS, for `grid_of_band`'s fallback."""
    for key in ("proj:code", "crs"):
        value = attrs.get(key)
        if isinstance(value, str) and value:
            return {"properties": {"proj:code": value}}
    return {}
