"""ArcticDEM v4.1 mosaics as a datacube source: the cube spec and the tile source.

The cube covers the whole ArcticDEM domain on EPSG:3413 at 2, 10 or 32 m. Its extent
is the PGC tile grid grown by a small margin (100 m; 96 m at 32 m so the edges stay
on whole pixels), which keeps every PGC tile edge exactly on a cube pixel edge: a tile
is copied pixel for pixel, never resampled.

A tile is fetched as the PGC tooling does it: the mosaic index (downloaded once) says
whether the tile exists at all; if it does, its STAC item names the ``dem`` and
``datamask`` COGs, which are range-read in row strips so that even a 2 m tile
(25,000² float32, 2.5 GB) passes through bounded memory on its way into the
disk-backed tile buffer. The bytes travel through the shared `HttpClient`
(`darts.net.cog`), under the same retry policy as every other transfer; GDAL only
decodes them.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urljoin, urlsplit

import numpy as np

from darts.errors import DartsError
from darts.grid import arcticdem as pgc_grid
from darts.grid.cube import CubeGrid, Window
from darts.net.cog import RemoteCog
from darts.net.errors import NetworkError
from darts.net.http import HttpClient
from darts.sources.arcticdem_index import ArcticDemIndex
from darts.store.datacube.spec import CubeCompression, CubeSpec, CubeVariable, TileBuffer, TileFetch

# EPSG:3413 (xmin, ymin, xmax, ymax) of the 2 m and 10 m cubes.
ARCTICDEM_EXTENT = (-4000100.0, -3400100.0, 3400100.0, 4100100.0)
# 100 m is not a multiple of 32 m; 96 m is, and keeps tile edges on pixel edges.
_MARGIN_M = {2: 100.0, 10: 100.0, 32: 96.0}
# Chunks and codec chosen with benchmarks/bench_aux_cube.py (full sandbox world, 10 m,
# heights in whole cm, 2 cores; see benchmarks/README.md). 2048² chunks (16 MiB of
# float32), Blosc LZ4 level 9 with byte shuffle: ~132 MB per 10,000 km²; a 10 × 10 km
# read straddling 4 chunks takes ~0.017 s and a scene footprint (110 × 110 km) ~0.27 s
# warm, 1.1× and 1.3× of reading and decoding the chunk files directly. Of chunks
# whose rows a window needs only some of, the reader decodes just those rows' Blosc
# blocks. 1024² reads a 10 km window faster (~0.011 s) but a scene slower (~0.32 s),
# with 4× the objects and manifest entries; 3600² (the reference's) and sharding
# (2048² chunks of 512² blocks) read a scene no faster. zstd 3 stores ~30 % fewer
# bytes but decodes a scene ~1.6× slower; LZ4 compresses a 10,000 km² tile in ~0.3 s
# of CPU (the reference's zstd 22: ~32 s). Byte shuffle leaves the 1-byte datamask as
# it is, which LZ4 then decodes ~10× faster than bit-shuffled, at the same size.
DEFAULT_CHUNK = 2048
DEFAULT_COMPRESSION = CubeCompression(codec="lz4", level=9, shuffle="shuffle")
PRECISION_M = 0.01
DEM_NODATA = -9999.0  # PGC's documented nodata for the dem asset, if a COG omits it
ASSETS = ("dem", "datamask")

# Rows are read in strips of about this many bytes of float32 per strip (plus a
# float64 copy for rounding): ~64 MiB, i.e. 512 rows of a 2 m tile, 1536 of a 10 m one.
_STRIP_BYTES = 64 * 1024 * 1024
# A COG's pixel edges may differ from the cube's by float noise only; anything more
# means it is on another grid and copying it would shift every pixel.
_ALIGN_TOLERANCE_PX = 1e-3


class ArcticDemSourceError(NetworkError, DartsError):
    """A PGC item or COG cannot be used as an ArcticDEM mosaic tile (missing asset,
    wrong CRS or pixel grid). A NetworkError too: it is the remote data that is wrong,
    so the cube records it as that tile's failure like any other fetch error."""


def arcticdem_extent(resolution_m: int) -> tuple[float, float, float, float]:
    """The cube extent at ``resolution_m``: the PGC grid plus the margin."""
    _check_resolution(resolution_m)
    margin = _MARGIN_M[resolution_m]
    xmin, ymin, xmax, ymax = ARCTICDEM_EXTENT
    shrink = _MARGIN_M[10] - margin
    return (xmin + shrink, ymin + shrink, xmax - shrink, ymax - shrink)


def arcticdem_grid(resolution_m: int) -> CubeGrid:
    xmin, ymin, xmax, ymax = arcticdem_extent(resolution_m)
    res = float(resolution_m)
    return CubeGrid(
        "EPSG:3413",
        x0=xmin,
        y0=ymax,
        res=res,
        width=round((xmax - xmin) / res),
        height=round((ymax - ymin) / res),
    )


def arcticdem_spec(resolution_m: int, chunk: int = DEFAULT_CHUNK) -> CubeSpec:
    """The ArcticDEM cube at 2, 10 or 32 m: ``dem`` (m, NaN = no data) and
    ``datamask`` (1 = valid data, 0 = none), on the EPSG:3413 grid described above."""
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of pixels, got {chunk}")
    variables = (
        CubeVariable(
            "dem",
            "float32",
            math.nan,
            {
                "units": "m",
                "long_name": "surface elevation above the WGS84 ellipsoid (ArcticDEM mosaic)",
            },
            # Stored as whole centimetres (see CubeVariable.scale): 132 instead of 227
            # MB per 10,000 km² for the same cm-rounded heights in metres, and faster
            # to decode; read back as the very float32 heights in metres.
            scale=round(1 / PRECISION_M),
        ),
        CubeVariable(
            "datamask",
            "uint8",
            0,
            {
                "long_name": "ArcticDEM valid data mask",
                "flag_values": [0, 1],
                "flag_meanings": "no_data valid_data",
            },
        ),
    )
    attrs = {
        "source": f"ArcticDEM {pgc_grid.VERSION} mosaic, Polar Geospatial Center",
        "resolution_m": int(resolution_m),
        # Heights are rounded to 1 cm before storage: far below the DEM's accuracy, and
        # it about halves the compressed size.
        "precision_m": PRECISION_M,
    }
    return CubeSpec(
        kind=f"arcticdem-{resolution_m}m",
        grid=arcticdem_grid(resolution_m),
        variables=variables,
        chunk=chunk,
        attrs=attrs,
        compression=DEFAULT_COMPRESSION,
    )


class ArcticDemSource:
    """ArcticDEM mosaic tiles at one resolution from PGC. Network only in ``fetch``."""

    def __init__(
        self,
        resolution_m: int,
        *,
        index: ArcticDemIndex,
        http: HttpClient,
        pgc_stac_url: str,
        spec: CubeSpec | None = None,
    ) -> None:
        self.resolution_m = _check_resolution(resolution_m)
        self.spec = spec or arcticdem_spec(resolution_m)
        if self.spec.grid.crs != "EPSG:3413" or self.spec.grid.res != float(resolution_m):
            raise ValueError(
                f"an ArcticDEM {resolution_m} m source needs an EPSG:3413 cube of "
                f"{resolution_m} m pixels, got {self.spec.grid.crs} at {self.spec.grid.res}"
            )
        self.index = index
        # Every request (STAC items and COG bytes) goes through this one client: its
        # retry policy, concurrency bound and counters cover the whole fetch.
        self.http = http
        self.pgc_stac_url = pgc_stac_url.rstrip("/") + "/"
        self.collection = pgc_grid.collection_id(resolution_m)
        self.description = (
            f"ArcticDEM {resolution_m} m mosaic (PGC, {self.pgc_stac_url}, {self.collection})"
        )

    # -- tiling (pure) ----------------------------------------------------------------

    def tiles_for(self, window: Window) -> list[str]:
        if window.is_empty:
            return []
        xmin, ymin, xmax, ymax = self.spec.grid.bounds_of(window)
        # The cube's margin lies west/south of the PGC grid's origin, where no tile
        # exists (indices start at 1): clip it away rather than name tile "00_xx".
        xmin, ymin = max(xmin, pgc_grid.ORIGIN_M), max(ymin, pgc_grid.ORIGIN_M)
        if xmin >= xmax or ymin >= ymax:
            return []
        return pgc_grid.tiles_for_bounds((xmin, ymin, xmax, ymax), self.resolution_m)

    def tile_window(self, tile_id: str) -> Window:
        pgc_grid.item_id(tile_id, self.resolution_m)  # refuses a name of the wrong kind
        bounds = pgc_grid.tile_bounds(tile_id)
        grid = self.spec.grid
        for edge, offset in (
            ("west", (bounds[0] - grid.x0) / grid.res),
            ("east", (bounds[2] - grid.x0) / grid.res),
            ("north", (grid.y0 - bounds[3]) / grid.res),
            ("south", (grid.y0 - bounds[1]) / grid.res),
        ):
            if abs(offset - round(offset)) > _ALIGN_TOLERANCE_PX:
                raise ValueError(
                    f"ArcticDEM tile {tile_id}: its {edge} edge is not on a pixel edge of "
                    f"the {self.spec.kind} cube grid; use arcticdem_spec() for the cube"
                )
        window = grid.window(bounds)
        if window.is_empty:
            raise ValueError(f"ArcticDEM tile {tile_id} lies outside the {self.spec.kind} cube")
        return window

    # -- fetching ---------------------------------------------------------------------

    def fetch(self, tile_id: str, into: TileBuffer) -> TileFetch:
        # tile_window accepts item ids too; the index is keyed by tile name, so an item
        # id looked up as given would wrongly read as "no data".
        tile_id = pgc_grid.tile_of_item_id(tile_id)
        window = self.tile_window(tile_id)
        if into.window != window:
            raise ValueError(f"the tile buffer covers {into.window}, not tile {tile_id} ({window})")
        item_id = pgc_grid.item_id(tile_id, self.resolution_m)
        entry = self.index.tiles(self.resolution_m).get(tile_id)
        if entry is None:
            # PGC publishes no tile where there is no land: nothing to fetch, and the
            # cube records the tile as complete so offline runs know it is not missing.
            return TileFetch(
                "empty",
                {
                    "item_id": item_id,
                    "reason": "not in the ArcticDEM mosaic index",
                    "index_url": self.index.index_url,
                    "collection": self.collection,
                },
            )
        purpose = f"ArcticDEM {self.resolution_m} m tile {tile_id}"
        item_url = f"{self.pgc_stac_url}collections/{self.collection}/items/{item_id}"
        item = self.http.get_json(item_url, purpose=f"{purpose}: STAC item")
        if not isinstance(item, dict) or item.get("id") != item_id:
            found = item.get("id") if isinstance(item, dict) else type(item).__name__
            raise ArcticDemSourceError(
                f"{item_url} returned item {found!r} instead of {item_id!r}; check "
                "--pgc-stac-url (it should be the PGC STAC API root)"
            )
        assets = _assets(item, item_url)
        valid = self._read_tile(assets, window, into, purpose)
        into.flush()
        return TileFetch(
            "filled",
            {
                "item_id": item_id,
                "collection": self.collection,
                "assets": assets,
                "valid_pixels": valid,
            },
        )

    def _read_tile(
        self, assets: dict[str, dict[str, Any]], window: Window, into: TileBuffer, purpose: str
    ) -> int:
        """Copy the tile's pixels from the two COGs into ``into``; the valid pixel count."""
        from rasterio.windows import Window as RasterioWindow

        dem_href, mask_href = assets["dem"]["href"], assets["datamask"]["href"]
        with (
            _open(self.http, dem_href, f"{purpose}: dem COG") as dem_cog,
            _open(self.http, mask_href, f"{purpose}: datamask COG") as mask_cog,
        ):
            dem_ds, mask_ds = dem_cog.dataset, mask_cog.dataset
            extent = self._cube_extent(dem_href, dem_ds)
            if self._cube_extent(mask_href, mask_ds) != extent:
                raise ArcticDemSourceError(
                    f"the datamask COG {mask_href} covers other pixels than the dem COG "
                    f"{dem_href}; PGC publishes both on one grid, so the item is broken"
                )
            part = extent.intersection(window)
            if part.is_empty:
                return 0
            nodata = DEM_NODATA if dem_ds.nodata is None else float(dem_ds.nodata)
            rows = _strip_rows(part.width, dem_ds.block_shapes[0][0])
            dem_out, mask_out = into.arrays["dem"], into.arrays["datamask"]
            # Strip buffers reused from strip to strip: fresh memory for every strip
            # cost more in page faults than reading and rounding it.
            strip = {
                "dem": np.empty((rows, part.width), dem_ds.dtypes[0]),
                "mask": np.empty((rows, part.width), mask_ds.dtypes[0]),
                "heights": np.empty((rows, part.width), np.float64),
                "valid": np.empty((rows, part.width), bool),
                "other": np.empty((rows, part.width), bool),
            }
            # Both COGs are read whole, strip by strip: fetched in large pieces.
            whole = RasterioWindow(
                part.col0 - extent.col0, part.row0 - extent.row0, part.width, part.height
            )
            dem_cog.plan(whole, 1)
            mask_cog.plan(whole, 1)
            valid_total = 0
            for row0 in range(part.row0, part.row1, rows):
                row1 = min(row0 + rows, part.row1)
                source = RasterioWindow(
                    part.col0 - extent.col0, row0 - extent.row0, part.width, row1 - row0
                )
                n = row1 - row0
                dem = dem_cog.read(1, source, out=strip["dem"][:n])
                mask = mask_cog.read(1, source, out=strip["mask"][:n])
                valid, other = strip["valid"][:n], strip["other"][:n]
                np.equal(mask, 1, out=valid)  # valid: mask 1, finite, not nodata
                valid &= np.isfinite(dem, out=other)
                valid &= np.not_equal(dem, nodata, out=other)
                heights = strip["heights"][:n]
                np.copyto(heights, dem)
                # Rounded in float64, then cast: the nearest float32 to the centimetre
                # value, as if the heights had been written at that precision.
                np.round(heights, 2, out=heights)
                target = Window(row0, row1, part.col0, part.col1).relative_to(window).slices
                dem_target = dem_out[target]
                np.copyto(dem_target, heights, casting="same_kind")
                np.copyto(dem_target, np.float32(np.nan), where=np.logical_not(valid, out=other))
                mask_out[target] = valid
                valid_total += int(np.count_nonzero(valid))
        return valid_total

    def _cube_extent(self, href: str, dataset: Any) -> Window:
        """The cube pixels a COG covers, after checking it lies on the cube grid."""
        grid = self.spec.grid
        t = dataset.transform
        epsg = dataset.crs.to_epsg() if dataset.crs else None
        col = (t.c - grid.x0) / grid.res
        row = (grid.y0 - t.f) / grid.res
        if (
            f"EPSG:{epsg}" != grid.crs
            or abs(t.a - grid.res) > grid.res * 1e-9
            or abs(-t.e - grid.res) > grid.res * 1e-9
            or t.b != 0
            or t.d != 0
            or abs(col - round(col)) > _ALIGN_TOLERANCE_PX
            or abs(row - round(row)) > _ALIGN_TOLERANCE_PX
        ):
            raise ArcticDemSourceError(
                f"ArcticDEM COG {href} is not on the {self.spec.kind} cube grid "
                f"({grid.crs}, {grid.res:g} m pixels with edges on the PGC tile grid): got "
                f"EPSG:{epsg}, transform {tuple(t)[:6]}; this is not an ArcticDEM "
                f"{self.resolution_m} m mosaic tile, check --pgc-stac-url"
            )
        col0, row0 = round(col), round(row)
        return Window(row0, row0 + dataset.height, col0, col0 + dataset.width)


class ArcticDemResolutionError(DartsError, ValueError):
    """A resolution PGC does not publish (ValueError too, for callers checking input)."""


def _check_resolution(resolution_m: int) -> int:
    if resolution_m not in pgc_grid.RESOLUTIONS_M:
        raise ArcticDemResolutionError(
            f"ArcticDEM resolution {resolution_m!r} m does not exist: choose 2, 10 or 32 "
            "(--arcticdem-resolution)"
        )
    return int(resolution_m)


def _assets(item: dict[str, Any], item_url: str) -> dict[str, dict[str, Any]]:
    """href (absolute) and checksum of the ``dem`` and ``datamask`` assets."""
    found = item.get("assets") or {}
    out: dict[str, dict[str, Any]] = {}
    for name in ASSETS:
        asset = found.get(name) if isinstance(found, dict) else None
        if not isinstance(asset, dict) or not asset.get("href"):
            raise ArcticDemSourceError(
                f"ArcticDEM item {item.get('id')!r} ({item_url}) has no {name!r} asset; "
                "check --pgc-stac-url (it should be the PGC STAC API root)"
            )
        out[name] = {
            # Relative hrefs are relative to the item document.
            "href": urljoin(item_url, str(asset["href"])),
            "file:checksum": asset.get("file:checksum"),
        }
    return out


def _strip_rows(width: int, block_rows: int) -> int:
    """Rows per strip: within the byte budget, a whole number of COG block rows so
    that no block is fetched twice."""
    block_rows = max(int(block_rows), 1)
    rows = _STRIP_BYTES // (4 * max(width, 1))
    return max(block_rows, rows // block_rows * block_rows)


def _open(http: HttpClient, href: str, purpose: str) -> RemoteCog:
    if urlsplit(href).scheme not in ("http", "https"):
        raise ArcticDemSourceError(
            f"ArcticDEM COG href {href!r} is not an http(s) URL; check --pgc-stac-url "
            "(PGC publishes its mosaic COGs over https)"
        )
    return RemoteCog.open(http, href, purpose=purpose)
