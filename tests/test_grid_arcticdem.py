"""The ArcticDEM mosaic tile grid in EPSG:3413."""

from __future__ import annotations

import pytest

from darts.grid import arcticdem as grid


def test_supertile_rule() -> None:
    # col = floor((x + 4e6) / 1e5) + 1, row = floor((y + 4e6) / 1e5) + 1
    assert grid.tiles_for_bounds(
        (-3_500_000 + 10, 1_700_000 + 10, -3_500_000 + 20, 1_700_000 + 20), 10
    ) == ["58_06"]
    assert grid.tile_bounds("58_06") == (-3_500_000.0, 1_700_000.0, -3_400_000.0, 1_800_000.0)


def test_quarters_of_2m() -> None:
    xmin, ymin, _, _ = grid.tile_bounds("44_74")
    sw = (xmin + 1, ymin + 1, xmin + 2, ymin + 2)
    ne = (xmin + 60_000, ymin + 60_000, xmin + 61_000, ymin + 61_000)
    assert grid.tiles_for_bounds(sw, 2) == ["44_74_1_1"]
    assert grid.tiles_for_bounds(ne, 2) == ["44_74_2_2"]
    assert grid.tile_bounds("44_74_1_2") == (xmin + 50_000, ymin, xmin + 100_000, ymin + 50_000)


def test_bounds_across_corners_and_half_open_edges() -> None:
    x, y = grid.tile_bounds("40_18")[:2]
    assert grid.tiles_for_bounds((x - 10, y - 10, x + 10, y + 10), 32) == [
        "39_17",
        "39_18",
        "40_17",
        "40_18",
    ]
    # Touching an edge does not select the neighbour.
    assert grid.tiles_for_bounds((x, y, x + 100, y + 100), 10) == ["40_18"]
    assert grid.tiles_for_bounds((x - 100, y - 100, x, y), 10) == ["39_17"]
    assert len(grid.tiles_for_bounds((x - 10, y - 10, x + 10, y + 10), 2)) == 4


@pytest.mark.parametrize(
    "name", ["58_05", "44_74_1_2", "01_01", "58_05_10m_v4.1", "44_74_1_2_2m_v4.1"]
)
def test_tile_bounds_round_trip(name: str) -> None:
    xmin, ymin, xmax, ymax = grid.tile_bounds(name)
    res = 2 if grid.tile_of_item_id(name).count("_") == 3 else 10
    inside = (xmin + 1, ymin + 1, xmax - 1, ymax - 1)
    assert grid.tiles_for_bounds(inside, res) == [grid.tile_of_item_id(name)]


def test_item_ids_and_collections() -> None:
    assert grid.item_id("58_05", 10) == "58_05_10m_v4.1"
    assert grid.item_id("58_05", 32) == "58_05_32m_v4.1"
    assert grid.item_id("44_74_1_2", 2) == "44_74_1_2_2m_v4.1"
    assert grid.collection_id(2) == "arcticdem-mosaics-v4.1-2m"
    with pytest.raises(ValueError):
        grid.item_id("58_05", 2)
    with pytest.raises(ValueError):
        grid.item_id("44_74_1_2", 10)


@pytest.mark.parametrize("bad", ["5_05", "58-05", "58_05_3_1", "58_05_1", "x"])
def test_bad_names(bad: str) -> None:
    with pytest.raises(ValueError):
        grid.tile_bounds(bad)


def test_bad_resolution() -> None:
    with pytest.raises(ValueError):
        grid.tiles_for_bounds((0, 0, 1, 1), 5)
