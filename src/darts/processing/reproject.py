"""Auxiliary rasters (ArcticDEM in EPSG:3413, TCVIS in EPSG:4326) onto a scene's grid.

An auxiliary Dataset, as the datacube reads it, has dims (y, x), pixel-centre x/y
coordinates and the attributes ``crs`` and ``transform`` (rasterio order a..f). The
result lies on the scene grid with the scene's own x/y/``spatial_ref`` coordinates.

No data, in and out:
- in: NaN in float variables, a variable's ``nodata`` attribute, and, when the Dataset
  has a ``datamask`` variable (ArcticDEM), every pixel where it is 0. Resampling never
  mixes such pixels into a value.
- out: float variables are float32 with NaN wherever no source value reached (outside
  the source, or only no data around). Integer variables (TCVIS, uint8) are rounded back
  to their own type, with one shared ``valid`` uint8 variable (1 = every integer
  variable has a value), because a full 10980² scene costs 120 MB per uint8 band
  against 482 MB as float32.

The work is done in tiles of the destination grid, each reading only the source window
that covers it, so no full-scene float copy of the source or of the result's
intermediates is ever made.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import xarray as xr
from affine import Affine
from numpy.typing import DTypeLike
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds

from darts.errors import DartsError
from darts.sources.decode import grid_coords
from darts.store.georef import DIMS, GRID_MAPPING, Grid, grid_of

DATAMASK = "datamask"
VALID = "valid"
DEM_VARIABLE = "dem"
# Heights outside this range are artefacts (processing.md, as the reference clips).
DEM_HEIGHT_RANGE = (-100.0, 3000.0)
TCVIS_BANDS = ("tc_brightness", "tc_greenness", "tc_wetness")
# Destination tile edge: a 2048² float32 tile is 16 MB, its source window at most
# ~2900² pixels for any rotation.
_TILE = 2048
_PACKING_KEYS = ("nodata", "_FillValue", "raster:scale", "raster:offset")


class ReprojectError(DartsError):
    """An auxiliary Dataset that cannot be placed on the scene grid."""


def scene_grid(scene: xr.Dataset) -> Grid:
    """The grid of a scene Dataset, from its first (y, x) variable, its coordinates and
    its CRS (``spatial_ref`` coordinate or CRS attributes of the band or the Dataset)."""
    for name, variable in scene.data_vars.items():
        if variable.dims == DIMS:
            item = _item_with_crs(scene.attrs)
            return grid_of(str(name), variable, item)
    raise ReprojectError(f"the scene has no variable with dims {DIMS}")


def reproject_to_grid(
    aux: xr.Dataset,
    grid: Grid,
    *,
    resampling: Mapping[str, str] | str = "bilinear",
    dtype: Mapping[str, DTypeLike] | DTypeLike | None = None,
    value_range: Mapping[str, tuple[float, float]] | None = None,
    num_threads: int | None = None,
) -> xr.Dataset:
    """Every variable of ``aux`` (except ``datamask``, which only masks) on ``grid``.

    ``resampling``: a rasterio method name, for all variables or per variable.
    ``dtype``: the output type, for all variables or per variable; by default float
    variables become float32 and integer variables keep their type (see module doc).
    ``value_range``: per variable, (lo, hi) that source values are clipped to before
    resampling (so an outlier cannot bleed into its neighbours) and results after (so
    the bound holds for any resampling method).
    ``num_threads``: GDAL warp threads (default: all cores).
    """
    ranges = dict(value_range or {})
    src_crs, src_transform = _source_georef(aux)
    names = [str(n) for n in aux.data_vars if n != DATAMASK]
    if not names:
        raise ReprojectError("the auxiliary Dataset has no variable to reproject")
    # Variables resampled alike are warped together: one multi-band warp, which GDAL
    # spreads over threads better than single bands.
    groups: dict[Resampling, list[str]] = {}
    for name in names:
        groups.setdefault(_resampling(resampling, name), []).append(name)
    threads = num_threads or os.cpu_count() or 1
    out_types = {n: _out_dtype(aux[n].dtype, dtype, n) for n in names}
    integer = [n for n in names if out_types[n].kind in "iub"]
    outputs = {
        n: np.full(grid.shape, np.nan if out_types[n].kind == "f" else 0, dtype=out_types[n])
        for n in names
    }
    valid = np.zeros(grid.shape, dtype=np.uint8) if integer else None
    dst_crs = CRS.from_wkt(grid.crs_wkt)
    src_shape = (aux.sizes["y"], aux.sizes["x"])
    dst_transform = Affine(*grid.transform)

    for rows, cols in _tiles(grid.shape):
        tile_transform = dst_transform @ Affine.translation(cols.start, rows.start)
        tile_shape = (rows.stop - rows.start, cols.stop - cols.start)
        window = _source_window(
            src_crs, src_transform, src_shape, dst_crs, tile_transform, tile_shape
        )
        if window is None:
            continue  # the tile lies outside the source: stays no data
        src_rows, src_cols = window
        keep = _datamask(aux, src_rows, src_cols)
        tile_valid = np.ones(tile_shape, dtype=bool)
        for method, group in groups.items():
            stack = np.stack([_source_block(aux[n], src_rows, src_cols, keep) for n in group])
            for index, name in enumerate(group):
                if name in ranges:
                    np.clip(stack[index], *ranges[name], out=stack[index])
            results = np.full((len(group), *tile_shape), np.nan, dtype=np.float32)
            reproject(
                stack,
                results,
                src_transform=src_transform @ Affine.translation(src_cols.start, src_rows.start),
                src_crs=src_crs,
                src_nodata=np.nan,
                dst_transform=tile_transform,
                dst_crs=dst_crs,
                dst_nodata=np.nan,
                resampling=method,
                num_threads=threads,
            )
            for result, name in zip(results, group, strict=True):
                if name in ranges:
                    np.clip(result, *ranges[name], out=result)
                target = outputs[name][rows, cols]
                if out_types[name].kind == "f":
                    target[...] = result
                else:
                    has_value = np.isfinite(result)
                    tile_valid &= has_value
                    target[...] = _to_integer(result, has_value, out_types[name])
        if valid is not None:
            valid[rows, cols] = tile_valid

    coords = grid_coords(grid)
    data_vars: dict[str, Any] = {
        n: (DIMS, outputs[n], _output_attrs(aux[n].attrs, out_types[n])) for n in names
    }
    if valid is not None:
        data_vars[VALID] = (
            DIMS,
            valid,
            {"long_name": f"1 where {', '.join(integer)} have a value", "flag_values": [0, 1]},
        )
    attrs = {k: v for k, v in aux.attrs.items() if k not in ("crs", "transform")}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def reproject_dem(aux: xr.Dataset, grid: Grid) -> xr.Dataset:
    """ArcticDEM ``dem`` (float32 m, NaN = no data, ``datamask`` honoured) on ``grid``,
    bilinear, heights clipped to `DEM_HEIGHT_RANGE` before and after resampling."""
    if DEM_VARIABLE not in aux.data_vars:
        raise ReprojectError(f"the ArcticDEM Dataset has no {DEM_VARIABLE!r} variable")
    wanted = [DEM_VARIABLE] + ([DATAMASK] if DATAMASK in aux.data_vars else [])
    return reproject_to_grid(
        aux[wanted],
        grid,
        resampling="bilinear",
        dtype=np.float32,
        value_range={DEM_VARIABLE: DEM_HEIGHT_RANGE},
    )


def reproject_tcvis(aux: xr.Dataset, grid: Grid) -> xr.Dataset:
    """The three TCVIS bands on ``grid``: bilinear, rounded back to uint8, plus
    ``valid`` (uint8, 1 where all three have a value)."""
    missing = [b for b in TCVIS_BANDS if b not in aux.data_vars]
    if missing:
        raise ReprojectError(f"the TCVIS Dataset lacks {', '.join(missing)}")
    return reproject_to_grid(aux[list(TCVIS_BANDS)], grid, resampling="bilinear", dtype=np.uint8)


# -- internals -------------------------------------------------------------------------


def _item_with_crs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A STAC-like item carrying the Dataset-level CRS, for `grid_of`'s fallback."""
    for key in ("proj:code", "crs"):
        value = attrs.get(key)
        if isinstance(value, str) and value:
            return {"properties": {"proj:code": value}}
    return {}


def _source_georef(aux: xr.Dataset) -> tuple[CRS, Affine]:
    crs = aux.attrs.get("crs")
    if not crs:
        raise ReprojectError("the auxiliary Dataset has no 'crs' attribute")
    transform = aux.attrs.get("transform")
    if transform is None or len(transform) < 6:
        raise ReprojectError("the auxiliary Dataset has no 6-value 'transform' attribute")
    for name, variable in aux.data_vars.items():
        if variable.dims != DIMS:
            raise ReprojectError(f"auxiliary variable {name!r} has dims {variable.dims}")
    return CRS.from_user_input(crs), Affine(*(float(v) for v in list(transform)[:6]))


def _resampling(choice: Mapping[str, str] | str, name: str) -> Resampling:
    method = choice if isinstance(choice, str) else choice.get(name, "bilinear")
    try:
        return Resampling[method]
    except KeyError:
        raise ReprojectError(f"unknown resampling method {method!r} for {name!r}") from None


def _out_dtype(
    source: np.dtype, choice: Mapping[str, DTypeLike] | DTypeLike | None, name: str
) -> np.dtype:
    if isinstance(choice, Mapping):
        choice = choice.get(name)
    if choice is not None:
        return np.dtype(choice)
    return np.dtype(np.float32) if source.kind == "f" else np.dtype(source)


def _tiles(shape: tuple[int, int]) -> Iterator[tuple[slice, slice]]:
    for r in range(0, shape[0], _TILE):
        for c in range(0, shape[1], _TILE):
            yield slice(r, min(r + _TILE, shape[0])), slice(c, min(c + _TILE, shape[1]))


def _source_window(
    src_crs: CRS,
    src_transform: Affine,
    src_shape: tuple[int, int],
    dst_crs: CRS,
    tile_transform: Affine,
    tile_shape: tuple[int, int],
) -> tuple[slice, slice] | None:
    """The source pixels a destination tile needs, with a margin for the resampling
    kernel; None when the tile does not overlap the source."""
    height, width = tile_shape
    left, top = tile_transform @ (0, 0)
    right, bottom = tile_transform @ (width, height)
    bounds = (min(left, right), min(top, bottom), max(left, right), max(top, bottom))
    west, south, east, north = transform_bounds(dst_crs, src_crs, *bounds, densify_pts=21)
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        return None
    inverse = ~src_transform
    corners = [inverse @ (x, y) for x in (west, east) for y in (south, north)]
    cols = [c for c, _ in corners]
    rows = [r for _, r in corners]
    if west > east:  # across the antimeridian: every column may be needed
        cols = [0.0, float(src_shape[1])]
    # Bilinear reads 2×2 neighbours, more when GDAL widens its kernel to downsample.
    scale = max((max(cols) - min(cols)) / width, (max(rows) - min(rows)) / height, 1.0)
    margin = 3 + math.ceil(2 * scale)
    r0 = max(math.floor(min(rows)) - margin, 0)
    r1 = min(math.ceil(max(rows)) + margin, src_shape[0])
    c0 = max(math.floor(min(cols)) - margin, 0)
    c1 = min(math.ceil(max(cols)) + margin, src_shape[1])
    if r0 >= r1 or c0 >= c1:
        return None
    return slice(r0, r1), slice(c0, c1)


def _datamask(aux: xr.Dataset, rows: slice, cols: slice) -> np.ndarray | None:
    if DATAMASK not in aux.data_vars:
        return None
    return np.asarray(aux[DATAMASK][rows, cols].values) != 0


def _source_block(
    variable: xr.DataArray, rows: slice, cols: slice, keep: np.ndarray | None
) -> np.ndarray:
    """float32 copy of a source window with every kind of no data as NaN."""
    raw = np.asarray(variable[rows, cols].values)
    block = raw.astype(np.float32)  # always a copy: the input is never modified
    nodata = variable.attrs.get("nodata", variable.attrs.get("_FillValue"))
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        block[raw == nodata] = np.nan
    if keep is not None:
        block[~keep] = np.nan
    return block


def _to_integer(values: np.ndarray, has_value: np.ndarray, dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype) if dtype.kind in "iu" else None
    filled = np.where(has_value, values, 0.0)
    rounded = np.rint(filled)
    if info is not None:
        np.clip(rounded, info.min, info.max, out=rounded)
    return rounded.astype(dtype)


def _output_attrs(attrs: Mapping[str, Any], dtype: np.dtype) -> dict[str, Any]:
    kept = {k: v for k, v in attrs.items() if k not in _PACKING_KEYS and k != GRID_MAPPING}
    if dtype.kind == "f":
        kept["nodata"] = float("nan")
    return kept
