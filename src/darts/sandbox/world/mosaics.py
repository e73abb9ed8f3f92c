"""Quarterly Sentinel-2 mosaics (collection ``sentinel-2-global-mosaics``).

A mosaic tile shares its MGRS tile's upper-left corner but spans 100,080 m (10,008 px,
as recorded for 31SDV), so it covers the 100 km square plus 40–80 m, not the whole
109.8 km Sentinel-2 tile. A world writes the part of its window that falls inside the
mosaic tile. Pixels are the window's clear-sky ground at mid-quarter (Q2 still mostly
under snow), stored as int16 reflectance × 10,000 (no offset; nodata −32768), with an
``observations`` count (uint16, 0 = none) drawn from a smooth field: pockets of 0
(invalid), 1–3 (low quality) and more (high). Items copy the recorded item's shape;
like the recording they carry ``file:size`` but no ``file:checksum``.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import Polygon, box
from shapely.geometry.polygon import orient

from darts.sandbox.layout import CDSE_BUCKET, WorldLayout
from darts.sandbox.world import spectra
from darts.sandbox.world.encode import cog_bytes
from darts.sandbox.world.field import WorldField
from darts.sandbox.world.noise import fbm
from darts.sandbox.world.objects import FileWriter
from darts.sandbox.world.optical import (
    GroundSource,
    ground_block,
    shading,
    surface_reflectance,
    vigor,
    window_centre_lonlat,
)
from darts.sandbox.world.regions import reproject
from darts.sandbox.world.seeds import derive_seed
from darts.sandbox.world.spec import MosaicSpec, TileWindow, Weather
from darts.sandbox.world.sun import sun_angles
from darts.sandbox.world.weather import snow_cover

COLLECTION = "sentinel-2-global-mosaics"
MOSAIC_SIZE_M = 100_080
FIXTURE = (
    Path(__file__).resolve().parent.parent
    / "fixtures"
    / "cdse"
    / "search-sentinel-2-global-mosaics-31SDV.json"
)
_BANDS = ("B02", "B03", "B04", "B08")
_NAMESPACE = uuid.UUID("0b7f4f0e-5c43-4a8e-9d55-2f1c5a7e9b13")


@cache
def template() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))["features"][0]


def mosaic_window(window: TileWindow) -> TileWindow | None:
    """The part of ``window`` inside its mosaic tile (None if nothing)."""
    limit = MOSAIC_SIZE_M // 10
    width = min(window.col_off + window.width, limit) - window.col_off
    height = min(window.row_off + window.height, limit) - window.row_off
    width -= width % 6
    height -= height % 6
    if width <= 0 or height <= 0:
        return None
    return replace(window, width=width, height=height)


def item_id(spec: MosaicSpec) -> str:
    return f"Sentinel-2_mosaic_{spec.year}_Q{spec.quarter}_{spec.window.tile}_0_0"


def _quarter(spec: MosaicSpec) -> tuple[datetime, datetime, date]:
    first_month = 3 * (spec.quarter - 1) + 1
    start = datetime(spec.year, first_month, 1, tzinfo=UTC)
    next_start = (
        datetime(spec.year + 1, 1, 1, tzinfo=UTC)
        if spec.quarter == 4
        else datetime(spec.year, first_month + 3, 1, tzinfo=UTC)
    )
    middle = (start + (next_start - start) / 2).date()
    return start, next_start - timedelta(seconds=1), middle


def _iso_ms(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def write_mosaic(
    layout: WorldLayout,
    writer: FileWriter,
    world: WorldField,
    spec: MosaicSpec,
    ground: GroundSource,
) -> str | None:
    window = mosaic_window(spec.window)
    if window is None:
        return None
    start, end, middle = _quarter(spec)
    snowy = spec.quarter in (1, 2, 4)
    weather = Weather(cloud=0.0, snow=0.7 if snowy else 0.0, pattern=9000 + spec.quarter)

    bands, observations = _render(world, spec, window, weather, middle, ground)
    grid = window.grid(10)
    valid = observations > 0

    mid = item_id(spec)
    key_prefix = f"Global-Mosaics/Sentinel-2/S2MSI_L3__MCQ/{start:%Y/%m/%d}/{mid}"
    product_uuid = str(uuid.uuid5(_NAMESPACE, mid))
    tpl = template()
    assets: dict[str, Any] = {}
    bounds = list(grid.bounds)
    for name in (*_BANDS, "observations"):
        if name == "observations":
            data = observations
            nodata: int = 0
        else:
            data = bands[name]
            data[~valid] = -32768
            nodata = -32768
        written = writer.write(
            layout.s3_object(CDSE_BUCKET, f"{key_prefix}/{name}.tif"),
            cog_bytes(data, grid.epsg, grid.transform, nodata),
        )
        asset = copy.deepcopy(tpl["assets"][name])
        asset["href"] = f"s3://{CDSE_BUCKET}/{key_prefix}/{name}.tif"
        asset["alternate"]["https"]["href"] = _odata(product_uuid, key_prefix, f"{name}.tif")
        asset["file:size"] = written.size
        asset["proj:bbox"] = bounds
        asset["proj:code"] = f"EPSG:{grid.epsg}"
        asset["proj:shape"] = [grid.height, grid.width]
        asset["file:local_path"] = f"{mid}/{name}.tif"
        assets[name] = asset
    userdata = {
        "Id": product_uuid,
        "Name": mid,
        "ContentDate": {"Start": _iso_ms(start), "End": _iso_ms(end)},
    }
    written = writer.write_json(
        layout.s3_object(CDSE_BUCKET, f"{key_prefix}/userdata.json"), userdata
    )
    asset = copy.deepcopy(tpl["assets"]["userdata"])
    asset["href"] = f"s3://{CDSE_BUCKET}/{key_prefix}/userdata.json"
    asset["alternate"]["https"]["href"] = _odata(product_uuid, key_prefix, "userdata.json")
    asset["file:size"] = written.size
    asset["file:local_path"] = f"{mid}/userdata.json"
    assets["userdata"] = asset
    product = copy.deepcopy(tpl["assets"]["Product"])
    product["href"] = (
        f"https://zipper.dataspace.copernicus.eu/odata/v1/Products({product_uuid})/$value"
    )
    product["file:local_path"] = f"{mid}.zip"
    assets["Product"] = product

    footprint = reproject(box(*grid.bounds), grid.epsg, 4326, 1000.0)
    footprint = orient(Polygon([(round(x, 9), round(y, 9)) for x, y in footprint.exterior.coords]))
    created = end + timedelta(days=30 + derive_seed(world.seed, "mosaic-created", mid) % 20)
    props = copy.deepcopy(tpl["properties"])
    props.update(
        {
            "created": _iso_ms(created),
            "updated": _iso_ms(created),
            "datetime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "grid:code": f"MGRS-{spec.window.tile}",
            "published": _iso_ms(created),
            "end_datetime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "start_datetime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    links = _links(tpl["links"], tpl["id"], mid)
    item = {
        "id": mid,
        "bbox": [round(v, 6) for v in footprint.bounds],
        "type": "Feature",
        "links": links,
        "assets": {key: assets[key] for key in tpl["assets"]},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[list(p) for p in footprint.exterior.coords]],
        },
        "collection": COLLECTION,
        "properties": props,
        "stac_extensions": list(tpl["stac_extensions"]),
        "stac_version": tpl["stac_version"],
    }
    writer.write_json(layout.cdse_items / COLLECTION / f"{mid}.json", item)
    return mid


def _links(recorded: list[dict[str, str]], recorded_id: str, mid: str) -> list[dict[str, str]]:
    """The recorded item's links, pointing at this item."""
    links = copy.deepcopy(recorded)
    for link in links:
        if link["rel"] == "self":
            link["href"] = link["href"].replace(recorded_id, mid)
        elif link["rel"] == "version-history":
            link["href"] = link["href"].split("name/")[0] + f"name/{mid}.zip"
        elif link["rel"] == "via":
            link["href"] = (
                "https://datahub.creodias.eu/odata/v1/Products?$filter=((Name%20eq%20%27"
                f"{mid}%27))&$expand=Attributes&$expand=Assets"
            )
    return links


def _odata(product_uuid: str, key_prefix: str, name: str) -> str:
    return (
        f"https://zipper.dataspace.copernicus.eu/odata/v1/Products({product_uuid})"
        f"/Nodes(/eodata/{key_prefix})/Nodes({name})/$value"
    )


def _render(
    world: WorldField,
    spec: MosaicSpec,
    window: TileWindow,
    weather: Weather,
    middle: date,
    ground: GroundSource,
    block_rows: int = 1098,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Clear-sky B02/B03/B04/B08 (int16 reflectance × 10,000) and observation counts."""
    lon, lat = window_centre_lonlat(window)
    azimuth, elevation = sun_angles(
        datetime(middle.year, middle.month, middle.day, 20, 30, tzinfo=UTC), lon, lat
    )
    season = vigor(middle.timetuple().tm_yday)
    bands = {name: np.zeros((window.height, window.width), dtype=np.int16) for name in _BANDS}
    observations = np.zeros((window.height, window.width), dtype=np.uint16)
    obs_seed = derive_seed(world.seed, "observations", item_id(spec))
    peak = 3.0 if weather.snow > 0 else 12.0
    cols = slice(0, window.width)
    for r0 in range(0, window.height, block_rows):
        r1 = min(r0 + block_rows, window.height)
        # The mosaic window shares its tile window's first rows and columns.
        block = ground_block(ground, spec.window, r0, r1)
        g = block.ground
        x, y = block.x[:, cols], block.y[:, cols]
        shade = shading(block.padded_height, 10.0, azimuth, elevation)[:, cols]
        snow = snow_cover(x, y, g.height[:, cols], weather, world)
        surface = surface_reflectance(
            g.water[:, cols], g.bare[:, cols], g.greenness[:, cols], season, shade, snow
        )
        for name in _BANDS:
            values = surface[spectra.BAND_INDEX[name]] * 10000.0
            bands[name][r0:r1] = np.clip(np.rint(values), -32767, 32767).astype(np.int16)
        count = fbm(x, y, 3000.0, 3, obs_seed, "obs")
        observations[r0:r1] = np.clip(np.rint(peak + (peak + 2) * count * 2.5), 0, 40)
    return bands, observations
