"""How well detected polygons match reference polygons: area IoU and per-object checks.

Everything is measured in one equal-area CRS (Lambert azimuthal equal-area centred on
the evaluated area), whatever CRS each input is in: detections of scenes in different
UTM zones and a reference in EPSG:4326 are compared on the same ground, and a polygon
put in the wrong place by a georeferencing error simply does not overlap its truth.

Only the evaluated area counts (usually the union of the scenes' valid-data extents):
a reference object outside every processed scene is no miss. Overlapping scenes are
handled by dissolving all detections first, so ground seen twice counts once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

# A reference object counts as inside the evaluated area when at least this share of
# its area lies there; as found when detections cover at least this share of it.
INSIDE_SHARE = 0.5
FOUND_SHARE = 0.5


@dataclass(frozen=True)
class MatchScores:
    iou: float
    """Area of (detected ∩ reference) / area of (detected ∪ reference), in the area."""
    intersection_m2: float
    union_m2: float
    detected_m2: float
    reference_m2: float
    area_m2: float
    """The evaluated area (e.g. the union of the processed scene extents)."""
    reference_objects: int
    """Reference polygons (mostly) inside the evaluated area."""
    reference_found: int
    """Of those, the ones detections cover to at least ``FOUND_SHARE``."""
    detected_objects: int
    """Detected polygons after dissolving overlaps between scenes."""
    detected_on_reference: int
    """Detected polygons whose centroid lies inside a reference polygon."""
    centroid_offset_m: float | None
    """Median distance between each found reference object's centroid and the centroid
    of the detections overlapping it (a georeferencing check); None if none found."""
    crs: str

    @property
    def recall(self) -> float:
        return self.reference_found / self.reference_objects if self.reference_objects else 1.0

    @property
    def precision(self) -> float:
        return self.detected_on_reference / self.detected_objects if self.detected_objects else 1.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "recall": self.recall, "precision": self.precision}


def equal_area_crs(geometry_4326: BaseGeometry) -> CRS:
    """A Lambert azimuthal equal-area CRS centred on ``geometry_4326`` (EPSG:4326)."""
    centre = geometry_4326.centroid if not geometry_4326.is_empty else shapely.Point(0, 0)
    return CRS.from_proj4(
        f"+proj=laea +lat_0={centre.y:.6f} +lon_0={centre.x:.6f} +datum=WGS84 +units=m +no_defs"
    )


def match_polygons(
    detected: gpd.GeoDataFrame,
    reference: gpd.GeoDataFrame,
    area: gpd.GeoDataFrame | None = None,
) -> MatchScores:
    """Compare ``detected`` with ``reference`` polygons inside ``area`` (default: the
    whole of both). Each frame may be in any CRS (it must have one)."""
    for name, frame in (("detected", detected), ("reference", reference), ("area", area)):
        if frame is not None and frame.crs is None:
            raise ValueError(f"the {name} polygons have no CRS")
    if area is not None:
        region_4326 = _union(area.to_crs(4326))
    else:
        region_4326 = _union(
            gpd.GeoSeries([_union(detected.to_crs(4326)), _union(reference.to_crs(4326))])
        )
    crs = equal_area_crs(region_4326)
    region = _union(area.to_crs(crs)) if area is not None else None
    detections = _union(detected.to_crs(crs))
    truths = [g for g in reference.to_crs(crs).geometry if g is not None and not g.is_empty]
    if region is not None:
        detections = detections.intersection(region)
        inside = [t for t in truths if _share(t, region) >= INSIDE_SHARE]
        truth_area = _union(gpd.GeoSeries(truths, crs=crs)).intersection(region)
    else:
        inside = truths
        truth_area = _union(gpd.GeoSeries(truths, crs=crs))
    intersection = detections.intersection(truth_area).area
    union = detections.union(truth_area).area

    found, offsets = 0, []
    for truth in inside:
        covered = detections.intersection(truth)
        if truth.area > 0 and covered.area / truth.area >= FOUND_SHARE:
            found += 1
            offsets.append(covered.centroid.distance(truth.centroid))
    parts = [p for p in getattr(detections, "geoms", [detections]) if not p.is_empty]
    truth_union = _union(gpd.GeoSeries(truths, crs=crs))
    on_truth = sum(1 for p in parts if truth_union.contains(p.centroid))
    return MatchScores(
        iou=float(intersection / union) if union > 0 else 1.0,
        intersection_m2=float(intersection),
        union_m2=float(union),
        detected_m2=float(detections.area),
        reference_m2=float(truth_area.area),
        area_m2=float(region.area) if region is not None else float(union),
        reference_objects=len(inside),
        reference_found=found,
        detected_objects=len(parts),
        detected_on_reference=on_truth,
        centroid_offset_m=float(np.median(offsets)) if offsets else None,
        crs=crs.srs,
    )


def _union(frame: gpd.GeoDataFrame | gpd.GeoSeries) -> BaseGeometry:
    geometries = [g for g in frame.geometry if g is not None and not g.is_empty]
    if not geometries:
        return shapely.Polygon()
    return shapely.union_all(shapely.make_valid(np.asarray(geometries, dtype=object)))


def _share(geometry: BaseGeometry, region: BaseGeometry) -> float:
    return geometry.intersection(region).area / geometry.area if geometry.area > 0 else 0.0
