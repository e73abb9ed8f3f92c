"""Decode Sentinel-2 JPEG2000 band files in memory, onto the scene's 10 m grid.

Why in memory: a band is fetched whole and verified against its checksum first (see
``darts.sources.cdse_download``), so GDAL never touches the network here and a decode
never sees a half-downloaded file. JPEG2000 decoding is most of the cost of staging a
scene; OpenJPEG spreads it over all cores when ``GDAL_NUM_THREADS`` says so. That
option is set in a *scoped* ``rasterio.Env`` for the duration of one decode, never
process-wide (pitfall 18): other threads reading other rasters keep their own settings.

Every band is delivered on one grid, the scene's **10 m grid**, taken from the item's
10 m assets (``proj:code``, ``proj:transform``, ``proj:shape``;
:func:`darts.grid.scene.grid_of_item`), even when only 20 m bands are asked for, so
all bands a scene store ever holds line up.

Resampling 20 m / 60 m bands to 10 m is **nearest neighbour**, for every band:

- For SCL (classes) it is the only correct choice.
- For reflectance, the Sentinel-2 grids are nested (each 20 m pixel covers exactly 2×2
  10 m pixels from the same corner), so nearest neighbour is plain replication by an
  integer factor: exact (each value is a delivered DN, and the original is recovered by
  taking every k-th pixel), integer-only (no float copy of a scene), and about as cheap
  as touching the output memory once. Bilinear would invent values, need float
  intermediates and smear nodata edges.

A grid that is not nested (unequal origins, non-integer factors) still works through
a general nearest-neighbour index path, just slower.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import rasterio
import xarray as xr
from affine import Affine
from pyproj import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import MemoryFile

from darts.errors import DartsError
from darts.grid.scene import DIMS, GRID_MAPPING, Grid, north_up_transform
from darts.store.georef import band_attrs, spatial_ref_attrs

# Georeferencing that differs by less than this fraction of a pixel is the same.
_TOLERANCE = 1e-3
# Rows of the source processed per step when replicating: keeps the working set in
# cache without a Python loop per row.
_ROWS_PER_STEP = 256

DEFAULT_THREADS = "ALL_CPUS"
_WARNINGS_LOCK = threading.Lock()


class DecodeError(DartsError):
    """A band file could not be decoded or does not match its STAC asset."""


def grid_coords(grid: Grid) -> dict[str, Any]:
    """x / y pixel-centre coordinates and the ``spatial_ref`` coordinate of ``grid``."""
    a, _b, c, _d, e, f = grid.transform
    rows, cols = grid.shape
    x = c + (np.arange(cols, dtype="float64") + 0.5) * a
    y = f + (np.arange(rows, dtype="float64") + 0.5) * e
    spatial_ref = xr.DataArray(np.int64(0), attrs=spatial_ref_attrs(grid))
    return {"y": ("y", y), "x": ("x", x), GRID_MAPPING: spatial_ref}


def decode_jp2(
    data: bytes | bytearray | memoryview,
    *,
    name: str = "JPEG2000 file",
    threads: str | int = DEFAULT_THREADS,
) -> tuple[np.ndarray, Affine, CRS | None]:
    """Decode a single-band JPEG2000 file held in memory: (array, transform, CRS).

    ``threads`` is GDAL_NUM_THREADS for this decode only (``"ALL_CPUS"`` or a count).
    """
    return _decode_single_band(data, name, "JP2OpenJPEG", "JPEG2000", threads)


def decode_geotiff(
    data: bytes | bytearray | memoryview,
    *,
    name: str = "GeoTIFF file",
    threads: str | int = DEFAULT_THREADS,
) -> tuple[np.ndarray, Affine, CRS | None]:
    """Decode a single-band (Cloud-Optimized) GeoTIFF held in memory, like `decode_jp2`."""
    return _decode_single_band(data, name, "GTiff", "GeoTIFF", threads)


def _decode_single_band(
    data: bytes | bytearray | memoryview,
    name: str,
    driver: str,
    label: str,
    threads: str | int,
) -> tuple[np.ndarray, Affine, CRS | None]:
    try:
        with rasterio.Env(GDAL_NUM_THREADS=str(threads)), MemoryFile(data) as memfile:
            # A file without georeferencing is still decodable; the asset then
            # supplies the georeferencing, so rasterio's warning is noise here.
            # catch_warnings() swaps process-wide state: the lock keeps concurrent
            # decodes from restoring each other's filters (it only spans the open).
            with _WARNINGS_LOCK, warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                dataset = memfile.open(driver=driver)
            with dataset:
                if dataset.count != 1:
                    raise DecodeError(f"{name}: expected 1 band, the file has {dataset.count}")
                array = dataset.read(1)
                transform = dataset.transform
                crs = CRS.from_wkt(dataset.crs.to_wkt()) if dataset.crs else None
    except RasterioError as error:
        raise DecodeError(f"{name}: cannot decode the {label} file: {error}") from None
    return array, transform, crs


def decode_band(
    data: bytes | bytearray | memoryview,
    key: str,
    asset: Mapping[str, Any],
    grid: Grid,
    *,
    threads: str | int = DEFAULT_THREADS,
) -> xr.DataArray:
    """One band file as a 2-D DataArray on ``grid``: DN in the delivered dtype.

    Attributes are what the scene store keeps (``raster:scale``, ``raster:offset``,
    ``nodata``, ``proj:code``, ``proj:transform`` …) plus where the values came from
    (``darts:asset``, ``darts:source_resolution``, ``darts:resampling``).
    """
    array, file_transform, file_crs = decode_jp2(data, name=f"band {key}", threads=threads)
    source_transform = _check_source(key, asset, array, file_transform, file_crs, grid)
    nodata = asset.get("nodata", 0)
    values = resample_nearest(array, source_transform, grid, nodata=nodata)
    del array  # the source is no longer needed; only `values` stays alive

    attrs: dict[str, Any] = {}
    for field in ("raster:scale", "raster:offset"):
        if asset.get(field) is not None:
            attrs[field] = asset[field]
    attrs["nodata"] = nodata
    if asset.get("title"):
        attrs["long_name"] = asset["title"]
    attrs.update({k: v for k, v in band_attrs(grid).items() if k != "coordinates"})
    source_res = abs(source_transform.a)
    attrs["darts:asset"] = key
    attrs["darts:source_resolution"] = source_res
    attrs["darts:resampling"] = (
        "none" if math.isclose(source_res, abs(grid.transform[0])) else "nearest"
    )
    return xr.DataArray(values, dims=DIMS, coords=grid_coords(grid), name=key, attrs=attrs)


def _check_source(
    key: str,
    asset: Mapping[str, Any],
    array: np.ndarray,
    file_transform: Affine,
    file_crs: CRS | None,
    grid: Grid,
) -> Affine:
    """The source grid (from the asset), checked against the file and the scene."""
    try:
        transform = north_up_transform(asset)
    except (KeyError, TypeError, ValueError) as error:
        raise DecodeError(f"band {key}: asset has no usable proj:transform ({error})") from None
    shape = asset.get("proj:shape")
    if shape is not None and tuple(int(v) for v in shape) != array.shape:
        raise DecodeError(
            f"band {key}: the file is {array.shape[0]}×{array.shape[1]} px, the asset says "
            f"{shape[0]}×{shape[1]}"
        )
    expected_dtype = asset.get("data_type")
    if expected_dtype and np.dtype(expected_dtype) != array.dtype:
        raise DecodeError(
            f"band {key}: the file holds {array.dtype}, the asset says {expected_dtype}"
        )
    # A georeferenced file must agree with its asset; disagreement means a wrong file.
    if not file_transform.is_identity:
        tol = _TOLERANCE * abs(transform.a)
        if not all(
            math.isclose(p, q, abs_tol=tol) for p, q in zip(file_transform, transform, strict=True)
        ):
            raise DecodeError(
                f"band {key}: the file's geotransform {tuple(file_transform)[:6]} disagrees with "
                f"the asset's proj:transform {tuple(transform)[:6]}"
            )
    scene_crs = CRS.from_wkt(grid.crs_wkt)
    code = asset.get("proj:code")
    if code is not None and not CRS.from_user_input(code).equals(scene_crs):
        raise DecodeError(
            f"band {key}: asset is in {code}, the scene grid in {grid.crs_code}; bands of one "
            "scene must share a CRS"
        )
    if file_crs is not None and not file_crs.equals(scene_crs):
        raise DecodeError(f"band {key}: the file's CRS differs from the scene's {grid.crs_code}")
    return transform


def resample_nearest(
    array: np.ndarray, source: Affine, grid: Grid, *, nodata: float | int | None = 0
) -> np.ndarray:
    """``array`` (on the ``source`` grid) on ``grid`` by nearest neighbour, same dtype.

    Target pixels whose centre falls outside the source get ``nodata``. The common
    cases take no general indexing: an identical grid returns ``array`` itself, and a
    nested grid (same corner, integer factor, full cover) is replicated block-wise.
    """
    rows, cols = grid.shape
    a, _b, c, _d, e, f = grid.transform
    row_index = _nearest_indices(rows, f, e, source.f, source.e)
    col_index = _nearest_indices(cols, c, a, source.c, source.a)
    factor = _replication_factor(row_index, array.shape[0])
    if factor is not None and factor == _replication_factor(col_index, array.shape[1]):
        return array if factor == 1 else replicate(array, factor)

    fill = 0 if nodata is None else nodata
    out = np.full((rows, cols), fill, dtype=array.dtype)
    row_ok = (row_index >= 0) & (row_index < array.shape[0])
    col_ok = (col_index >= 0) & (col_index < array.shape[1])
    if row_ok.any() and col_ok.any():
        # Indices increase monotonically, so the valid targets form one rectangle.
        r0, r1 = np.flatnonzero(row_ok)[[0, -1]]
        c0, c1 = np.flatnonzero(col_ok)[[0, -1]]
        out[r0 : r1 + 1, c0 : c1 + 1] = array[
            np.ix_(row_index[r0 : r1 + 1], col_index[c0 : c1 + 1])
        ]
    return out


def _nearest_indices(
    count: int, origin: float, step: float, source_origin: float, source_step: float
) -> np.ndarray:
    """For each target pixel along one axis, the source pixel containing its centre
    (may be out of range; callers check)."""
    centres = origin + (np.arange(count, dtype="float64") + 0.5) * step
    return np.floor((centres - source_origin) / source_step).astype(np.int64)


def _replication_factor(index: np.ndarray, size: int) -> int | None:
    """k if ``index`` is 0,0,…,1,1,… (each source pixel k times, all of them), else None."""
    if size == 0 or len(index) % size:
        return None
    factor = len(index) // size
    expected = np.arange(len(index), dtype=np.int64) // factor
    return factor if np.array_equal(index, expected) else None


def replicate(array: np.ndarray, factor: int) -> np.ndarray:
    """Each pixel of ``array`` as a ``factor``×``factor`` block (exact nearest upsampling).

    Columns are widened arithmetically where the block fits a machine word (a uint16
    pixel repeated twice is one uint32 ``v * 0x0001_0001``), which is several times
    faster than ``np.repeat`` along the last axis; rows are then plain row copies.
    """
    rows, cols = array.shape
    out = np.empty((rows * factor, cols * factor), dtype=array.dtype)
    blocks = out.reshape(rows, factor, cols * factor)
    width = array.dtype.itemsize * factor
    word = {2: np.uint16, 4: np.uint32, 8: np.uint64}.get(width)
    arithmetic = word is not None and array.dtype.kind in "ui"
    multiplier = sum(1 << (8 * array.dtype.itemsize * i) for i in range(factor))
    for start in range(0, rows, _ROWS_PER_STEP):
        source = array[start : start + _ROWS_PER_STEP]
        target = blocks[start : start + _ROWS_PER_STEP]
        first = target[:, 0, :]
        if arithmetic:
            # Reinterpreting as unsigned of the same size keeps negative ints exact.
            unsigned = source.view(np.dtype(f"u{array.dtype.itemsize}"))
            np.multiply(unsigned, word(multiplier), out=first.view(word), casting="unsafe")
        else:
            first[...] = np.repeat(source, factor, axis=1)
        for j in range(1, factor):
            target[:, j, :] = first
    return out
