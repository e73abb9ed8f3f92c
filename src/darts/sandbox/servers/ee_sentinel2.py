"""The sandbox's ``COPERNICUS/S2_SR_HARMONIZED``: Earth Engine images of the world's L2A.

Earth Engine ingests each Sentinel-2 granule once; the sandbox derives that catalogue
from the same CDSE STAC items the CDSE stand-in serves, so a test can fetch one
acquisition through both sources and compare pixels:

- one image per acquisition: products sharing the sensing time and tile (reprocessed
  under another baseline) collapse into one, the newest baseline winning, as Earth
  Engine keeps one asset per ``system:index``;
- the id is ``<sensing start>_<granule time>_T<tile>``, e.g.
  ``20230701T194909_20230701T195350_T11XNA``. The sensing start is the product id's
  third field; the **granule time** is the time stamp that ends the GRANULE folder
  name in the item's band hrefs (``GRANULE/L2A_T08WNB_A016042_20180714T204100/``),
  i.e. when the datatake reached the tile, which is what the real id's second field is
  (the world writes it as sensing + 131 s). Without such an href it falls back to the
  sensing start;
- ``properties`` carry the metadata names of the real collection (``MGRS_TILE``,
  ``CLOUDY_PIXEL_PERCENTAGE``, ...) and ``PRODUCT_ID``, the CDSE item id, so tests can
  pair the two sources;
- ``bands`` are the bands at their native resolution (B2/B3/B4/B8 10 m, B5/B6/B7/B8A/
  B11/B12/SCL 20 m, B1/B9 60 m) for which the product has a JP2 on disk; their grids
  are the assets' own.

The catalogue is read lazily on first use, so a sandbox that never serves Sentinel-2
from Earth Engine never parses the items.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from darts.sandbox.layout import WorldLayout
from darts.sandbox.servers.stac_time import from_micros, parse_item_instant

COLLECTION_ID = "COPERNICUS/S2_SR_HARMONIZED"
PUBLIC_PROJECT = "earthengine-public"
COLLECTION_NAME = f"projects/{PUBLIC_PROJECT}/assets/{COLLECTION_ID}"
L2A_COLLECTION = "sentinel-2-l2a"
# Earth Engine band -> CDSE asset at the band's native resolution, in the real
# collection's band order (no B10: L2A products have no cirrus band, nor does the
# real collection).
NATIVE_ASSETS: dict[str, str] = {
    "B1": "B01_60m",
    "B2": "B02_10m",
    "B3": "B03_10m",
    "B4": "B04_10m",
    "B5": "B05_20m",
    "B6": "B06_20m",
    "B7": "B07_20m",
    "B8": "B08_10m",
    "B8A": "B8A_20m",
    "B9": "B09_60m",
    "B11": "B11_20m",
    "B12": "B12_20m",
    "SCL": "SCL_20m",
}
# The BOA offset (DN) that L2A products from baseline 04.00 on add; used when an asset
# lacks raster:offset.
DEFAULT_BOA_OFFSET_DN = 1000

_PRODUCT_ID = re.compile(
    r"^(S2[A-D])_MSIL2A_(\d{8}T\d{6})_N(\d{4})_R(\d{3})_T(\w{5})_(\d{8}T\d{6})$"
)
_GRANULE = re.compile(r"/GRANULE/L2A_T\w{5}_A\d{6}_(\d{8}T\d{6})/")


@dataclass(frozen=True)
class BandSource:
    """One Earth Engine band: its JP2 on disk and its native pixel grid."""

    id: str
    path: Path
    dtype: str  # numpy dtype name: uint16 (reflectance) or uint8 (SCL)
    crs: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int
    # DN subtracted to harmonise (CDSE DN - offset, floored at 0); 0 for SCL.
    offset_dn: int

    def to_json(self) -> dict[str, Any]:
        a, b, c, d, e, f = self.transform
        maximum = 255 if self.dtype == "uint8" else 65535
        return {
            "id": self.id,
            "dataType": {"precision": "INT", "range": {"min": 0, "max": maximum}},
            "grid": {
                "crsCode": self.crs,
                "affineTransform": {
                    "scaleX": a,
                    "shearX": b,
                    "translateX": c,
                    "shearY": d,
                    "scaleY": e,
                    "translateY": f,
                },
                "dimensions": {"width": self.width, "height": self.height},
            },
        }


@dataclass(frozen=True)
class S2Image:
    """One image of the collection, with what listing and rendering need."""

    id: str
    start: int  # microseconds since the epoch (sensing time)
    end: int
    geometry: dict[str, Any]
    footprint: BaseGeometry
    properties: dict[str, Any]
    bands: tuple[BandSource, ...]
    baseline: tuple[int, ...]
    product_id: str
    updated: str | None

    @property
    def name(self) -> str:
        return f"{COLLECTION_NAME}/{self.id}"

    def band(self, band_id: str) -> BandSource | None:
        return next((b for b in self.bands if b.id == band_id), None)

    def to_json(self, *, full: bool = True) -> dict[str, Any]:
        document: dict[str, Any] = {
            "type": "IMAGE",
            "name": self.name,
            "id": f"{COLLECTION_ID}/{self.id}",
        }
        if self.updated:
            document["updateTime"] = self.updated
        document.update(
            {
                "startTime": from_micros(self.start),
                "endTime": from_micros(self.end),
                "geometry": self.geometry,
                "bands": [band.to_json() for band in self.bands],
            }
        )
        if full:
            document["properties"] = dict(self.properties)
        return document


class Sentinel2Catalog:
    """The collection's images, loaded once from the world's L2A items."""

    def __init__(self, layout: WorldLayout) -> None:
        self.layout = layout
        self._lock = threading.Lock()
        self._images: list[S2Image] | None = None
        self._by_id: dict[str, S2Image] = {}

    def images(self) -> list[S2Image]:
        """All images, sorted by (start time, id)."""
        with self._lock:
            if self._images is None:
                images = load_images(self.layout)
                self._by_id = {image.id: image for image in images}
                self._images = images
            return self._images

    def image(self, image_id: str) -> S2Image | None:
        self.images()
        return self._by_id.get(image_id)


def load_images(layout: WorldLayout) -> list[S2Image]:
    """Read every L2A item of the world and keep the newest baseline per EE id."""
    chosen: dict[str, S2Image] = {}
    folder = layout.cdse_items / L2A_COLLECTION
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        item = json.loads(path.read_text(encoding="utf-8"))
        image = image_from_item(item, layout)
        if image is None:
            continue
        previous = chosen.get(image.id)
        if previous is None or (image.baseline, image.product_id) > (
            previous.baseline,
            previous.product_id,
        ):
            chosen[image.id] = image
    return sorted(chosen.values(), key=lambda image: (image.start, image.id))


def image_from_item(item: dict[str, Any], layout: WorldLayout) -> S2Image | None:
    """The Earth Engine image of one CDSE L2A item; None for an id of another form."""
    product_id = str(item.get("id", ""))
    match = _PRODUCT_ID.match(product_id)
    if match is None:
        return None
    mission, sensing, _baseline, orbit, tile, _processed = match.groups()
    props = item.get("properties") or {}
    assets = item.get("assets") or {}
    start = parse_item_instant(props.get("start_datetime") or props.get("datetime"))
    if start is None:
        return None
    end = parse_item_instant(props.get("end_datetime")) or start
    granule_time = _granule_time(assets) or sensing
    image_id = f"{sensing}_{granule_time}_T{tile}"
    baseline_text = str(props.get("processing:version", "00.00"))
    bands = tuple(
        band
        for band_id, key in NATIVE_ASSETS.items()
        if (band := _band_source(band_id, assets.get(key), layout)) is not None
    )
    sun_elevation = props.get("view:sun_elevation")
    properties: dict[str, Any] = {
        "system:index": image_id,
        "system:time_start": start // 1000,
        "system:time_end": end // 1000,
        "MGRS_TILE": tile,
        "CLOUDY_PIXEL_PERCENTAGE": props.get("eo:cloud_cover"),
        "SNOW_ICE_PERCENTAGE": props.get("eo:snow_cover"),
        "PROCESSING_BASELINE": baseline_text,
        "SPACECRAFT_NAME": f"Sentinel-{mission[1:]}",
        "PRODUCT_ID": product_id,
        "GRANULE_ID": f"L2A_T{tile}_A{int(props.get('sat:absolute_orbit', 0)):06d}_{granule_time}",
        "DATATAKE_IDENTIFIER": props.get("eopf:datatake_id"),
        "DATASTRIP_ID": props.get("eopf:datastrip_id"),
        "SENSING_ORBIT_NUMBER": int(orbit),
        "SENSING_ORBIT_DIRECTION": str(props.get("sat:orbit_state", "descending")).upper(),
        "MEAN_SOLAR_AZIMUTH_ANGLE": props.get("view:sun_azimuth"),
        "MEAN_SOLAR_ZENITH_ANGLE": (
            90.0 - float(sun_elevation) if sun_elevation is not None else None
        ),
    }
    geometry = item.get("geometry") or {}
    return S2Image(
        id=image_id,
        start=start,
        end=end,
        geometry=geometry,
        footprint=shape(geometry) if geometry else shapely.Polygon(),
        properties={k: v for k, v in properties.items() if v is not None},
        bands=bands,
        baseline=tuple(int(part) for part in re.findall(r"\d+", baseline_text)),
        product_id=product_id,
        updated=_ms_text(props.get("updated")),
    )


def _granule_time(assets: dict[str, Any]) -> str | None:
    for key in NATIVE_ASSETS.values():
        asset = assets.get(key)
        href = asset.get("href") if isinstance(asset, dict) else None
        match = _GRANULE.search(href) if isinstance(href, str) else None
        if match:
            return match.group(1)
    return None


def _band_source(band_id: str, asset: Any, layout: WorldLayout) -> BandSource | None:
    if not isinstance(asset, dict):
        return None
    href = str(asset.get("href", ""))
    if not href.startswith("s3://"):
        return None
    bucket, _, key = href.removeprefix("s3://").partition("/")
    path = layout.s3_object(bucket, key)
    if not path.is_file():
        return None
    transform = tuple(float(v) for v in asset["proj:transform"][:6])
    height, width = (int(v) for v in asset["proj:shape"])
    dtype = str(asset.get("data_type", "uint16"))
    return BandSource(
        id=band_id,
        path=path,
        dtype=dtype,
        crs=str(asset["proj:code"]),
        transform=transform,  # type: ignore[arg-type]
        width=width,
        height=height,
        offset_dn=_offset_dn(asset) if dtype == "uint16" else 0,
    )


def _offset_dn(asset: dict[str, Any]) -> int:
    """The BOA_ADD_OFFSET of a reflectance asset, as a positive DN (1000 for -0.1)."""
    offset, scale = asset.get("raster:offset"), asset.get("raster:scale")
    if offset is None or not scale:
        return DEFAULT_BOA_OFFSET_DN
    return max(0, round(-float(offset) / float(scale)))


def _ms_text(value: Any) -> str | None:
    micros = parse_item_instant(value)
    return from_micros(micros) if micros is not None else None
