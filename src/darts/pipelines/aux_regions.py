"""Which regions need auxiliary data: scene footprints (or MGRS tiles) plus a buffer.

The buffer is in metres (pitfall 8: the reference used a pixel count as metres) and
must cover the TPI's outer radius, or terrain features at the scene edge would be
computed from a truncated neighbourhood. It is applied in EPSG:3413, a metric CRS
across the whole Arctic, and the buffered outline is then carried into each cube's
CRS, so the same metric margin holds for the ArcticDEM cube (EPSG:3413) and the TCVIS
cube (EPSG:4326 degrees).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from pyproj import Transformer
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from darts.grid.cube import Bounds
from darts.grid.mgrs import tile_bounds as mgrs_tile_bounds
from darts.sources.scene_docs import item_tile, scene_footprint

METRIC_CRS = "EPSG:3413"
# Points added per edge before reprojecting, so a long straight edge of a footprint
# keeps its curvature in the target CRS instead of becoming a chord.
_DENSIFY_M = 1_000.0


@dataclass(frozen=True)
class AuxRegion:
    """One area that needs auxiliary data, and the scene years it serves (TCVIS picks
    its trend period by year)."""

    name: str  # a scene id, or "tile 33UUP"
    footprint: BaseGeometry  # EPSG:4326
    years: tuple[int, ...]


def item_year(item: Mapping[str, Any]) -> int:
    properties = item.get("properties") or {}
    stamp = properties.get("datetime") or properties.get("start_datetime")
    if not isinstance(stamp, str) or len(stamp) < 4 or not stamp[:4].isdigit():
        raise ValueError(f"STAC item {item.get('id')!r} has no usable datetime")
    return int(stamp[:4])


def regions_for_scenes(items: Iterable[Mapping[str, Any]]) -> list[AuxRegion]:
    """One region per scene: its own footprint and year."""
    return [
        AuxRegion(str(item["id"]), scene_footprint(dict(item)), (item_year(item),))
        for item in items
    ]


def regions_for_tiles(
    tile_ids: Sequence[str], items: Iterable[Mapping[str, Any]]
) -> list[AuxRegion]:
    """One region per MGRS tile (its full 109.8 km square), serving the years of the
    discovered scenes on that tile, so every scene a later run takes from the tile is
    covered whatever its footprint."""
    years: dict[str, set[int]] = {}
    for item in items:
        years.setdefault(item_tile(dict(item)), set()).add(item_year(item))
    regions = []
    for tile_id in tile_ids:
        tile = tile_id.upper().removeprefix("T")
        epsg, bounds = mgrs_tile_bounds(tile)
        outline = reproject_geometry(
            box(*bounds).segmentize(_DENSIFY_M), f"EPSG:{epsg}", "EPSG:4326"
        )
        regions.append(AuxRegion(f"tile {tile}", outline, tuple(sorted(years.get(tile, ())))))
    return regions


def region_bounds(footprint: BaseGeometry, crs: str, buffer_m: float) -> Bounds:
    """Bounds in ``crs`` of the footprint (EPSG:4326) grown by ``buffer_m`` metres."""
    if buffer_m < 0:
        raise ValueError(f"buffer must be >= 0 m, got {buffer_m}")
    metric = reproject_geometry(footprint, "EPSG:4326", METRIC_CRS).buffer(buffer_m)
    if crs.upper() == METRIC_CRS:
        return tuple(metric.bounds)  # type: ignore[return-value]
    target = reproject_geometry(metric.segmentize(_DENSIFY_M), METRIC_CRS, crs)
    return tuple(target.bounds)  # type: ignore[return-value]


def reproject_geometry(geometry: BaseGeometry, source_crs: str, target_crs: str) -> BaseGeometry:
    """``geometry`` with every vertex carried from ``source_crs`` to ``target_crs``."""
    transformer = Transformer.from_crs(source_crs, target_crs, always_xy=True)
    return shapely.transform(geometry, lambda x, y: transformer.transform(x, y), interleaved=False)
