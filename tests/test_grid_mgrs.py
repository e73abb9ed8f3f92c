"""MGRS tile footprints: known real tiles, id forms, errors and the point lookup."""

from __future__ import annotations

import pytest
from pyproj import Transformer

from darts.grid import mgrs

# Real corners from ESA's tiling grid (shared/reference/sources.md §6).
KNOWN = {
    "55WFR": (32655, (600000, 7490220, 709800, 7600020)),
    "36NYH": (32636, (699960, 190200, 809760, 300000)),
}


@pytest.mark.parametrize("tile_id", sorted(KNOWN))
def test_known_tiles_within_100_m(tile_id: str) -> None:
    epsg, bounds = mgrs.tile_bounds(tile_id)
    real_epsg, real = KNOWN[tile_id]
    assert epsg == real_epsg
    assert all(abs(a - b) <= 100 for a, b in zip(bounds, real, strict=True))


def test_29unu_upper_left_within_100_m() -> None:
    epsg, (xmin, ymin, xmax, ymax) = mgrs.tile_bounds("29UNU")
    assert epsg == 32629
    assert abs(xmin - 499980) <= 100 and abs(ymax - 5900040) <= 100
    assert xmax - xmin == ymax - ymin == 109_800


def test_t_prefix_and_case_are_accepted() -> None:
    assert mgrs.tile_bounds("T33UUP") == mgrs.tile_bounds("33UUP") == mgrs.tile_bounds("t33uup")


@pytest.mark.parametrize(
    "bad", ["", "33UU", "33UUPX", "61UUP", "33IUP", "33UAP", "T33UUW", "abcde"]
)
def test_invalid_ids_raise_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match=r"tile id|zone|column"):
        mgrs.tile_bounds(bad)


def _core_centre(tile_id: str) -> tuple[float, float]:
    """Lon/lat of the centre of the tile's 100 km core square."""
    epsg, (xmin, _, _, ymax) = mgrs.tile_bounds(tile_id)
    transformer = Transformer.from_crs(epsg, 4326, always_xy=True)
    return transformer.transform(xmin + 50_000, ymax - 50_000)


@pytest.mark.parametrize("tile_id", ["36NYH", "29UNU", "08WNB", "33UUP", "19HCD", "60CWT"])
def test_tile_id_at_finds_the_tile_of_its_core_square(tile_id: str) -> None:
    assert mgrs.tile_id_at(*_core_centre(tile_id)) == tile_id


@pytest.mark.parametrize("tile_id", ["55WFR", "08WPB", "09WUS"])
def test_tile_id_at_prefers_the_points_own_zone(tile_id: str) -> None:
    # Near 69°N these core squares reach past their zone's 6° band: the point belongs
    # to a tile of the neighbouring (standard) zone, which must contain it.
    lon, lat = _core_centre(tile_id)
    found = mgrs.tile_id_at(lon, lat)
    assert found != tile_id
    epsg, (xmin, ymin, xmax, ymax) = mgrs.tile_bounds(found)
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    assert xmin <= x <= xmax and ymin <= y <= ymax
    assert int(found[:2]) == int((lon + 180) // 6) + 1


def test_southern_hemisphere_uses_south_utm() -> None:
    epsg, (_, ymin, _, ymax) = mgrs.tile_bounds("19HCD")
    assert epsg == 32719
    assert 6_000_000 < ymin < ymax < 7_000_000


def test_tile_id_at_rejects_polar_latitudes() -> None:
    with pytest.raises(ValueError):
        mgrs.tile_id_at(10.0, 85.0)
