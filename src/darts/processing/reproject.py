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
intermediates is ever made. With ``lazy=True`` not even the result is: its variables
compute (and briefly keep) the tiles that are read, with the same values.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

import numpy as np
import xarray as xr
from affine import Affine
from numpy.typing import DTypeLike
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds
from xarray.backends import BackendArray
from xarray.core import indexing

from darts.errors import DartsError
from darts.grid.scene import DIMS, GRID_MAPPING, Grid
from darts.sources.decode import grid_coords

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


def reproject_to_grid(
    aux: xr.Dataset,
    grid: Grid,
    *,
    resampling: Mapping[str, str] | str = "bilinear",
    dtype: Mapping[str, DTypeLike] | DTypeLike | None = None,
    value_range: Mapping[str, tuple[float, float]] | None = None,
    num_threads: int | None = None,
    lazy: bool = False,
) -> xr.Dataset:
    """Every variable of ``aux`` (except ``datamask``, which only masks) on ``grid``.

    ``resampling``: a rasterio method name, for all variables or per variable.
    ``dtype``: the output type, for all variables or per variable; by default float
    variables become float32 and integer variables keep their type (see module doc).
    ``value_range``: per variable, (lo, hi) that source values are clipped to before
    resampling (so an outlier cannot bleed into its neighbours) and results after (so
    the bound holds for any resampling method).
    ``num_threads``: GDAL warp threads (default: all cores).
    ``lazy``: nothing is computed now; the variables compute the destination tiles a
    read touches, keeping the most recent ones (one row of tiles plus two) for the
    next reads. ``aux`` must stay unchanged (and is kept) while the result is in use.
    The values are exactly those of the eager result: the same tiles, the same warp.
    """
    tiler = _Tiler(aux, grid, resampling, dtype, value_range, num_threads)
    if lazy:
        per_row = -(-grid.shape[1] // _TILE)
        cache: TileCache[dict[str, np.ndarray]] = TileCache(tiler.tile, per_row + 2)
        arrays: dict[str, Any] = {
            name: indexing.LazilyIndexedArray(
                TiledArray(cache, grid.shape, (_TILE, _TILE), out_type, _picker(name))
            )
            for name, out_type in tiler.out_types.items()
        }
    else:
        arrays = {
            name: np.full(grid.shape, np.nan if t.kind == "f" else 0, dtype=t)
            for name, t in tiler.out_types.items()
        }
        for i, j in tiler.tiles:
            rows, cols = tiler.slices(i, j)
            for name, values in tiler.tile(i, j).items():
                arrays[name][rows, cols] = values

    coords = grid_coords(grid)
    data_vars: dict[str, Any] = {
        n: (DIMS, arrays[n], _output_attrs(aux[n].attrs, tiler.out_types[n])) for n in tiler.names
    }
    if tiler.integer:
        data_vars[VALID] = (
            DIMS,
            arrays[VALID],
            {
                "long_name": f"1 where {', '.join(tiler.integer)} have a value",
                "flag_values": [0, 1],
            },
        )
    attrs = {k: v for k, v in aux.attrs.items() if k not in ("crs", "transform")}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


class _Tiler:
    """One destination tile (``_TILE``² of the grid, counted from its top-left corner)
    of `reproject_to_grid` at a time."""

    def __init__(
        self,
        aux: xr.Dataset,
        grid: Grid,
        resampling: Mapping[str, str] | str,
        dtype: Mapping[str, DTypeLike] | DTypeLike | None,
        value_range: Mapping[str, tuple[float, float]] | None,
        num_threads: int | None,
    ) -> None:
        self.aux, self.grid = aux, grid
        self.ranges = dict(value_range or {})
        self.src_crs, self.src_transform = _source_georef(aux)
        self.names = [str(n) for n in aux.data_vars if n != DATAMASK]
        if not self.names:
            raise ReprojectError("the auxiliary Dataset has no variable to reproject")
        # Variables resampled alike are warped together: one multi-band warp, which
        # GDAL spreads over threads better than single bands.
        self.groups: dict[Resampling, list[str]] = {}
        for name in self.names:
            self.groups.setdefault(_resampling(resampling, name), []).append(name)
        self.threads = num_threads or os.cpu_count() or 1
        self.out_types = {n: _out_dtype(aux[n].dtype, dtype, n) for n in self.names}
        self.integer = [n for n in self.names if self.out_types[n].kind in "iub"]
        if self.integer:
            self.out_types[VALID] = np.dtype(np.uint8)
        self.dst_crs = CRS.from_wkt(grid.crs_wkt)
        self.src_shape = (aux.sizes["y"], aux.sizes["x"])
        self.dst_transform = Affine(*grid.transform)
        height, width = grid.shape
        self.tiles = [(i, j) for i in range(-(-height // _TILE)) for j in range(-(-width // _TILE))]

    def slices(self, i: int, j: int) -> tuple[slice, slice]:
        height, width = self.grid.shape
        return (
            slice(i * _TILE, min((i + 1) * _TILE, height)),
            slice(j * _TILE, min((j + 1) * _TILE, width)),
        )

    def tile(self, i: int, j: int) -> dict[str, np.ndarray]:
        """Every output variable (``valid`` too, when there are integer ones) of tile
        (i, j); no data where the source does not reach."""
        rows, cols = self.slices(i, j)
        tile_transform = self.dst_transform @ Affine.translation(cols.start, rows.start)
        tile_shape = (rows.stop - rows.start, cols.stop - cols.start)
        out = {
            n: np.full(tile_shape, np.nan if t.kind == "f" else 0, dtype=t)
            for n, t in self.out_types.items()
        }
        window = _source_window(
            self.src_crs,
            self.src_transform,
            self.src_shape,
            self.dst_crs,
            tile_transform,
            tile_shape,
        )
        if window is None:
            return out  # the tile lies outside the source: no data
        src_rows, src_cols = window
        keep = _datamask(self.aux, src_rows, src_cols)
        tile_valid = np.ones(tile_shape, dtype=bool)
        for method, group in self.groups.items():
            stack = np.stack([_source_block(self.aux[n], src_rows, src_cols, keep) for n in group])
            for index, name in enumerate(group):
                if name in self.ranges:
                    np.clip(stack[index], *self.ranges[name], out=stack[index])
            results = np.full((len(group), *tile_shape), np.nan, dtype=np.float32)
            reproject(
                stack,
                results,
                src_transform=self.src_transform
                @ Affine.translation(src_cols.start, src_rows.start),
                src_crs=self.src_crs,
                src_nodata=np.nan,
                dst_transform=tile_transform,
                dst_crs=self.dst_crs,
                dst_nodata=np.nan,
                resampling=method,
                num_threads=self.threads,
            )
            del stack
            for result, name in zip(results, group, strict=True):
                if name in self.ranges:
                    np.clip(result, *self.ranges[name], out=result)
                if self.out_types[name].kind == "f":
                    out[name] = result.astype(self.out_types[name], copy=False)
                else:
                    has_value = np.isfinite(result)
                    tile_valid &= has_value
                    out[name] = _to_integer(result, has_value, self.out_types[name])
        if self.integer:
            out[VALID] = tile_valid.view(np.uint8)
        return out


def _picker(name: str) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
    return lambda tile: tile[name]


# -- lazily computed tiles ---------------------------------------------------------------

T = TypeVar("T")


class TileCache(Generic[T]):
    """Tiles ``(i, j)`` made by ``make(i, j)`` on first use, the ``capacity`` most
    recently used kept. Thread-safe: concurrent users of one tile wait for a single
    ``make``. Used for lazily reprojected auxiliary data and for decoded store chunks
    (:class:`darts.processing.features.ChunkCachedArray`)."""

    def __init__(self, make: Callable[[int, int], T], capacity: int) -> None:
        self.make = make
        self.capacity = max(1, capacity)
        self.made = 0  # tiles made so far (for tests and benchmarks)
        self._tiles: OrderedDict[tuple[int, int], Future[T]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, i: int, j: int) -> T:
        with self._lock:
            future = self._tiles.get((i, j))
            owner = future is None
            if future is None:
                future = Future()
                self._tiles[(i, j)] = future
                while len(self._tiles) > self.capacity:
                    self._tiles.popitem(last=False)
            else:
                self._tiles.move_to_end((i, j))
        if owner:
            try:
                future.set_result(self.make(i, j))
                self.made += 1
            except BaseException as error:
                future.set_exception(error)
                with self._lock:
                    if self._tiles.get((i, j)) is future:
                        del self._tiles[(i, j)]
        return future.result()

    def clear(self) -> None:
        """Drop every kept tile (they are made again when next used)."""
        with self._lock:
            self._tiles.clear()


class TiledArray(BackendArray):  # type: ignore[misc]
    """A lazy 2-D array of ``shape`` assembled, for each read, from the tiles of
    ``tile_shape`` (tile (i, j) starts at row i·rows, column j·cols) that the read
    touches; ``pick`` takes this array's values out of what the cache holds per tile."""

    def __init__(
        self,
        cache: TileCache[Any],
        shape: tuple[int, ...],
        tile_shape: tuple[int, int],
        dtype: DTypeLike,
        pick: Callable[[Any], np.ndarray] | None = None,
    ) -> None:
        self.cache = cache
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.tile_shape = tile_shape
        self.pick = pick

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._read
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> TiledArray:
        # Read-only: a deep copy (xarray makes them, e.g. in align) may share it.
        return self

    def _read(self, key: tuple[Any, ...]) -> np.ndarray:
        (r0, r1, rstep), (c0, c1, cstep) = (
            _as_slice(k, n) for k, n in zip(key, self.shape, strict=True)
        )
        out = np.empty((max(r1 - r0, 0), max(c1 - c0, 0)), dtype=self.dtype)
        if out.size:
            th, tw = self.tile_shape
            for i in range(r0 // th, (r1 - 1) // th + 1):
                for j in range(c0 // tw, (c1 - 1) // tw + 1):
                    tile = self.cache.get(i, j)
                    block = tile if self.pick is None else self.pick(tile)
                    top, left = i * th, j * tw
                    a0, a1 = max(r0, top), min(r1, top + block.shape[0])
                    b0, b1 = max(c0, left), min(c1, left + block.shape[1])
                    out[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = block[
                        a0 - top : a1 - top, b0 - left : b1 - left
                    ]
        out = out[::rstep, ::cstep]
        # Integer keys drop their axis, as numpy indexing does.
        drop = tuple(axis for axis, k in enumerate(key) if not isinstance(k, slice))
        return out.squeeze(drop) if drop else out


def _as_slice(key: Any, size: int) -> tuple[int, int, int]:
    """(start, stop, step) of the smallest step-1 range holding ``key`` (an int or a
    slice with a positive step), and the step to take within it."""
    if isinstance(key, slice):
        start, stop, step = key.indices(size)
        if step < 1:
            raise IndexError("lazy arrays take slices with a positive step only")
        return start, max(start, stop), step
    index = int(key) + (size if int(key) < 0 else 0)
    return index, index + 1, 1


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


def reproject_tcvis(aux: xr.Dataset, grid: Grid, *, lazy: bool = False) -> xr.Dataset:
    """The three TCVIS bands on ``grid``: bilinear, rounded back to uint8, plus
    ``valid`` (uint8, 1 where all three have a value). ``lazy``: see
    `reproject_to_grid` (TCVIS is coarse: its source is a small fraction of the four
    scene-sized uint8 arrays of the result)."""
    missing = [b for b in TCVIS_BANDS if b not in aux.data_vars]
    if missing:
        raise ReprojectError(f"the TCVIS Dataset lacks {', '.join(missing)}")
    return reproject_to_grid(
        aux[list(TCVIS_BANDS)], grid, resampling="bilinear", dtype=np.uint8, lazy=lazy
    )


# -- internals -------------------------------------------------------------------------


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
