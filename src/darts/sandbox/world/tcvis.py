"""TCVIS: Landsat Tasseled Cap trend images for the four periods DARTS uses.

One COG per period covers the world's TCVIS box on the EPSG:4326 grid of the GEE
exports (pixel 0.00026949458523585647°, aligned to multiples of it), with three uint8
bands ``tc_brightness``, ``tc_greenness``, ``tc_wetness`` (no nodata). Undisturbed
tundra shows a slight greening (greenness ~135–150, brightness and wetness ~125–135);
a slump shows rising brightness and falling greenness and wetness, scaled by the share
of the period it was active (slumps start between 2001 and 2015), so the periods differ
slightly, later periods seeing more of each slump.

STAC layout: one collection per period, ``tcvis-<period>`` (the stand-in serves one
collection per item folder); items also carry ``tcvis:period``. Files live under
``<period>/``; hrefs start with ``TCVIS_DATA_PLACEHOLDER``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from affine import Affine
from shapely.geometry import box, mapping

from darts.sandbox.layout import TCVIS_DATA_PLACEHOLDER, WorldLayout
from darts.sandbox.world.coords import RasterGrid, world_coords
from darts.sandbox.world.encode import cog_bytes
from darts.sandbox.world.field import WorldField
from darts.sandbox.world.noise import fbm
from darts.sandbox.world.objects import FileWriter
from darts.sandbox.world.regions import Box

PIXEL_DEG = 0.00026949458523585647
PERIODS = ("2000-2019", "2001-2020", "2003-2022", "2005-2024")
BANDS = ("tc_brightness", "tc_greenness", "tc_wetness")
_BLOCK_ROWS = 1024


def collection_id(period: str) -> str:
    return f"tcvis-{period}"


def tcvis_grid(area: Box) -> RasterGrid:
    west, south, east, north = area
    col0 = math.floor(west / PIXEL_DEG)
    col1 = math.ceil(east / PIXEL_DEG)
    row0 = math.floor(south / PIXEL_DEG)
    row1 = math.ceil(north / PIXEL_DEG)
    transform = Affine(PIXEL_DEG, 0.0, col0 * PIXEL_DEG, 0.0, -PIXEL_DEG, row1 * PIXEL_DEG)
    return RasterGrid(4326, transform, row1 - row0, col1 - col0)


def _activity(world: WorldField, period: str) -> list[float]:
    first, last = (int(p) for p in period.split("-"))
    return [max(0, last - max(first, s.initiated) + 1) / (last - first + 1) for s in world.slumps]


def _render(world: WorldField, grid: RasterGrid) -> dict[str, np.ndarray]:
    """All periods at once: the ground is sampled once per block and shared."""
    out = {p: np.zeros((3, grid.height, grid.width), dtype=np.uint8) for p in PERIODS}
    weights = {p: _activity(world, p) for p in PERIODS}
    for r0 in range(0, grid.height, _BLOCK_ROWS):
        r1 = min(r0 + _BLOCK_ROWS, grid.height)
        coords = world_coords(grid.rows(r0, r1))
        ground = world.sample(coords, detail=False)
        x, y = coords.x, coords.y
        land = 1.0 - ground.water
        for period in PERIODS:
            signal = world.slump_signal(coords, weights[period])
            drift = fbm(x, y, 3000.0, 3, world.seed, f"tcvis-{period}")
            brightness = 128 + 4 * drift + 95 * signal
            greenness = 130 + land * (10 + 8 * ground.greenness) + 5 * drift - 80 * signal
            wetness = 129 - 3 * drift - 45 * signal
            for band, values in enumerate((brightness, greenness, wetness)):
                out[period][band, r0:r1] = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return out


def _item(
    period: str, item_id: str, path: str, grid: RasterGrid, size: int, checksum: str
) -> dict[str, Any]:
    first, last = period.split("-")
    outline = box(*grid.bounds)
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
            "https://stac-extensions.github.io/file/v2.1.0/schema.json",
        ],
        "id": item_id,
        "collection": collection_id(period),
        "bbox": [round(v, 9) for v in grid.bounds],
        "geometry": mapping(outline),
        "properties": {
            "datetime": None,
            "start_datetime": f"{first}-01-01T00:00:00Z",
            "end_datetime": f"{last}-12-31T23:59:59Z",
            "tcvis:period": period,
            "gsd": 30.0,
            "proj:code": "EPSG:4326",
            "proj:shape": [grid.height, grid.width],
            "proj:transform": [float(v) for v in grid.transform[:6]],
        },
        "links": [],
        "assets": {
            "data": {
                "href": TCVIS_DATA_PLACEHOLDER + path,
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "title": f"Tasseled Cap trends {period}",
                "roles": ["data"],
                "bands": [{"name": name, "data_type": "uint8"} for name in BANDS],
                "file:size": size,
                "file:checksum": checksum,
            }
        },
    }


def write_periods(
    layout: WorldLayout, writer: FileWriter, world: WorldField, area: Box, tag: str
) -> list[str]:
    """One COG and one item per period; returns the item ids."""
    grid = tcvis_grid(area)
    rendered = _render(world, grid)
    ids = []
    for period in PERIODS:
        item_id = f"TCTrend_SR_{period}_TCVIS_{tag}"
        path = f"{period}/{item_id}.tif"
        data = cog_bytes(rendered[period], 4326, grid.transform, None, BANDS)
        written = writer.write(layout.tcvis_data / path, data)
        item = _item(period, item_id, path, grid, written.size, written.checksum)
        writer.write_json(layout.tcvis_items / collection_id(period) / f"{item_id}.json", item)
        ids.append(item_id)
    return ids
