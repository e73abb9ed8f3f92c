"""Regions that need auxiliary data: footprints, MGRS tiles, metric buffers."""

from __future__ import annotations

import math

import pytest
from pyproj import Transformer
from shapely.geometry import Point, box, mapping

from darts.pipelines.aux_regions import (
    item_year,
    region_bounds,
    regions_for_scenes,
    regions_for_tiles,
    reproject_geometry,
)


def _item(item_id: str, footprint, when: str = "2021-07-04T20:00:00Z", tile: str = "08WNB"):
    return {
        "id": item_id,
        "geometry": mapping(footprint),
        "properties": {"datetime": when, "grid:code": f"MGRS-{tile}"},
    }


def test_buffer_is_in_metres_in_the_metric_crs() -> None:
    to_3413 = Transformer.from_crs(4326, 3413, always_xy=True).transform
    x, y = to_3413(-132.8, 68.9)
    corner = box(x - 5000, y - 5000, x + 5000, y + 5000)
    footprint = reproject_geometry(corner.segmentize(500), "EPSG:3413", "EPSG:4326")
    xmin, ymin, xmax, ymax = region_bounds(footprint, "EPSG:3413", 150.0)
    assert xmin == pytest.approx(x - 5150, abs=1.0)
    assert xmax == pytest.approx(x + 5150, abs=1.0)
    assert ymax - ymin == pytest.approx(10300, abs=2.0)


def test_buffer_carries_into_degrees_for_the_tcvis_cube() -> None:
    point = Point(-132.8, 68.9).buffer(0.01)
    unbuffered = region_bounds(point, "EPSG:4326", 0.0)
    buffered = region_bounds(point, "EPSG:4326", 1000.0)
    # 1 km is ~0.009° of latitude and ~0.025° of longitude at 68.9° N.
    assert unbuffered[1] - buffered[1] == pytest.approx(1000 / 111_400, rel=0.05)
    west_growth = unbuffered[0] - buffered[0]
    assert west_growth == pytest.approx(1000 / (111_320 * math.cos(math.radians(68.9))), rel=0.1)


def test_negative_buffer_is_refused() -> None:
    with pytest.raises(ValueError, match="buffer"):
        region_bounds(Point(0, 70).buffer(0.1), "EPSG:3413", -1)


def test_scene_regions_keep_footprint_and_year() -> None:
    footprint = box(-133.0, 68.8, -132.5, 69.0)
    regions = regions_for_scenes([_item("S2A_X", footprint, "2019-08-01T00:00:00Z")])
    assert [r.name for r in regions] == ["S2A_X"]
    assert regions[0].years == (2019,)
    assert regions[0].footprint.equals(footprint)


def test_tile_regions_use_the_whole_mgrs_tile_and_the_scene_years() -> None:
    items = [
        _item("a", box(-133, 68.8, -132.9, 68.9), "2019-08-01T00:00:00Z", "08WNB"),
        _item("b", box(-133, 68.8, -132.9, 68.9), "2023-08-01T00:00:00Z", "08WNB"),
    ]
    (region,) = regions_for_tiles(["T08WNB"], items)
    assert region.name == "tile 08WNB"
    assert region.years == (2019, 2023)
    # A 109.8 km square: ~1.2e10 m² once brought back into a metric CRS.
    area = reproject_geometry(region.footprint, "EPSG:4326", "EPSG:3413").area
    assert area == pytest.approx(109_800**2, rel=0.03)


def test_item_year_needs_a_datetime() -> None:
    assert item_year({"properties": {"start_datetime": "2020-01-01T00:00:00Z"}}) == 2020
    with pytest.raises(ValueError, match="datetime"):
        item_year({"id": "x", "properties": {}})
