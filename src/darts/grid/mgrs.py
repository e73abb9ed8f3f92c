"""Sentinel-2 tile footprints from MGRS tile ids, without ESA's tiling-grid KML.

A Sentinel-2 tile id such as ``33UUP`` is an MGRS 100 km grid square: UTM zone (``33``),
latitude band (``U``), column letter (``U``) and row letter (``P``). The tile is the
109,800 m square whose upper-left corner is the 100 km square's upper-left corner (west
edge, north edge), so neighbouring tiles overlap by 9.8 km to the east and south.

Lettering follows the standard MGRS scheme (the "AA" scheme used with WGS 84):

- column letters repeat every three zones: zones 1, 4, 7, … use ``A``–``H``, zones 2, 5, 8,
  … ``J``–``R`` and zones 3, 6, 9, … ``S``–``Z`` (``I`` and ``O`` are never used); the first
  letter of the set is the square whose west edge is at easting 100,000 m;
- row letters run ``A``–``V`` (20 letters) northwards every 100 km, starting at northing 0
  in odd zones and offset by five letters (``F`` at northing 0) in even zones. The cycle
  repeats every 2,000 km, so the northing is the one whose square falls in the latitude
  band named by the band letter. The southern hemisphere uses the 10,000,000 m false
  northing, which is a whole number of cycles, so the same lettering holds.

ESA's real tile corners deviate from this rule by up to ~60 m (e.g. 55WFR's upper edge
is at 7,600,020 m, 36NYH's west edge at 699,960 m); the bounds returned here are within
100 m of the real ones, which is enough to plan auxiliary downloads with a buffer, not to
reproduce ESA's exact pixel grid (take that from an item's ``proj:transform``).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

from pyproj import Transformer

TILE_SIZE_M = 109_800
SQUARE_SIZE_M = 100_000
_CYCLE_M = 2_000_000
_ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"
_COLUMN_SETS = ("STUVWXYZ", "ABCDEFGH", "JKLMNPQR")  # indexed by zone % 3
_BAND_LETTERS = "CDEFGHJKLMNPQRSTUVWX"  # 8° bands from 80°S; X spans 72°–84°N
_TILE_RE = re.compile(r"^T?(\d{1,2})([C-HJ-NP-X])([A-HJ-NP-Z])([A-HJ-NP-V])$")

Bounds = tuple[float, float, float, float]


def _band_latitudes(band: str) -> tuple[float, float]:
    index = _BAND_LETTERS.index(band)
    south = -80.0 + 8.0 * index
    north = 84.0 if band == "X" else south + 8.0
    return south, north


def _epsg(zone: int, band: str) -> int:
    return (32600 if band >= "N" else 32700) + zone


@lru_cache(maxsize=128)
def _to_utm(epsg: int) -> Transformer:
    return Transformer.from_crs(4326, epsg, always_xy=True)


def parse_tile_id(tile_id: str) -> tuple[int, str, str, str]:
    """Split ``33UUP`` / ``T33UUP`` into (zone, band, column letter, row letter)."""
    match = _TILE_RE.match(tile_id.strip().upper()) if isinstance(tile_id, str) else None
    if match is None:
        raise ValueError(
            f"not a Sentinel-2 MGRS tile id: {tile_id!r} "
            "(expected e.g. '33UUP' or 'T33UUP': zone 1-60, band C-X, two grid letters)"
        )
    zone = int(match.group(1))
    band, column, row = match.group(2), match.group(3), match.group(4)
    if not 1 <= zone <= 60:
        raise ValueError(f"MGRS zone must be 1-60 in tile id {tile_id!r}")
    if column not in _COLUMN_SETS[zone % 3]:
        raise ValueError(
            f"column letter {column!r} is not used in UTM zone {zone} (tile id {tile_id!r}); "
            f"zone {zone} uses {_COLUMN_SETS[zone % 3]}"
        )
    return zone, band, column, row


def _band_northing_range(zone: int, band: str) -> tuple[float, float]:
    """Northings of the band's edges on the zone's central meridian."""
    south, north = _band_latitudes(band)
    central = -183.0 + 6.0 * zone
    transformer = _to_utm(_epsg(zone, band))
    _, y_south = transformer.transform(central, south)
    _, y_north = transformer.transform(central, north)
    return y_south, y_north


def _square_origin(zone: int, band: str, column: str, row: str) -> tuple[int, int]:
    """South-west corner (easting, northing) of the 100 km square."""
    easting = (_COLUMN_SETS[zone % 3].index(column) + 1) * SQUARE_SIZE_M
    row_index = (_ROW_LETTERS.index(row) - (5 if zone % 2 == 0 else 0)) % len(_ROW_LETTERS)
    base = row_index * SQUARE_SIZE_M
    y_south, y_north = _band_northing_range(zone, band)
    # Choose the 2,000 km cycle whose square centre is nearest to (or inside) the band;
    # bands are < 1,000 km tall, so exactly one cycle is close.
    best: tuple[float, int] | None = None
    for cycle in range(-1, 7):
        northing = base + cycle * _CYCLE_M
        centre = northing + SQUARE_SIZE_M / 2
        distance = max(y_south - centre, 0.0, centre - y_north)
        if best is None or distance < best[0]:
            best = (distance, northing)
    assert best is not None
    return easting, best[1]


def tile_bounds(tile_id: str) -> tuple[int, Bounds]:
    """(EPSG code, (xmin, ymin, xmax, ymax)) of a Sentinel-2 tile in its UTM zone.

    Accepts ``33UUP`` and ``T33UUP``; raises ``ValueError`` for anything else. The bounds
    follow the rule in the module docstring and lie within 100 m of ESA's real corners.
    """
    zone, band, column, row = parse_tile_id(tile_id)
    easting, northing = _square_origin(zone, band, column, row)
    top = northing + SQUARE_SIZE_M
    bounds = (float(easting), float(top - TILE_SIZE_M), float(easting + TILE_SIZE_M), float(top))
    return _epsg(zone, band), bounds


def _zone_at(lon: float, lat: float) -> int:
    zone = math.floor((lon + 180.0) / 6.0) % 60 + 1
    # The two standard MGRS/UTM exceptions: south-west Norway and Svalbard.
    if 56.0 <= lat < 64.0 and 3.0 <= lon < 12.0:
        return 32
    if lat >= 72.0:
        for lo, hi, special in (
            (0.0, 9.0, 31),
            (9.0, 21.0, 33),
            (21.0, 33.0, 35),
            (33.0, 42.0, 37),
        ):
            if lo <= lon < hi:
                return special
    return zone


def _band_at(lat: float) -> str:
    if not -80.0 <= lat <= 84.0:
        raise ValueError(f"latitude {lat} is outside the MGRS UTM area (80°S to 84°N)")
    return _BAND_LETTERS[min(int((lat + 80.0) // 8.0), len(_BAND_LETTERS) - 1)]


def tile_id_at(lon: float, lat: float) -> str:
    """Id of the Sentinel-2 tile whose 100 km MGRS square contains the point (no ``T``).

    A point also lies in the 9.8 km overlap of up to three neighbouring tiles; this
    returns the one tile whose core 100 km square contains it.
    """
    if not -180.0 <= lon <= 180.0:
        raise ValueError(f"longitude {lon} is outside -180..180")
    band = _band_at(lat)
    zone = _zone_at(lon, lat)
    x, y = _to_utm(_epsg(zone, band)).transform(lon, lat)
    column_index = math.floor(x / SQUARE_SIZE_M) - 1
    letters = _COLUMN_SETS[zone % 3]
    if not 0 <= column_index < len(letters):
        raise ValueError(f"point ({lon}, {lat}) falls outside zone {zone}'s MGRS columns")
    row_index = (math.floor(y / SQUARE_SIZE_M) + (5 if zone % 2 == 0 else 0)) % 20
    return f"{zone:02d}{band}{letters[column_index]}{_ROW_LETTERS[row_index]}"
