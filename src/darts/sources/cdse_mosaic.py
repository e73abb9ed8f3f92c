"""Source ``cdse-mosaic``: CDSE's quarterly Sentinel-2 mosaics (``sentinel-2-global-mosaics``).

One item per MGRS tile and quarter (``Sentinel-2_mosaic_2024_Q3_08WNB_0_0``), with
Cloud-Optimized GeoTIFF assets ``B02 B03 B04 B08`` (int16 reflectance × 10,000, no
offset, nodata −32768) and ``observations`` (uint16: valid observations per pixel, the
quality band: 0 → invalid, 1–3 → low, more → high). A mosaic covers a 100 km square
plus a margin, not the whole 109.8 km Sentinel-2 tile, on its own 10 m grid, which is
the scene grid here.

Selection: ids, tile ids or an AOI, then ``--years`` and ``--quarters``. Cloud and snow
cover, months and exact dates do not apply to a composite of a whole quarter; `notes`
says so once per run rather than silently ignoring them.

Files are fetched whole from S3 (one GET each, checked against ``file:size``; the items
carry no checksum) and decoded in memory, like the ``cdse`` source's JP2s.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr
from affine import Affine
from pyproj import CRS
from pyproj.exceptions import CRSError

from darts.errors import ConfigError
from darts.grid.scene import DIMS, Grid
from darts.net.errors import CredentialsError, NetworkError, OfflineError
from darts.sources.cdse import discover_cdse
from darts.sources.cdse_bands import ALL, SCL_BAND, parse_band_name
from darts.sources.cdse_source import CdseAccess
from darts.sources.decode import DecodeError, decode_geotiff, grid_coords
from darts.sources.query import SceneFilters, SceneSelection
from darts.sources.scene_docs import describe_scene, file_sizes
from darts.sources.scene_ids import parse_mosaic_id
from darts.sources.scene_source import (
    BandConsumer,
    BandFailed,
    FetchedCallback,
    MissingAssetError,
    SceneDescription,
)
from darts.store.georef import band_attrs

if TYPE_CHECKING:
    pass

MOSAIC_COLLECTION = "sentinel-2-global-mosaics"
# Store key → the mosaic's asset key. The store names bands alike for every source.
MOSAIC_BANDS: dict[str, str] = {
    "B02_10m": "B02",
    "B03_10m": "B03",
    "B04_10m": "B04",
    "B08_10m": "B08",
}
OBSERVATIONS = "observations"
DEFAULT_KEYS = tuple(MOSAIC_BANDS)
# int16 reflectance × 10,000 without offset (the recorded items carry no raster:scale).
REFLECTANCE_SCALE = 1e-4
MOSAIC_NODATA = -32768
# Band files fetched ahead of the one being decoded.
FETCH_AHEAD = 2


class CdseMosaicSource(CdseAccess):
    """Quarterly mosaics, from the same STAC API and S3 as the ``cdse`` source."""

    name = "cdse-mosaic"
    kind = "Sentinel-2 quarterly mosaics"
    quality_band = OBSERVATIONS
    relax_hint = "widen --years or --quarters, or check the tile ids"

    # -- finding mosaics ----------------------------------------------------------------

    def discover(
        self, selection: SceneSelection, filters: SceneFilters, *, today: date | None = None
    ) -> list[dict[str, Any]]:
        applied = mosaic_filters(filters)
        items = discover_cdse(
            selection,
            applied,
            stac_url=self.stac_url,
            net=self._catalogue(),
            collection=MOSAIC_COLLECTION,
            today=today,
            source=self.name,
        )
        if not selection.needs_search:
            return [dict(item) for item in items]
        # A search interval touches the neighbouring quarters' end/start instants too;
        # keep exactly the quarters and years asked for.
        return [dict(item) for item in items if _quarter_matches(item, applied)]

    def notes(self, filters: SceneFilters) -> list[str]:
        ignored = []
        if filters.cloud_filter:
            ignored.append(f"--max-cloud-cover {filters.max_cloud_cover:g}")
        if filters.snow_filter:
            ignored.append(f"--max-snow-cover {filters.max_snow_cover:g}")
        if filters.months:
            ignored.append("--months")
        if filters.start_date or filters.end_date:
            ignored.append("--start-date/--end-date")
        if not ignored:
            return []
        return [
            "quarterly mosaics are composites of a whole quarter: "
            f"{', '.join(ignored)} do not apply to them (ignored); select them with "
            "--years and --quarters"
        ]

    # -- bands --------------------------------------------------------------------------

    def band_keys(self, bands: Sequence[str] | None, scene: Mapping[str, Any] | None) -> list[str]:
        keys: list[str] = []
        for name in bands or DEFAULT_KEYS:
            if not isinstance(name, str):
                raise ConfigError(f"band names must be strings, got {name!r}")
            text = name.strip().lower()
            if text == OBSERVATIONS:
                continue
            if text == ALL:
                keys += list(MOSAIC_BANDS)
                continue
            band, resolution = parse_band_name(name)
            key = f"{band}_10m"
            if band == SCL_BAND or key not in MOSAIC_BANDS or resolution not in (None, 10):
                raise ConfigError(
                    f"band {name!r} is not in the quarterly mosaics (source cdse-mosaic): they "
                    "hold B02, B03, B04 and B08 at 10 m, and observations as their quality band"
                )
            keys.append(key)
        keys.append(OBSERVATIONS)
        keys = list(dict.fromkeys(keys))
        if scene is not None:
            assets = scene.get("assets") or {}
            absent = [key for key in keys if _asset_key(key) not in assets]
            if absent:
                raise MissingAssetError(
                    f"mosaic {scene.get('id')!r} has no asset for {', '.join(absent)}"
                )
        return keys

    def describe(self, scene: Mapping[str, Any], keys: Sequence[str]) -> SceneDescription:
        size, exact = file_sizes(scene, [_asset_key(key) for key in keys])
        return describe_scene(scene, keys, mosaic_grid(scene), size, exact)

    # -- fetching -----------------------------------------------------------------------

    def fetch(
        self,
        scene: Mapping[str, Any],
        keys: Sequence[str],
        consume: BandConsumer,
        *,
        on_fetched: FetchedCallback | None = None,
    ) -> None:
        """Fetch the band files a few ahead, decode each in turn, consume in order."""
        grid = mosaic_grid(scene)
        scene_id = str(scene.get("id"))
        s3 = self._client()
        assets = scene.get("assets") or {}

        def download(key: str) -> bytes:
            asset = assets[_asset_key(key)]
            href = asset.get("href")
            if not isinstance(href, str) or not href.startswith("s3://"):
                raise MissingAssetError(f"mosaic {scene_id!r}: asset {key!r} has no s3:// href")
            size = asset.get("file:size")
            data = s3.get_object_bytes(
                href,
                purpose=f"band {key} of quarterly mosaic {scene_id}",
                expected_size=int(size) if size is not None else None,
                checksum=asset.get("file:checksum"),
            )
            if on_fetched is not None:
                on_fetched(key, len(data))
            return data

        pending: deque[tuple[str, Future[bytes]]] = deque()
        with ThreadPoolExecutor(FETCH_AHEAD, "darts-mosaic-fetch") as pool:
            todo = deque(keys)
            try:
                while todo or pending:
                    while todo and len(pending) < FETCH_AHEAD:
                        key = todo.popleft()
                        pending.append((key, pool.submit(download, key)))
                    key, future = pending.popleft()
                    try:
                        band = _decode(key, future.result(), assets[_asset_key(key)], grid)
                    except (CredentialsError, OfflineError, ConfigError):
                        raise
                    except (NetworkError, DecodeError, MissingAssetError) as error:
                        raise BandFailed(key, error) from error
                    consume(key, band)
                    del band
            finally:
                for _, future in pending:
                    future.cancel()


def mosaic_filters(filters: SceneFilters) -> SceneFilters:
    """The filters that apply to quarterly mosaics: years and quarters only."""
    return replace(
        filters,
        start_date=None,
        end_date=None,
        max_cloud_cover=100.0,
        max_snow_cover=100.0,
        months=(),
    )


def mosaic_grid(scene: Mapping[str, Any]) -> Grid:
    """The mosaic's 10 m grid from its B02 asset (``proj:transform``, else the corner of
    ``proj:bbox`` and ``proj:shape``: the recorded items carry no transform)."""
    assets = scene.get("assets") or {}
    asset = next((assets[a] for a in MOSAIC_BANDS.values() if a in assets), None)
    if asset is None:
        raise DecodeError(
            f"mosaic {scene.get('id')!r} has no reflectance asset to take a grid from"
        )
    try:
        rows, cols = (int(v) for v in asset["proj:shape"])
        code = str(asset["proj:code"])
        wkt = CRS.from_user_input(code).to_wkt()
        if asset.get("proj:transform"):
            a, b, c, d, e, f = (float(v) for v in asset["proj:transform"][:6])
        else:
            west, south, east, north = (float(v) for v in asset["proj:bbox"])
            a, b, c = (east - west) / cols, 0.0, west
            d, e, f = 0.0, -(north - south) / rows, north
            # The recorded bboxes carry float noise (399959.9999997376): snap to the
            # whole metres every Sentinel-2 grid lies on.
            a, e, c, f = round(a, 6), round(e, 6), round(c), round(f)
    except (KeyError, TypeError, ValueError, CRSError) as error:
        raise DecodeError(
            f"mosaic {scene.get('id')!r}: its B02 asset lacks a usable proj:code, proj:shape "
            f"and proj:bbox or proj:transform ({error})"
        ) from None
    return Grid((rows, cols), (a, b, c, d, e, f), code, wkt)


def _asset_key(key: str) -> str:
    return MOSAIC_BANDS.get(key, key)


def _quarter_matches(item: Mapping[str, Any], filters: SceneFilters) -> bool:
    try:
        year, quarter, _tile = parse_mosaic_id(str(item.get("id")))
    except ConfigError:
        return False
    if filters.years and year not in filters.years:
        return False
    return not filters.quarters or quarter in filters.quarters


def _decode(key: str, data: bytes, asset: Mapping[str, Any], grid: Grid) -> xr.DataArray:
    array, transform, crs = decode_geotiff(data, name=f"band {key}")
    if array.shape != grid.shape:
        raise DecodeError(
            f"band {key}: the file is {array.shape[0]}×{array.shape[1]} px, the mosaic's grid "
            f"{grid.shape[0]}×{grid.shape[1]}"
        )
    if not transform.is_identity and not _same_transform(transform, grid):
        raise DecodeError(
            f"band {key}: the file's geotransform {tuple(transform)[:6]} disagrees with the "
            f"mosaic's grid {grid.transform}"
        )
    if crs is not None and not crs.equals(CRS.from_wkt(grid.crs_wkt)):
        raise DecodeError(f"band {key}: the file's CRS differs from the mosaic's {grid.crs_code}")
    attrs: dict[str, Any] = {"darts:asset": _asset_key(key), "darts:resampling": "none"}
    if key == OBSERVATIONS:
        if array.dtype.kind not in "ui":
            raise DecodeError(f"band {key}: observation counts must be integers, got {array.dtype}")
        attrs["long_name"] = "number of valid observations"
    else:
        if array.dtype != np.int16:
            raise DecodeError(f"band {key}: the file holds {array.dtype}, mosaics hold int16")
        attrs.update(
            {
                "raster:scale": REFLECTANCE_SCALE,
                "raster:offset": 0.0,
                "nodata": asset.get("nodata", MOSAIC_NODATA),
                "long_name": asset.get("title") or key,
            }
        )
    attrs.update({k: v for k, v in band_attrs(grid).items() if k != "coordinates"})
    return xr.DataArray(array, dims=DIMS, coords=grid_coords(grid), name=key, attrs=attrs)


def _same_transform(transform: Affine, grid: Grid) -> bool:
    tolerance = 1e-3 * abs(grid.transform[0])
    return all(
        abs(p - q) <= tolerance for p, q in zip(tuple(transform)[:6], grid.transform, strict=True)
    )
