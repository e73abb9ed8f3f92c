"""The TCVIS cube: its grid, its trend periods, and how it is cut into source tiles.

TCVIS (Nitze's Landsat Tasseled Cap trends) is published as Earth Engine image
collections on an EPSG:4326 grid of ≈30 m pixels whose edges sit on multiples of the
pixel size, one collection per trend period (sources.md §4). The cube uses that very
grid, so pixels are copied, never resampled, whichever source fills them.

Everything here is pure: an offline readiness check plans tiles with these functions
without constructing a source, credentials or a client.
"""

from __future__ import annotations

import math
import re

from darts.grid.cube import CubeGrid, Window
from darts.store.datacube.spec import CubeSpec, CubeVariable

TCVIS_PIXEL_DEG = 0.00026949458523585647
# The TCVIS domain: the whole northern permafrost zone.
TCVIS_BOUNDS = (-180.0, 45.0, 180.0, 85.0)

TCVIS_PERIODS = ("2000-2019", "2001-2020", "2003-2022", "2005-2024")
TCVIS_EE_COLLECTIONS: dict[str, str] = {
    "2000-2019": "users/ingmarnitze/TCTrend_SR_2000-2019_TCVIS",
    "2001-2020": "users/ingmarnitze/TCTrend_SR_2001-2020_TCVIS",
    "2003-2022": "users/ingmarnitze/TCTrend_SR_2003-2022_TCVIS",
    "2005-2024": "projects/ee-ingmarnitze/assets/TCTrend_SR_2005-2024_TCVIS",
}
# Cube variable -> Earth Engine band, in band order (the mirror's COGs use this order).
TCVIS_BANDS: dict[str, str] = {
    "tc_brightness": "TCB_slope",
    "tc_greenness": "TCG_slope",
    "tc_wetness": "TCW_slope",
}
_LONG_NAMES = {
    "tc_brightness": "Tasseled Cap brightness trend",
    "tc_greenness": "Tasseled Cap greenness trend",
    "tc_wetness": "Tasseled Cap wetness trend",
}

# Source tiles are 2048² cube pixels (≈ 55 × 61 km at 70° N): one computePixels answer
# is then 12 MiB, well under Earth Engine's 48 MB request limit, yet few enough requests
# that a scene (≈ 4 tiles) costs a handful of round trips.
TILE_PX = 2048
_TILE_ID = re.compile(r"^r(\d{4})_c(\d{5})$")

# A coordinate that is a multiple of the pixel size up to float noise must not round to
# the neighbouring pixel.
_ALIGN_TOLERANCE_PX = 1e-6


def tcvis_spec(chunk: int = 1024) -> CubeSpec:
    """The TCVIS cube: three uint8 trend bands on the Earth Engine export grid."""
    west, south, east, north = TCVIS_BOUNDS
    col0 = math.floor(west / TCVIS_PIXEL_DEG + _ALIGN_TOLERANCE_PX)
    col1 = math.ceil(east / TCVIS_PIXEL_DEG - _ALIGN_TOLERANCE_PX)
    row_south = math.floor(south / TCVIS_PIXEL_DEG + _ALIGN_TOLERANCE_PX)
    row_north = math.ceil(north / TCVIS_PIXEL_DEG - _ALIGN_TOLERANCE_PX)
    grid = CubeGrid(
        crs="EPSG:4326",
        x0=col0 * TCVIS_PIXEL_DEG,
        y0=row_north * TCVIS_PIXEL_DEG,
        res=TCVIS_PIXEL_DEG,
        width=col1 - col0,
        height=row_north - row_south,
    )
    variables = tuple(
        CubeVariable(
            name,
            "uint8",
            0,  # TCVIS has no nodata value; 0 marks "not written / no data"
            {"long_name": _LONG_NAMES[name], "earth_engine_band": band},
        )
        for name, band in TCVIS_BANDS.items()
    )
    return CubeSpec(
        kind="tcvis",
        grid=grid,
        variables=variables,
        chunk=chunk,
        attrs={"source": "TCVIS Landsat Tasseled Cap trends (Nitze)", "tile_px": TILE_PX},
    )


def tcvis_period(scene_year: int) -> str:
    """The trend period for a scene of ``scene_year``.

    DARTS lags by one year: a scene is compared with trends up to the year after it.
    The lag is applied here and only here (the reference applied it twice and read
    empty cubes for pre-2022 scenes, pitfall 12).
    """
    year = scene_year + 1
    if year <= 2019:
        return "2000-2019"
    if year == 2020:
        return "2001-2020"
    if year <= 2022:
        return "2003-2022"
    return "2005-2024"


def check_period(period: str) -> str:
    if period not in TCVIS_PERIODS:
        raise ValueError(f"unknown TCVIS period {period!r}; known: {', '.join(TCVIS_PERIODS)}")
    return period


def tile_id(block_row: int, block_col: int) -> str:
    return f"r{block_row:04d}_c{block_col:05d}"


def parse_tile_id(tile: str) -> tuple[int, int]:
    """(block row, block col) of a tile id like ``r0123_c04567``."""
    match = _TILE_ID.match(tile)
    if match is None:
        raise ValueError(f"not a TCVIS tile id (like r0012_c00345): {tile!r}")
    return int(match.group(1)), int(match.group(2))


def tcvis_tiles_for(spec: CubeSpec, window: Window) -> list[str]:
    """Ids of the tiles overlapping ``window`` (cube pixels), sorted. Pure."""
    window = window.intersection(spec.grid.full)
    if window.is_empty:
        return []
    rows = range(window.row0 // TILE_PX, (window.row1 - 1) // TILE_PX + 1)
    cols = range(window.col0 // TILE_PX, (window.col1 - 1) // TILE_PX + 1)
    return [tile_id(r, c) for r in rows for c in cols]


def tcvis_tile_window(spec: CubeSpec, tile: str) -> Window:
    """The cube pixels of ``tile``, clipped to the grid."""
    block_row, block_col = parse_tile_id(tile)
    window = Window(
        block_row * TILE_PX,
        (block_row + 1) * TILE_PX,
        block_col * TILE_PX,
        (block_col + 1) * TILE_PX,
    ).intersection(spec.grid.full)
    if window.is_empty:
        raise ValueError(f"TCVIS tile {tile} lies outside the {spec.kind} cube")
    return window
