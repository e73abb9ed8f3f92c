"""Footprints of the world's windows and the areas derived from them.

- window footprints in EPSG:3413 and EPSG:4326 (edges densified, since straight UTM
  edges are curves in the other frames);
- the DEM data area: the union of all window footprints buffered by
  ``spec.dem_margin_m``, as an EPSG:3413 box (tiles are written in full, but only this
  box holds data);
- the 2 m DEM box: ``spec.dem_2m_half_size_m`` around a point of the main window chosen
  so the box sits in one 2 m quarter tile when possible (cheap to write);
- the TCVIS box (EPSG:4326) covering the windows plus ``spec.tcvis_margin_m``;
- slump placement regions, and the world field built from them.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely import segmentize
from shapely.geometry import Polygon, box
from shapely.ops import unary_union

from darts.grid import arcticdem as dem_grid
from darts.sandbox.world.coords import WORLD_EPSG, transformer
from darts.sandbox.world.field import WorldField
from darts.sandbox.world.slumps import PlacementRegion, place_slumps
from darts.sandbox.world.spec import TileWindow, WorldSpec
from darts.sandbox.world.terrain import land

Box = tuple[float, float, float, float]


def reproject(geom: Polygon, src_epsg: int, dst_epsg: int, step: float) -> Polygon:
    """Reproject a polygon after densifying its edges every ``step`` source units."""
    dense = segmentize(geom, step)
    tr = transformer(src_epsg, dst_epsg)
    return shapely.transform(dense, lambda x, y: tr.transform(x, y), interleaved=False)


def window_polygon(window: TileWindow, res: int = 10) -> Polygon:
    return box(*window.grid(res).bounds)


def footprint_3413(window: TileWindow) -> Polygon:
    return reproject(window_polygon(window), window.epsg, WORLD_EPSG, 500.0)


def dem_box(spec: WorldSpec) -> Box:
    area = unary_union([footprint_3413(w) for w in spec.windows]).buffer(spec.dem_margin_m)
    xmin, ymin, xmax, ymax = area.bounds
    return (
        math.floor(xmin / 64) * 64,
        math.floor(ymin / 64) * 64,
        math.ceil(xmax / 64) * 64,
        math.ceil(ymax / 64) * 64,
    )


def dem_2m_box(spec: WorldSpec) -> Box:
    """A square around the main window's centre, nudged into a single quarter tile."""
    half = spec.dem_2m_half_size_m
    centre = footprint_3413(spec.main).centroid
    cx, cy = centre.x, centre.y
    quarter = dem_grid.SUBTILE_M
    for axis_value in ("x", "y"):
        value = cx if axis_value == "x" else cy
        offset = (value - dem_grid.ORIGIN_M) % quarter
        if offset < half + 500:
            value += half + 500 - offset
        elif quarter - offset < half + 500:
            value -= half + 500 - (quarter - offset)
        if axis_value == "x":
            cx = value
        else:
            cy = value
    # Keep the box inside the main window so it shows slumps of the main scene.
    inner = footprint_3413(spec.main).buffer(-half)
    if not inner.contains(box(cx - 1, cy - 1, cx + 1, cy + 1)) and not inner.is_empty:
        nearest = inner.exterior.interpolate(inner.exterior.project(box(cx, cy, cx, cy).centroid))
        cx, cy = nearest.x, nearest.y
    cx, cy = round(cx / 64) * 64, round(cy / 64) * 64
    return (cx - half, cy - half, cx + half, cy + half)


def tcvis_box(spec: WorldSpec) -> Box:
    """EPSG:4326 box around the windows plus a margin."""
    area = unary_union([footprint_3413(w) for w in spec.windows]).buffer(spec.tcvis_margin_m)
    geo = reproject(area, WORLD_EPSG, 4326, 500.0)
    return geo.bounds


def slump_regions(spec: WorldSpec) -> list[PlacementRegion]:
    """Regions (and counts) where slumps are placed, in priority order.

    The spec's counts are per window; a window's region excludes the windows listed
    before it (the zone-9 window lies inside the main one, so its slump counts there
    too), and the rest of the DEM area gets a density of its own.
    """
    inset = 350.0
    named = {"main": 0, "tile": 0, "second": 1, "zone9": 2}
    footprints = [footprint_3413(w) for w in spec.windows]
    regions: list[PlacementRegion] = []
    for label, count in spec.slump_counts.items():
        index = named[label]
        area = footprints[index].buffer(-inset)
        if label == "second":
            area = area.difference(footprints[0].buffer(inset))
        regions.append(PlacementRegion(label, area, count))
    if spec.surroundings_slumps_per_km2 > 0:
        outside = box(*dem_box(spec)).difference(unary_union(footprints).buffer(inset))
        area = outside.buffer(-inset)
        count = int(area.area / 1e6 * spec.surroundings_slumps_per_km2)
        regions.append(PlacementRegion("surroundings", area, count))
    return regions


def make_field(spec: WorldSpec, seed: int) -> WorldField:
    def sample(x: np.ndarray, y: np.ndarray):
        return land(seed, x, y, detail=False)

    slumps = place_slumps(seed, slump_regions(spec), sample)
    return WorldField(seed, tuple(slumps), footprint_3413(spec.main).bounds)
