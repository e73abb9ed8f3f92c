"""Reading an AOI file into one EPSG:4326 (Multi)Polygon for a STAC search."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from darts.errors import ConfigError
from darts.sources.aoi import MAX_VERTICES, read_aoi, simplify_for_request

# A 20 km square in EPSG:3413 around 69°N, 132.6°W (the sandbox region).
_CX, _CY = Transformer.from_crs(4326, 3413, always_xy=True).transform(-132.6, 69.0)
SQUARE_3413 = box(_CX - 10_000, _CY - 10_000, _CX + 10_000, _CY + 10_000)


def _write(frame: gpd.GeoDataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_file(path)
    return path


def test_projected_aoi_is_reprojected_to_wgs84(tmp_path: Path) -> None:
    path = _write(gpd.GeoDataFrame(geometry=[SQUARE_3413], crs=3413), tmp_path / "aoi.gpkg")
    aoi = read_aoi(path)
    assert isinstance(aoi, Polygon)
    to_wgs84 = Transformer.from_crs(3413, 4326, always_xy=True)
    corners = [to_wgs84.transform(x, y) for x, y in SQUARE_3413.exterior.coords[:-1]]
    xmin, ymin, xmax, ymax = aoi.bounds
    assert -133.0 < xmin < xmax < -132.2 and 68.8 < ymin < ymax < 69.2
    for lon, lat in corners:
        assert aoi.distance(Point(lon, lat)) < 1e-6
    # Edges were densified before reprojecting: the lon/lat outline follows the
    # projected straight edges rather than cutting across as chords.
    assert shapely.get_num_coordinates(aoi) > 5
    midpoint = to_wgs84.transform(_CX, _CY - 10_000)
    assert aoi.buffer(1e-6).contains(Point(midpoint))


@pytest.mark.parametrize("suffix", [".geojson", ".shp", ".parquet", ".gpkg"])
def test_formats_and_union(tmp_path: Path, suffix: str) -> None:
    # Two overlapping squares and one apart: one union, two parts, one search.
    frame = gpd.GeoDataFrame(
        geometry=[
            box(-133, 68.9, -132.5, 69.1),
            box(-132.6, 69.0, -132.3, 69.2),
            box(-130, 69, -129.5, 69.2),
        ],
        crs=4326,
    )
    aoi = read_aoi(_write(frame, tmp_path / f"aoi{suffix}"))
    assert isinstance(aoi, MultiPolygon)
    assert len(aoi.geoms) == 2
    assert aoi.area == pytest.approx(shapely.union_all(frame.geometry).area)


def test_multipolygon_feature(tmp_path: Path) -> None:
    multi = MultiPolygon([box(-133, 69, -132.9, 69.1), box(-131, 69, -130.9, 69.1)])
    aoi = read_aoi(_write(gpd.GeoDataFrame(geometry=[multi], crs=4326), tmp_path / "m.gpkg"))
    assert aoi.equals(multi)


def test_self_intersecting_polygon_is_repaired(tmp_path: Path) -> None:
    bowtie = Polygon([(-133, 69), (-132, 70), (-132, 69), (-133, 70)])
    aoi = read_aoi(_write(gpd.GeoDataFrame(geometry=[bowtie], crs=4326), tmp_path / "b.geojson"))
    assert aoi.is_valid and aoi.area > 0


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_file_without_crs(tmp_path: Path) -> None:
    path = _write(gpd.GeoDataFrame(geometry=[SQUARE_3413]), tmp_path / "nocrs.shp")
    with pytest.raises(ConfigError, match=r"--aoi-file: .*nocrs.shp has no coordinate reference"):
        read_aoi(path)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.gpkg"
    path.write_bytes(b"this is not a geopackage")
    with pytest.raises(ConfigError) as err:
        read_aoi(path)
    message = str(err.value)
    assert message.startswith(f"--aoi-file: cannot read {path}")
    assert "\n" not in message
    broken_parquet = tmp_path / "broken.parquet"
    broken_parquet.write_bytes(b"PAR1 nope")
    with pytest.raises(ConfigError, match="cannot read"):
        read_aoi(broken_parquet)
    with pytest.raises(ConfigError, match="does not exist"):
        read_aoi(tmp_path / "missing.gpkg")


def test_empty_and_non_polygon_files(tmp_path: Path) -> None:
    empty = _write(gpd.GeoDataFrame(geometry=[], crs=4326), tmp_path / "empty.gpkg")
    with pytest.raises(ConfigError, match=r"empty.gpkg contains no polygons"):
        read_aoi(empty)
    no_crs = tmp_path / "empty.geojson"
    no_crs.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(ConfigError, match=r"empty.geojson contains no polygons"):
        read_aoi(no_crs)
    points = _write(
        gpd.GeoDataFrame(geometry=[Point(0, 0), LineString([(0, 0), (1, 1)])], crs=4326),
        tmp_path / "points.geojson",
    )
    with pytest.raises(ConfigError, match=r"contains LineString, Point geometries"):
        read_aoi(points)


def test_antimeridian_is_refused(tmp_path: Path) -> None:
    # A square in EPSG:3413 straddling 180° (north of the Bering Strait).
    to_polar = Transformer.from_crs(4326, 3413, always_xy=True)
    x, y = to_polar.transform(180, 70)
    square = box(x - 50_000, y - 50_000, x + 50_000, y + 50_000)
    path = _write(gpd.GeoDataFrame(geometry=[square], crs=3413), tmp_path / "chukchi.gpkg")
    with pytest.raises(ConfigError, match="antimeridian"):
        read_aoi(path)


def test_detailed_outline_is_simplified_outward(tmp_path: Path) -> None:
    # A wiggly coastline-like outline with 6000 vertices.
    circle = Point(-132.6, 69.0).buffer(0.5, quad_segs=1500)
    wiggly = Polygon(
        [(x + 0.002 * ((i % 2) * 2 - 1), y) for i, (x, y) in enumerate(circle.exterior.coords[:-1])]
    )
    assert shapely.get_num_coordinates(wiggly) > 3 * MAX_VERTICES
    path = _write(gpd.GeoDataFrame(geometry=[wiggly], crs=4326), tmp_path / "coast.gpkg")
    aoi = read_aoi(path)
    assert isinstance(aoi, Polygon)
    assert shapely.get_num_coordinates(aoi) <= MAX_VERTICES
    assert aoi.covers(shapely.make_valid(wiggly))
    assert aoi.area < wiggly.area * 1.05  # outward by a little, not a bounding box
    small = box(0, 0, 1, 1)
    assert simplify_for_request(small) is small
