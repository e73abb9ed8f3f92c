"""``computePixels`` of ``Image.load('COPERNICUS/S2_SR_HARMONIZED/<id>')``.

Values are the world's L2A DN *harmonised* the way the real collection is: Earth
Engine's reflectance is DN / 10000 with no offset, CDSE's is DN · 1e-4 − 0.1 (the
−1000 BOA offset of baseline ≥ 04.00). So EE DN = CDSE DN − 1000 where the CDSE DN
exceeds 1000, and both sources give exactly the same reflectance there. CDSE nodata
(0) stays 0, which is also what NPY answers hold for masked pixels; CDSE DN 1..1000
(reflectance ≤ 0) become 0 as well, because the harmonised uint16 collection cannot
express negative reflectance. SCL is passed through unchanged. The offset removed is
the asset's own ``raster:offset`` / ``raster:scale``, so a product without an offset
would pass through unchanged too.

Pixels are placed on the requested grid by nearest neighbour: a plain slice when the
grid is the band's own pixel grid shifted by whole pixels; separable index arrays for
any other axis-aligned grid in the band's CRS (SCL at 20 m onto a 10 m grid repeats
each pixel 2×2, as DARTS does for CDSE); GDAL's warper for another CRS or a sheared
grid. Outside the image the answer is 0.

The limits of the real service are enforced before any decode, with its 400
``INVALID_ARGUMENT``: 48 MiB of uncompressed pixels (width · height · Σ bytes per band),
32768 px a side (checked when the grid is parsed) and 1024 bands.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import CRSError

from darts.sandbox.servers.ee_band_cache import BandCache
from darts.sandbox.servers.ee_pixels import (
    MAX_RESPONSE_BYTES,
    EeRequestError,
    PixelGrid,
    invalid,
)
from darts.sandbox.servers.ee_sentinel2 import (
    COLLECTION_ID,
    COLLECTION_NAME,
    BandSource,
    S2Image,
    Sentinel2Catalog,
)

if TYPE_CHECKING:
    from affine import Affine

MAX_BANDS = 1024
_ALIGN_TOLERANCE_PX = 1e-6
# Decode with every core: one full-size JP2 takes ~5 s on one.
_DECODE_THREADS = "ALL_CPUS"


def sentinel2_image_id(asset: str) -> str | None:
    """The ``system:index`` in an ``Image.load`` id of the collection, else None."""
    for prefix in (COLLECTION_NAME + "/", COLLECTION_ID + "/"):
        if asset.startswith(prefix):
            return asset[len(prefix) :]
    return None


def render_sentinel2(
    catalog: Sentinel2Catalog,
    cache: BandCache,
    asset: str,
    grid: PixelGrid,
    band_ids: list[str] | None,
) -> np.ndarray:
    """The image ``asset`` on ``grid`` as a structured array (height, width)."""
    image_id = sentinel2_image_id(asset)
    image = catalog.image(image_id) if image_id is not None else None
    if image is None:
        raise EeRequestError(
            404,
            "NOT_FOUND",
            f"Image.load: Image asset '{asset}' not found (does not exist or caller does "
            "not have access).",
        )
    bands = _selected_bands(image, band_ids)
    size = grid.width * grid.height * sum(np.dtype(b.dtype).itemsize for b in bands)
    if size > MAX_RESPONSE_BYTES:
        raise invalid(
            f"Total request size ({size} bytes) must be less than or equal to "
            f"{MAX_RESPONSE_BYTES} bytes."
        )
    target_crs = _crs(grid.crs)
    arrays = cache.get_many([_key(b) for b in bands], _decode)
    out = np.zeros((grid.height, grid.width), dtype=[(b.id, b.dtype) for b in bands])
    for band in bands:
        # A strided view of the field: slices land in the answer without a copy between.
        place(arrays[_key(band)], band, grid, target_crs, out[band.id])
    return out


def _selected_bands(image: S2Image, band_ids: list[str] | None) -> list[BandSource]:
    if not band_ids:
        return list(image.bands)
    if len(band_ids) > MAX_BANDS:
        raise invalid(f"Too many bands: {len(band_ids)} requested, at most {MAX_BANDS} allowed.")
    duplicates = sorted({b for b in band_ids if band_ids.count(b) > 1})
    if duplicates:
        raise invalid(f"Image.select: band names must be unique, got {duplicates[0]!r} twice.")
    selected = []
    for band_id in band_ids:
        band = image.band(band_id)
        if band is None:
            raise invalid(f"Image.select: Pattern '{band_id}' did not match any bands.")
        selected.append(band)
    return selected


def _key(band: BandSource) -> tuple[str, int]:
    return (str(band.path), band.offset_dn)


def _decode(key: Hashable) -> np.ndarray:
    """Decode one JP2 from disk and harmonise it (see the module docstring)."""
    path, offset_dn = key  # type: ignore[misc]
    with rasterio.Env(GDAL_NUM_THREADS=_DECODE_THREADS), rasterio.open(path) as dataset:
        data = dataset.read(1)
    if offset_dn:
        # Values ≤ offset (nodata 0 included) become offset, then 0.
        np.maximum(data, data.dtype.type(offset_dn), out=data)
        data -= data.dtype.type(offset_dn)
    return data


@lru_cache(maxsize=64)
def _crs(code: str) -> CRS:
    try:
        return CRS.from_user_input(code)
    except CRSError:
        raise invalid(f"Unknown crsCode {code!r}") from None


def place(
    source: np.ndarray, band: BandSource, grid: PixelGrid, target_crs: CRS, plane: np.ndarray
) -> None:
    """Draw ``source`` (on the band's grid) onto ``plane`` (on ``grid``, zero-filled)."""
    if source.shape != (band.height, band.width):
        raise EeRequestError(
            500,
            "INTERNAL",
            f"band {band.id} of {band.path.name} decodes to {source.shape}, its grid says "
            f"{(band.height, band.width)}",
        )
    a, b, c, d, e, f = grid.transform
    sa, sb, sc, sd, se, sf = band.transform
    same_crs = target_crs == _crs(band.crs)
    if not same_crs or b or d or sb or sd:
        warped = np.zeros(plane.shape, dtype=plane.dtype)  # GDAL wants contiguous memory
        _warp(source, band, grid, target_crs, warped)
        plane[...] = warped
        return
    offset = _whole_pixel_offset((a, c, e, f), (sa, sc, se, sf))
    if offset is not None:
        _copy_window(source, offset, plane)
        return
    # Nearest neighbour: the source pixel under each target pixel's centre.
    cols = np.floor((c + (np.arange(grid.width) + 0.5) * a - sc) / sa).astype(np.int64)
    rows = np.floor((f + (np.arange(grid.height) + 0.5) * e - sf) / se).astype(np.int64)
    col_ok = (cols >= 0) & (cols < band.width)
    row_ok = (rows >= 0) & (rows < band.height)
    if col_ok.any() and row_ok.any():
        plane[np.ix_(row_ok, col_ok)] = source[np.ix_(rows[row_ok], cols[col_ok])]


def _whole_pixel_offset(
    target: tuple[float, float, float, float], source: tuple[float, float, float, float]
) -> tuple[int, int] | None:
    """(row, col) of the target origin in source pixels if the grids coincide up to a
    whole-pixel shift; else None."""
    a, c, e, f = target
    sa, sc, se, sf = source
    if not (math.isclose(a, sa, rel_tol=1e-9) and math.isclose(e, se, rel_tol=1e-9)):
        return None
    col = (c - sc) / sa
    row = (f - sf) / se
    if abs(col - round(col)) > _ALIGN_TOLERANCE_PX or abs(row - round(row)) > _ALIGN_TOLERANCE_PX:
        return None
    return round(row), round(col)


def _copy_window(source: np.ndarray, offset: tuple[int, int], plane: np.ndarray) -> None:
    row0, col0 = offset
    height, width = plane.shape
    r0, r1 = max(row0, 0), min(row0 + height, source.shape[0])
    c0, c1 = max(col0, 0), min(col0 + width, source.shape[1])
    if r0 < r1 and c0 < c1:
        plane[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = source[r0:r1, c0:c1]


def _warp(
    source: np.ndarray, band: BandSource, grid: PixelGrid, target_crs: CRS, plane: np.ndarray
) -> None:
    """Nearest-neighbour reprojection of the part of ``source`` that the grid covers."""
    from affine import Affine
    from rasterio.warp import Resampling, reproject, transform_bounds

    source_crs = _crs(band.crs)
    a, b, c, d, e, f = grid.transform
    corners = [
        (c + a * x + b * y, f + d * x + e * y) for x in (0, grid.width) for y in (0, grid.height)
    ]
    xs, ys = zip(*corners, strict=True)
    row0, row1, col0, col1 = 0, band.height, 0, band.width
    try:
        west, south, east, north = transform_bounds(
            target_crs, source_crs, min(xs), min(ys), max(xs), max(ys), densify_pts=21
        )
    except (rasterio.errors.RasterioError, ValueError):
        west = south = east = north = math.nan  # an odd grid: warp from the whole band
    sa, _, sc, _, se, sf = band.transform
    if all(math.isfinite(v) for v in (west, south, east, north)) and sa > 0 and se < 0:
        # Two pixels of margin against rounding at the window's edges.
        col0 = max(math.floor((west - sc) / sa) - 2, 0)
        col1 = min(math.ceil((east - sc) / sa) + 2, band.width)
        row0 = max(math.floor((north - sf) / se) - 2, 0)
        row1 = min(math.ceil((south - sf) / se) + 2, band.height)
    if col0 >= col1 or row0 >= row1:
        return
    reproject(
        source=np.ascontiguousarray(source[row0:row1, col0:col1]),
        destination=plane,
        src_transform=_window_transform(band.transform, row0, col0),
        src_crs=source_crs,
        src_nodata=0,
        dst_transform=Affine(*grid.transform),
        dst_crs=target_crs,
        dst_nodata=0,
        resampling=Resampling.nearest,
    )


def _window_transform(
    transform: tuple[float, float, float, float, float, float], row0: int, col0: int
) -> Affine:
    """The transform of a window starting at (row0, col0) of a grid with ``transform``."""
    from affine import Affine

    a, b, c, d, e, f = transform
    return Affine(a, b, c + a * col0 + b * row0, d, e, f + d * col0 + e * row0)
