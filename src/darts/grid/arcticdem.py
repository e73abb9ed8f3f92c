"""The ArcticDEM v4.1 mosaic tile grid (EPSG:3413).

The grid starts at (-4,000,000 m, -4,000,000 m) and is cut into 100 km "supertiles"
named ``<row>_<col>`` with two-digit, zero-padded, 1-based indices:

    col = floor((x + 4e6) / 1e5) + 1        row = floor((y + 4e6) / 1e5) + 1

so ``58_05`` is row 58 (counted northwards), column 5 (counted eastwards). The 10 m and
32 m mosaics have one tile per supertile (item ids ``58_05_10m_v4.1``,
``58_05_32m_v4.1``). The 2 m mosaic cuts each supertile into four 50 km quarters
``<row>_<col>_<subrow>_<subcol>`` with subrow/subcol in 1..2, 1 being the south / west
half (item id ``44_74_1_2_2m_v4.1``).

Bounds are half-open: a region that only touches a tile's edge does not select it.
"""

from __future__ import annotations

import math
import re

ORIGIN_M = -4_000_000.0
SUPERTILE_M = 100_000.0
SUBTILE_M = 50_000.0
RESOLUTIONS_M = (2, 10, 32)
VERSION = "v4.1"

Bounds = tuple[float, float, float, float]

_NAME_RE = re.compile(r"^(\d{2})_(\d{2})(?:_([12])_([12]))?(?:_(2|10|32)m_v4\.1)?$")


def _check_resolution(resolution_m: int) -> int:
    if resolution_m not in RESOLUTIONS_M:
        raise ValueError(f"ArcticDEM mosaics exist at {RESOLUTIONS_M} m, not {resolution_m!r}")
    return int(resolution_m)


def _index_range(low: float, high: float, size: float) -> range:
    """1-based indices of the cells of width ``size`` that [low, high) overlaps."""
    first = math.floor((low - ORIGIN_M) / size) + 1
    last = max(math.ceil((high - ORIGIN_M) / size), first)
    return range(first, last + 1)


def supertile_name(row: int, col: int) -> str:
    return f"{row:02d}_{col:02d}"


def tiles_for_bounds(bounds_3413: Bounds, resolution_m: int) -> list[str]:
    """Names of the tiles (supertiles at 10/32 m, quarters at 2 m) overlapping the bounds.

    ``bounds_3413`` is (xmin, ymin, xmax, ymax) in EPSG:3413 metres. Sorted by row, then
    column (then subrow, subcol).
    """
    _check_resolution(resolution_m)
    xmin, ymin, xmax, ymax = bounds_3413
    if xmin > xmax or ymin > ymax:
        raise ValueError(f"bounds must be (xmin, ymin, xmax, ymax), got {bounds_3413!r}")
    size = SUBTILE_M if resolution_m == 2 else SUPERTILE_M
    names: list[str] = []
    for r in _index_range(ymin, ymax, size):
        for c in _index_range(xmin, xmax, size):
            if resolution_m == 2:
                # Quarter (r, c) on the 50 km grid -> supertile + sub-position.
                row, subrow = (r - 1) // 2 + 1, (r - 1) % 2 + 1
                col, subcol = (c - 1) // 2 + 1, (c - 1) % 2 + 1
                names.append(f"{supertile_name(row, col)}_{subrow}_{subcol}")
            else:
                names.append(supertile_name(r, c))
    return names


def parse_tile_name(tile_name: str) -> tuple[int, int, int | None, int | None]:
    """(row, col, subrow, subcol) of ``58_05`` / ``44_74_1_2`` (item ids accepted too)."""
    match = _NAME_RE.match(tile_name.strip()) if isinstance(tile_name, str) else None
    if match is None:
        raise ValueError(
            f"not an ArcticDEM mosaic tile name: {tile_name!r} "
            "(expected '58_05', '44_74_1_2' or an item id like '58_05_10m_v4.1')"
        )
    row, col = int(match.group(1)), int(match.group(2))
    if row < 1 or col < 1:
        raise ValueError(f"tile indices start at 1: {tile_name!r}")
    if match.group(3) is None:
        return row, col, None, None
    return row, col, int(match.group(3)), int(match.group(4))


def tile_bounds(tile_name: str) -> Bounds:
    """EPSG:3413 (xmin, ymin, xmax, ymax) of a supertile or a 2 m quarter tile."""
    row, col, subrow, subcol = parse_tile_name(tile_name)
    xmin = ORIGIN_M + (col - 1) * SUPERTILE_M
    ymin = ORIGIN_M + (row - 1) * SUPERTILE_M
    if subrow is None or subcol is None:
        return (xmin, ymin, xmin + SUPERTILE_M, ymin + SUPERTILE_M)
    xmin += (subcol - 1) * SUBTILE_M
    ymin += (subrow - 1) * SUBTILE_M
    return (xmin, ymin, xmin + SUBTILE_M, ymin + SUBTILE_M)


def supertile_of(tile_name: str) -> str:
    row, col, _, _ = parse_tile_name(tile_name)
    return supertile_name(row, col)


def tile_of_item_id(item_id: str) -> str:
    """``44_74_1_2_2m_v4.1`` -> ``44_74_1_2``."""
    row, col, subrow, subcol = parse_tile_name(item_id)
    name = supertile_name(row, col)
    return name if subrow is None else f"{name}_{subrow}_{subcol}"


def item_id(tile_name: str, resolution_m: int) -> str:
    """STAC item id of a tile: ``<tile>_<res>m_v4.1``; 2 m needs a quarter tile name."""
    _check_resolution(resolution_m)
    tile = tile_of_item_id(tile_name)
    is_quarter = tile.count("_") == 3
    if is_quarter != (resolution_m == 2):
        raise ValueError(
            f"{tile_name!r}: 2 m tiles are quarters (row_col_subrow_subcol), "
            "10/32 m tiles are supertiles (row_col)"
        )
    return f"{tile}_{resolution_m}m_{VERSION}"


def collection_id(resolution_m: int) -> str:
    return f"arcticdem-mosaics-{VERSION}-{_check_resolution(resolution_m)}m"
