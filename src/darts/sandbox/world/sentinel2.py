"""Write Sentinel-2 L2A products (band JP2s, metadata, quicklook, STAC item).

Acquisitions that render identical pixels (the zone-9 daily stack reuses a few weather
states under one ground date) form one group: the group is rendered and encoded once
and its bytes written under each product's own paths, which keeps a 260-scene stack
cheap while every product still has a complete, self-consistent set of files.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import Polygon, box, mapping
from shapely.geometry.polygon import orient

from darts.sandbox.layout import CDSE_BUCKET, WorldLayout
from darts.sandbox.world import s2item, safe_xml
from darts.sandbox.world import scl as scl_codes
from darts.sandbox.world.coords import RasterGrid
from darts.sandbox.world.encode import jp2_bytes, jpeg_bytes, multihash_sha3
from darts.sandbox.world.field import WorldField
from darts.sandbox.world.objects import FileWriter, Written
from darts.sandbox.world.optical import (
    GroundSource,
    SceneArrays,
    render,
    swath_line,
    window_centre_lonlat,
)
from darts.sandbox.world.regions import reproject
from darts.sandbox.world.s2names import ProductNames
from darts.sandbox.world.seeds import derive_seed
from darts.sandbox.world.spec import Acquisition, TileWindow
from darts.sandbox.world.sun import sun_angles

COLLECTION = "sentinel-2-l2a"


@dataclass(frozen=True)
class SceneSummary:
    id: str
    tile: str
    datetime: str
    cloud_cover: float
    snow_cover: float
    platform: str


def footprint(window: TileWindow, swath_edge: bool) -> Polygon:
    """Valid-data area in EPSG:4326: the window, cut by the swath edge if any."""
    area = box(*window.grid(10).bounds)
    if swath_edge:
        (x0, y0), (x1, y1) = swath_line(window)
        far = 10 * (area.bounds[2] - area.bounds[0])
        west = Polygon([(x0, y0), (x1, y1), (x1 - far, y1), (x0 - far, y0)])
        area = area.intersection(west)
    geo = reproject(area, window.epsg, 4326, 1000.0)
    return orient(Polygon([(round(x, 9), round(y, 9)) for x, y in geo.exterior.coords]))


def _transform_list(grid: RasterGrid) -> list[float]:
    t = grid.transform
    return [float(t.a), 0.0, float(t.c), 0.0, float(t.e), float(t.f)]


def _thumbnail(tci: np.ndarray) -> np.ndarray:
    """Nearest-neighbour quicklook at 1/32 of the 10 m size (like the 343 px originals)."""
    _, h, w = tci.shape
    th, tw = max(8, math.ceil(h / 32)), max(8, math.ceil(w / 32))
    rows = (np.arange(th) * h) // th
    cols = (np.arange(tw) * w) // tw
    return np.ascontiguousarray(tci[:, rows][:, :, cols])


@dataclass
class EncodedScene:
    """Bytes of one rendering, shared by every product of a group."""

    rasters: dict[str, bytes]
    thumbnail: bytes
    thumbnail_shape: tuple[int, int]
    percent: dict[int, float]


def encode_scene(arrays: SceneArrays, window: TileWindow, threads: int = 1) -> EncodedScene:
    encoded: dict[str, bytes] = {}
    for key, array in arrays.rasters.items():
        res = int(key.split("_")[1][:-1])
        grid = window.grid(res)
        encoded[key] = jp2_bytes(array, grid.epsg, grid.transform, nodata=0, threads=threads)
    thumb = _thumbnail(arrays.rasters["TCI_10m"])
    return EncodedScene(encoded, jpeg_bytes(thumb), thumb.shape[1:], arrays.scl_percent)


def _band_view(seed: int, names: ProductNames, key: str) -> tuple[float, float]:
    j = derive_seed(seed, "view", names.product_id, key)
    base_az = 100.0 + (names.acq.relative_orbit * 37) % 180
    base_inc = 2.0 + (names.acq.relative_orbit * 13) % 9
    return base_az + (j % 5000) / 1000.0, base_inc + ((j >> 16) % 1000) / 1000.0


def write_product(
    layout: WorldLayout,
    writer: FileWriter,
    acq: Acquisition,
    scene: EncodedScene,
    seed: int,
) -> SceneSummary:
    names = ProductNames(acq, seed)
    window = acq.window
    tpl_assets = s2item.template()["assets"]
    s3_prefix = f"s3://{CDSE_BUCKET}/"

    def put(inner: str, data: bytes) -> Written:
        return writer.write(layout.s3_object(CDSE_BUCKET, f"{names.safe_key}/{inner}"), data)

    lon, lat = window_centre_lonlat(window)
    sun_az, sun_el = sun_angles(names.granule_sensing, lon, lat)
    percent = scene.percent
    assets: dict[str, Any] = {}
    files: list[tuple[str, str]] = []
    total_size = 0

    for key in tpl_assets:
        if key not in scene.rasters:
            continue
        band, res_text = key.split("_")
        res = int(res_text[:-1])
        inner = names.band_file(band, res)
        written = put(inner, scene.rasters[key])
        files.append((inner, written.checksum))
        total_size += written.size
        grid = window.grid(res)
        asset = s2item.asset_template(key)
        asset["href"] = s3_prefix + f"{names.safe_key}/{inner}"
        asset["alternate"]["https"]["href"] = names.odata_url(inner)
        asset["file:size"] = written.size
        asset["proj:bbox"] = list(grid.bounds)
        asset["proj:code"] = f"EPSG:{grid.epsg}"
        asset["file:checksum"] = written.checksum
        asset["proj:transform"] = _transform_list(grid)
        asset["file:local_path"] = f"{names.product_id}.SAFE/{inner}"
        asset["gsd"] = res
        asset["proj:shape"] = [grid.height, grid.width]
        if "view:azimuth" in asset:
            asset["view:azimuth"], asset["view:incidence_angle"] = _band_view(seed, names, key)
        if "classification:classes" in asset:
            asset["classification:classes"] = scl_codes.classification_classes(percent)
        assets[key] = asset

    geometry = footprint(window, acq.weather.swath_edge)
    ring = list(geometry.exterior.coords)
    sizes = {res: window.grid(res).shape for res in (10, 20, 60)}
    xml_docs = {
        "granule_metadata": (
            f"GRANULE/{names.granule}/MTD_TL.xml",
            safe_xml.granule_metadata(
                names, window.epsg, window.grid(10).bounds[::3], sizes, 90.0 - sun_el, sun_az
            ),
        ),
        "product_metadata": ("MTD_MSIL2A.xml", safe_xml.product_metadata(names, ring)),
        "datastrip_metadata": (
            f"DATASTRIP/{names.datastrip}/MTD_DS.xml",
            safe_xml.datastrip_metadata(names),
        ),
        "inspire_metadata": ("INSPIRE.xml", safe_xml.inspire_metadata(names, geometry.bounds)),
    }
    thumb_inner = f"{names.product_id}-ql.jpg"
    thumb = put(thumb_inner, scene.thumbnail)
    files.append((thumb_inner, thumb.checksum))
    for key, (inner, data) in xml_docs.items():
        written = put(inner, data)
        files.append((inner, written.checksum))
        assets[key] = _metadata_asset(key, names, inner, written)
        total_size += written.size
    manifest = put("manifest.safe", safe_xml.manifest(names, files))
    assets["safe_manifest"] = _metadata_asset("safe_manifest", names, "manifest.safe", manifest)
    total_size += manifest.size + thumb.size

    thumb_asset = s2item.asset_template("thumbnail")
    thumb_asset["href"] = (
        "https://datahub.creodias.eu/odata/v1/Assets("
        f"{names.product_uuid[:-12]}{hashlib.sha1(names.product_id.encode()).hexdigest()[:12]})/$value"
    )
    thumb_asset["alternate"]["s3"]["href"] = s3_prefix + f"{names.safe_key}/{thumb_inner}"
    thumb_asset["file:size"] = thumb.size
    thumb_asset["file:checksum"] = thumb.checksum
    thumb_asset["file:local_path"] = f"{names.product_id}.SAFE/{thumb_inner}"
    thumb_asset["proj:shape"] = list(scene.thumbnail_shape)
    assets["thumbnail"] = thumb_asset

    product = s2item.asset_template("Product")
    product["href"] = names.odata_url(None)
    product["file:size"] = total_size
    product["storage:refs"] = []
    product["file:checksum"] = multihash_sha3("".join(c for _, c in files).encode())
    product["file:local_path"] = f"{names.product_id}.SAFE.zip"
    assets["Product"] = product

    ordered = {key: assets[key] for key in tpl_assets}
    cloud = scl_codes.cloud_cover(percent)
    snow = scl_codes.snow_cover(percent)
    props = s2item.properties(
        names, seed, sun_az, sun_el, scl_codes.statistics(percent), cloud, snow
    )
    item = {
        "id": names.product_id,
        "bbox": [round(v, 6) for v in geometry.bounds],
        "type": "Feature",
        "links": s2item.links(names.product_id),
        "assets": ordered,
        "geometry": mapping(geometry),
        "collection": COLLECTION,
        "properties": props,
        "stac_extensions": list(s2item.template()["stac_extensions"]),
        "stac_version": "1.1.0",
    }
    item["geometry"] = {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}
    writer.write_json(layout.cdse_items / COLLECTION / f"{names.product_id}.json", item)
    return SceneSummary(names.product_id, names.tile, props["datetime"], cloud, snow, acq.platform)


def _metadata_asset(key: str, names: ProductNames, inner: str, written: Written) -> dict[str, Any]:
    asset = s2item.asset_template(key)
    asset["href"] = f"s3://{CDSE_BUCKET}/{names.safe_key}/{inner}"
    asset["alternate"]["https"]["href"] = names.odata_url(inner)
    asset["file:size"] = written.size
    asset["file:checksum"] = written.checksum
    asset["file:local_path"] = f"{names.product_id}.SAFE/{inner}"
    return asset


def write_group(
    layout: WorldLayout,
    writer: FileWriter,
    world: WorldField,
    group: list[Acquisition],
    ground: GroundSource,
    threads: int = 1,
) -> list[SceneSummary]:
    """Render the group's pixels once, then write every product of the group."""
    arrays = render(world, group[0], ground)
    scene = encode_scene(arrays, group[0].window, threads=threads)
    del arrays
    return [write_product(layout, writer, acq, scene, world.seed) for acq in group]


def scene_id(acq: Acquisition, seed: int) -> str:
    return ProductNames(acq, seed).product_id


def items_dir(layout: WorldLayout) -> Path:
    return layout.cdse_items / COLLECTION
