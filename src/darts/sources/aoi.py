"""The area of interest: one (Multi)Polygon in EPSG:4326, ready for a STAC ``intersects``.

STAC APIs take GeoJSON, which is longitude/latitude (EPSG:4326). The reference sent the
AOI's coordinates in whatever CRS the file had (pitfall 16), so an AOI in EPSG:3413
(the usual CRS for Arctic work) matched nothing or the wrong place. Here every AOI is
reprojected, its features are unioned into one geometry (one search for the union
instead of one per feature: overlapping features would otherwise find the same scenes
several times), and very detailed outlines are simplified outward so the request body
stays small.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from shapely.geometry import GeometryCollection, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from darts.errors import ConfigError

if TYPE_CHECKING:
    import geopandas as gpd

log = logging.getLogger(__name__)

# A search body with a long coordinate list is slow to evaluate and can be refused
# (HTTP 400/413); 2000 vertices is ~50 kB of JSON, far below any limit seen.
MAX_VERTICES = 2000
# Edges longer than this fraction of the AOI's extent are split before reprojecting,
# so a straight edge in a projected CRS stays (nearly) straight in lon/lat rather than
# being replaced by a chord that can cut off part of the area.
_DENSIFY_FRACTION = 1 / 64
_PARQUET_SUFFIXES = (".parquet", ".geoparquet")
_OPTION = "--aoi-file"

AoiGeometry = Polygon | MultiPolygon


def read_aoi(path: Path | str) -> AoiGeometry:
    """Read any vector file GeoPandas reads and return its polygons' union in EPSG:4326.

    GeoParquet is chosen by extension (``.parquet``/``.geoparquet``); everything else
    goes through GDAL (GeoPackage, GeoJSON, Shapefile, FlatGeobuf, ...). Raises one
    `ConfigError` naming the file for a missing, unreadable or empty file, a file
    without CRS, non-polygon geometries, coordinates that are not finite numbers or lie
    outside the globe, or an AOI crossing the antimeridian.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{_OPTION}: {path} does not exist")
    frame = _read_frame(path)
    polygons = _polygonal_parts(path, list(frame.geometry))
    if frame.crs is None:
        raise ConfigError(
            f"{_OPTION}: {path} has no coordinate reference system; save it with one "
            "(e.g. EPSG:4326 or EPSG:3413) so the area can be placed on the globe"
        )
    union = shapely.union_all(polygons)
    if frame.crs.is_geographic:
        _check_on_globe(path, union, frame.crs)
    if frame.crs.to_epsg() != 4326:
        union = _to_wgs84(union, frame.crs)
        if not np.isfinite(shapely.get_coordinates(union)).all():
            raise ConfigError(
                f"{_OPTION}: {path} cannot be placed on the globe: its coordinates do not "
                f"fit its CRS ({frame.crs.to_string()}); check the CRS the file declares"
            )
    geometry = _as_polygonal(path, shapely.make_valid(union))
    _check_antimeridian(path, geometry)
    return simplify_for_request(geometry)


def simplify_for_request(geometry: AoiGeometry, max_vertices: int = MAX_VERTICES) -> AoiGeometry:
    """``geometry`` itself if small enough, else an outward simplification covering it.

    Buffering outward by d and then simplifying with tolerance d moves no boundary
    inward past the original, so the result still covers the whole AOI (checked) and
    the search can only find more scenes at the edges, never miss one. d starts tiny
    and doubles until the vertex count fits.
    """
    if shapely.get_num_coordinates(geometry) <= max_vertices:
        return geometry
    xmin, ymin, xmax, ymax = geometry.bounds
    extent = max(xmax - xmin, ymax - ymin, 1e-9)
    distance = extent * 1e-4
    candidate: BaseGeometry = geometry
    for _ in range(40):
        buffered = geometry.buffer(distance, quad_segs=2, join_style="mitre", mitre_limit=2.0)
        candidate = shapely.make_valid(buffered.simplify(distance, preserve_topology=True))
        if shapely.get_num_coordinates(candidate) <= max_vertices and candidate.covers(geometry):
            break
        distance *= 2
    else:  # pragma: no cover - doubling 40 times always ends in a simple outline
        candidate = shapely.box(*geometry.bounds)
    log.info(
        "AOI simplified from %d to %d vertices (outward by %.6f degrees) to keep the "
        "search request small",
        shapely.get_num_coordinates(geometry),
        shapely.get_num_coordinates(candidate),
        distance,
    )
    parts = list(_only_polygons(candidate).geoms)
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def aoi_geojson(geometry: AoiGeometry) -> dict[str, Any]:
    """The GeoJSON geometry for a STAC ``intersects``."""
    return shapely.geometry.mapping(geometry)


# -- helpers ---------------------------------------------------------------------------


def _read_frame(path: Path) -> gpd.GeoDataFrame:
    # geopandas is imported here: it is slow to import and only AOI runs need it.
    import geopandas as gpd

    try:
        if path.suffix.lower() in _PARQUET_SUFFIXES:
            return gpd.read_parquet(path)
        return gpd.read_file(path)
    except Exception as err:  # GDAL, pyarrow and geopandas raise many unrelated types
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"{_OPTION}: cannot read {path} as a vector file ({detail}); use a GeoPackage, "
            "GeoJSON, Shapefile or GeoParquet file"
        ) from None


def _polygonal_parts(path: Path, geometries: list[Any]) -> list[BaseGeometry]:
    polygons: list[BaseGeometry] = []
    other: set[str] = set()
    for number, geometry in enumerate(geometries, start=1):
        if geometry is None or geometry.is_empty:
            continue
        # GEOS cannot repair or union NaN/infinite coordinates (it raises deep inside).
        if not np.isfinite(shapely.get_coordinates(geometry)).all():
            raise ConfigError(
                f"{_OPTION}: {path} feature {number} has coordinates that are not numbers "
                "(NaN or infinite); fix or remove that feature"
            )
        for part in shapely.get_parts(geometry):
            if part.is_empty:
                continue
            if isinstance(part, Polygon | MultiPolygon):
                # Hand-drawn AOIs often self-intersect; repair rather than reject.
                polygons.extend(_only_polygons(shapely.make_valid(part)).geoms)
            elif part.geom_type == "GeometryCollection":
                polygons.extend(_polygonal_parts(path, [part]))
            else:
                other.add(part.geom_type)
    if other:
        raise ConfigError(
            f"{_OPTION}: {path} contains {', '.join(sorted(other))} geometries; the AOI must "
            "be polygons (buffer points or lines into areas first)"
        )
    if not polygons:
        raise ConfigError(f"{_OPTION}: {path} contains no polygons (the file is empty)")
    return polygons


def _only_polygons(geometry: BaseGeometry) -> MultiPolygon:
    """The non-empty polygons in ``geometry``, at any nesting depth (drops lines/points
    that `make_valid` leaves behind from collapsed slivers)."""
    polygons: list[Polygon] = []
    for part in shapely.get_parts(geometry):
        if isinstance(part, Polygon):
            if not part.is_empty:
                polygons.append(part)
        elif isinstance(part, MultiPolygon | GeometryCollection):
            polygons.extend(_only_polygons(part).geoms)
    return MultiPolygon(polygons)


def _as_polygonal(path: Path, geometry: BaseGeometry) -> AoiGeometry:
    polygons = list(_only_polygons(geometry).geoms)
    if not polygons:
        raise ConfigError(f"{_OPTION}: {path} contains only degenerate polygons (no area)")
    return polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)


def _to_wgs84(geometry: BaseGeometry, crs: Any) -> BaseGeometry:
    from pyproj import CRS, Transformer

    source = CRS.from_user_input(crs)
    if source.is_projected:
        xmin, ymin, xmax, ymax = geometry.bounds
        geometry = shapely.segmentize(
            geometry, max(xmax - xmin, ymax - ymin, 1e-9) * _DENSIFY_FRACTION
        )
    transformer = Transformer.from_crs(source, 4326, always_xy=True)
    return shapely.transform(
        geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
    )


def _check_on_globe(path: Path, geometry: BaseGeometry, crs: Any) -> None:
    xmin, ymin, xmax, ymax = geometry.bounds
    if xmin < -180 or xmax > 180 or ymin < -90 or ymax > 90:
        raise ConfigError(
            f"{_OPTION}: {path} has coordinates outside longitude -180..180 / latitude "
            f"-90..90, but its CRS ({crs.to_string()}) is geographic; save the file with "
            "the CRS its coordinates are in (e.g. EPSG:3413 for polar stereographic metres)"
        )


def _check_antimeridian(path: Path, geometry: AoiGeometry) -> None:
    # After reprojection an AOI across 180° (or around the pole) turns into a band
    # spanning most longitudes, which would search the wrong side of the globe.
    parts = geometry.geoms if isinstance(geometry, MultiPolygon) else [geometry]
    for part in parts:
        xmin, _, xmax, _ = part.bounds
        if xmax - xmin > 180:
            raise ConfigError(
                f"{_OPTION}: {path} crosses the antimeridian (180°) or contains the pole; "
                "split it into parts on either side of 180° longitude"
            )
