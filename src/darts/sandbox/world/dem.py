"""ArcticDEM v4.1 mosaic tiles: sparse COGs, static STAC items and the tile index.

Every tile that the world's DEM area touches is written at its full size on the PGC
grid (``darts.grid.arcticdem``): 10,000² px at 10 m, 3,125² at 32 m, 25,000² at 2 m
(50 km quarters). Only the DEM area holds data, the rest is nodata and, thanks to
``SPARSE_OK``, takes no space. Files mirror the public bucket's layout::

    arcticdem/mosaics/v4.1/<res>/<supertile>/<tile>_<res>_v4.1_<asset>.tif
    arcticdem/mosaics/v4.1/<res>/<supertile>/<tile>_<res>_v4.1.json   (static item)

Assets: ``dem`` (float32 m, nodata −9999), ``datamask`` (uint8, 1 = data, nodata 0),
and at 10 m and 32 m also ``count`` (uint8, number of contributing strips), ``mad``
(float32, median absolute deviation, m) and ``hillshade`` (uint8, sun from 315°/45°).
The 2 m tiles carry only ``dem`` and ``datamask``: each 2 m asset costs about a second
to scan for empty blocks and they are there to exercise the 2 m code path.

Index tables (GeoParquet, EPSG:3413) hold one row per tile written, with ``fileurl``
pointing at the tile's ``dem`` COG and ``s3url`` at its static item (both under
``PGC_DATA_PLACEHOLDER``; the real index points at a tarball and at a STAC browser).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
from affine import Affine
from shapely.geometry import box, mapping

from darts.grid import arcticdem as grid
from darts.sandbox.layout import PGC_DATA_PLACEHOLDER, PGC_STAC_PLACEHOLDER, WorldLayout
from darts.sandbox.world.coords import WORLD_EPSG, RasterGrid, world_coords
from darts.sandbox.world.encode import sparse_cog_bytes
from darts.sandbox.world.field import WorldField
from darts.sandbox.world.noise import fbm
from darts.sandbox.world.objects import FileWriter, Written
from darts.sandbox.world.regions import Box, reproject

NODATA = {"dem": -9999.0, "datamask": 0, "count": 0, "mad": -9999.0, "hillshade": 0}
DTYPES = {
    "dem": "float32",
    "datamask": "uint8",
    "count": "uint8",
    "mad": "float32",
    "hillshade": "uint8",
}
TITLES = {
    "dem": "Digital elevation model (m)",
    "datamask": "Valid data mask",
    "count": "Number of contributing DEM strips",
    "mad": "Median absolute deviation of contributing strips (m)",
    "hillshade": "Hillshade",
}
ROLES = {
    "dem": ["data"],
    "datamask": ["metadata", "data-mask"],
    "count": ["metadata"],
    "mad": ["metadata"],
    "hillshade": ["visual"],
}
_BLOCK_PIXELS = 8_000_000


@dataclass(frozen=True)
class DemTile:
    name: str  # "39_17" or "39_17_1_2"
    res: int

    @property
    def item_id(self) -> str:
        return grid.item_id(self.name, self.res)

    @property
    def supertile(self) -> str:
        return grid.supertile_of(self.name)

    @property
    def folder(self) -> str:
        return f"arcticdem/mosaics/{grid.VERSION}/{self.res}m/{self.supertile}"

    def path(self, asset: str) -> str:
        return f"{self.folder}/{self.item_id}_{asset}.tif"

    @property
    def item_path(self) -> str:
        return f"{self.folder}/{self.item_id}.json"

    @property
    def raster(self) -> RasterGrid:
        xmin, _, xmax, ymax = grid.tile_bounds(self.name)
        n = round((xmax - xmin) / self.res)
        return RasterGrid(WORLD_EPSG, Affine(self.res, 0, xmin, 0, -self.res, ymax), n, n)

    def assets(self) -> tuple[str, ...]:
        return ("dem", "datamask") if self.res == 2 else tuple(NODATA)


def _data_window(tile: DemTile, area: Box) -> tuple[int, int, int, int] | None:
    """(row, col, height, width) of the tile pixels inside ``area``."""
    g = tile.raster
    xmin, ymin, xmax, ymax = g.bounds
    ax0, ay0, ax1, ay1 = (
        max(area[0], xmin),
        max(area[1], ymin),
        min(area[2], xmax),
        min(area[3], ymax),
    )
    if ax0 >= ax1 or ay0 >= ay1:
        return None
    col0 = math.floor((ax0 - xmin) / tile.res)
    col1 = math.ceil((ax1 - xmin) / tile.res)
    row0 = math.floor((ymax - ay1) / tile.res)
    row1 = math.ceil((ymax - ay0) / tile.res)
    return row0, col0, row1 - row0, col1 - col0


def _hillshade(dem: np.ndarray, res: float) -> np.ndarray:
    """uint8 hillshade (1..255) of a block with a one-pixel halo on every side."""
    dzdy, dzdx = np.gradient(dem, res)
    az, alt = math.radians(315.0), math.radians(45.0)
    slope = np.arctan(np.hypot(dzdx, dzdy))
    aspect = np.arctan2(-dzdx, dzdy)
    shade = np.sin(alt) * np.cos(slope) + np.cos(alt) * np.sin(slope) * np.cos(az - aspect)
    return np.clip(np.rint(1 + 254 * np.clip(shade, 0, 1)), 1, 255).astype(np.uint8)[1:-1, 1:-1]


def _render(
    world: WorldField, tile: DemTile, window: tuple[int, int, int, int]
) -> dict[str, np.ndarray]:
    row, col, height, width = window
    full = tile.raster
    out = {name: np.zeros((height, width), dtype=DTYPES[name]) for name in tile.assets()}
    block = max(6, _BLOCK_PIXELS // (width + 2))
    for r0 in range(0, height, block):
        r1 = min(r0 + block, height)
        # One extra pixel on every side for the hillshade's gradient.
        sub = full.window(row + r0 - 1, col - 1, r1 - r0 + 2, width + 2)
        coords = world_coords(sub)
        ground = world.sample(coords)
        dem = np.round(ground.height, 2).astype(np.float32)
        out["dem"][r0:r1] = dem[1:-1, 1:-1]
        out["datamask"][r0:r1] = 1
        if "count" in out:
            x, y = coords.x[1:-1, 1:-1], coords.y[1:-1, 1:-1]
            strips = fbm(x, y, 4000.0, 2, world.seed, "strip-count")
            out["count"][r0:r1] = np.clip(np.rint(6 + 8 * strips), 1, 30).astype(np.uint8)
            spread = np.abs(fbm(x, y, 1500.0, 2, world.seed, "strip-mad"))
            out["mad"][r0:r1] = np.round(0.05 + 0.6 * spread, 3).astype(np.float32)
            out["hillshade"][r0:r1] = _hillshade(dem, float(tile.res))
    return out


def _item(tile: DemTile, files: dict[str, Written], data_fraction: float) -> dict[str, Any]:
    g = tile.raster
    outline = reproject(box(*g.bounds), WORLD_EPSG, 4326, 2000.0)
    collection = grid.collection_id(tile.res)
    assets = {}
    for name, written in files.items():
        assets[name] = {
            "href": PGC_DATA_PLACEHOLDER + tile.path(name),
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "title": TITLES[name],
            "roles": ROLES[name],
            "nodata": NODATA[name],
            "data_type": DTYPES[name],
            "file:size": written.size,
            "file:checksum": written.checksum,
        }
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
            "https://stac-extensions.github.io/file/v2.1.0/schema.json",
        ],
        "id": tile.item_id,
        "collection": collection,
        "bbox": [round(v, 6) for v in outline.bounds],
        "geometry": mapping(outline),
        "properties": {
            "title": tile.item_id,
            "datetime": None,
            "start_datetime": "2007-01-01T00:00:00Z",
            "end_datetime": "2022-12-31T23:59:59Z",
            "gsd": float(tile.res),
            "proj:code": f"EPSG:{WORLD_EPSG}",
            "proj:shape": [g.height, g.width],
            "proj:transform": [float(v) for v in g.transform[:6]],
            "proj:bbox": list(g.bounds),
            "pgc:release_version": grid.VERSION,
            "pgc:data_perc": round(data_fraction, 6),
            "pgc:supertile": tile.supertile,
            "pgc:tile": tile.name,
        },
        "links": [
            {
                "rel": "self",
                "href": f"{PGC_STAC_PLACEHOLDER}collections/{collection}/items/{tile.item_id}",
                "type": "application/geo+json",
            },
            {
                "rel": "collection",
                "href": f"{PGC_STAC_PLACEHOLDER}collections/{collection}",
                "type": "application/json",
            },
            {
                "rel": "parent",
                "href": f"{PGC_STAC_PLACEHOLDER}collections/{collection}",
                "type": "application/json",
            },
            {"rel": "root", "href": PGC_STAC_PLACEHOLDER, "type": "application/json"},
        ],
        "assets": assets,
    }


def tiles_for(area: Box, res: int) -> list[DemTile]:
    return [DemTile(name, res) for name in grid.tiles_for_bounds(area, res)]


def write_tile(
    layout: WorldLayout, writer: FileWriter, world: WorldField, tile: DemTile, area: Box
) -> None:
    window = _data_window(tile, area)
    if window is None:
        return
    arrays = _render(world, tile, window)
    g = tile.raster
    files: dict[str, Written] = {}
    for name in tile.assets():
        data = sparse_cog_bytes(
            arrays[name], window[0], window[1], g.shape, WORLD_EPSG, g.transform, NODATA[name]
        )
        files[name] = writer.write(layout.pgc_data / tile.path(name), data)
    fraction = window[2] * window[3] / (g.height * g.width)
    item = _item(tile, files, fraction)
    writer.write_json(layout.pgc_items / item["collection"] / f"{tile.item_id}.json", item)
    writer.write_json(layout.pgc_data / tile.item_path, item)


def write_index(layout: WorldLayout, writer: FileWriter, tiles: list[DemTile]) -> None:
    for res in grid.RESOLUTIONS_M:
        chosen = sorted((t for t in tiles if t.res == res), key=lambda t: t.name)
        frame = gpd.GeoDataFrame(
            {
                "dem_id": [t.item_id for t in chosen],
                "tile": [t.name for t in chosen],
                "supertile": [t.supertile for t in chosen],
                "gsd": [float(res) for _ in chosen],
                "fileurl": [PGC_DATA_PLACEHOLDER + t.path("dem") for t in chosen],
                "s3url": [PGC_DATA_PLACEHOLDER + t.item_path for t in chosen],
            },
            geometry=[box(*grid.tile_bounds(t.name)) for t in chosen],
            crs=f"EPSG:{WORLD_EPSG}",
        )
        path = layout.pgc_index / f"ArcticDEM_Mosaic_Index_v4_1_{res}m.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)
        data = path.read_bytes()
        path.unlink()
        writer.write(path, data)
