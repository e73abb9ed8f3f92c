"""Ground-truth slump polygons: GeoParquet, EPSG:4326, columns id, area_m2, geometry.

Every slump of the world is listed (also those outside the scenes but under the DEM).
``area_m2`` is the geodesic area on the WGS 84 ellipsoid, so it does not depend on
any map projection's scale error.
"""

from __future__ import annotations

import geopandas as gpd
from pyproj import Geod

from darts.sandbox.layout import WorldLayout
from darts.sandbox.world.coords import WORLD_EPSG
from darts.sandbox.world.field import WorldField
from darts.sandbox.world.objects import FileWriter
from darts.sandbox.world.regions import reproject


def write_truth(layout: WorldLayout, writer: FileWriter, world: WorldField) -> int:
    geod = Geod(ellps="WGS84")
    polygons = [reproject(s.polygon(), WORLD_EPSG, 4326, 20.0) for s in world.slumps]
    areas = [abs(geod.geometry_area_perimeter(p)[0]) for p in polygons]
    frame = gpd.GeoDataFrame(
        {"id": [s.id for s in world.slumps], "area_m2": [round(a, 2) for a in areas]},
        geometry=polygons,
        crs="EPSG:4326",
    )
    path = layout.truth
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    data = path.read_bytes()
    path.unlink()
    writer.write(path, data)
    return len(polygons)
