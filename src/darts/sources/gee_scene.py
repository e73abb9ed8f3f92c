"""An Earth Engine Sentinel-2 image as a STAC-like scene document.

The store keeps one document beside every scene, and the rest of DARTS reads scenes
through it (grid, footprint, year, sun position, tile). Earth Engine's ``listImages``
answer has all of that under other names; this module renames it once:

- ``id``: ``system:index`` (the last part of ``name``);
- ``geometry``: ``geometry`` (GeoJSON, EPSG:4326);
- ``properties.datetime``: ``startTime``;
- ``properties["grid:code"]``: ``MGRS-`` + ``MGRS_TILE``;
- ``eo:cloud_cover`` / ``eo:snow_cover``: ``CLOUDY_PIXEL_PERCENTAGE`` /
  ``SNOW_ICE_PERCENTAGE``;
- ``view:sun_azimuth`` / ``view:sun_elevation``: ``MEAN_SOLAR_AZIMUTH_ANGLE`` /
  90 − ``MEAN_SOLAR_ZENITH_ANGLE``;
- ``assets[<key>]`` with ``proj:*``: ``bands[]`` with their ``grid``.

Band keys are the store's (``B02_10m`` for Earth Engine's ``B2``), and the harmonized
DN encoding (reflectance = DN / 10,000, 0 = masked) is written into each asset as
``raster:scale``/``raster:offset``/``nodata``, so `to_reflectance` needs no source
knowledge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from darts.sources.cdse_bands import NATIVE_RESOLUTION, SCL_KEY

S2_COLLECTION = "COPERNICUS/S2_SR_HARMONIZED"
S2_PARENT = f"projects/earthengine-public/assets/{S2_COLLECTION}"

# Store key → Earth Engine band: each band at its native resolution (B02 → B2).
EE_BANDS: dict[str, str] = {
    f"{band}_{resolution}m": band if band == "B8A" else f"B{int(band[1:])}"
    for band, resolution in NATIVE_RESOLUTION.items()
}
EE_BANDS[SCL_KEY] = "SCL"
REFLECTANCE_SCALE = 1e-4


def ee_band(key: str) -> str | None:
    """Earth Engine's name of a store key (``B02_10m`` → ``B2``), None if it has none."""
    return EE_BANDS.get(key)


def band_dtype(key: str) -> str:
    return "uint8" if key == SCL_KEY else "uint16"


def ee_image_id(image: Mapping[str, Any]) -> str:
    """The image's ``system:index``."""
    properties = image.get("properties") or {}
    index = properties.get("system:index")
    if isinstance(index, str) and index:
        return index
    return str(image.get("id") or image.get("name") or "").rsplit("/", 1)[-1]


def scene_document(image: Mapping[str, Any]) -> dict[str, Any]:
    """The scene document of one ``listImages`` image (view FULL)."""
    from shapely.geometry import shape

    image_id = ee_image_id(image)
    p = image.get("properties") or {}
    geometry = image.get("geometry")
    properties: dict[str, Any] = {
        "datetime": _rfc3339(image.get("startTime")),
        "earthengine:name": image.get("name"),
        "earthengine:collection": S2_COLLECTION,
    }
    if p.get("MGRS_TILE"):
        properties["grid:code"] = f"MGRS-{p['MGRS_TILE']}"
    for ours, theirs in (
        ("eo:cloud_cover", "CLOUDY_PIXEL_PERCENTAGE"),
        ("eo:snow_cover", "SNOW_ICE_PERCENTAGE"),
        ("view:sun_azimuth", "MEAN_SOLAR_AZIMUTH_ANGLE"),
        ("processing:version", "PROCESSING_BASELINE"),
        ("platform", "SPACECRAFT_NAME"),
        ("s2:product_id", "PRODUCT_ID"),
    ):
        if p.get(theirs) is not None:
            properties[ours] = p[theirs]
    if isinstance(properties.get("platform"), str):
        properties["platform"] = properties["platform"].lower()
    if isinstance(p.get("MEAN_SOLAR_ZENITH_ANGLE"), int | float):
        properties["view:sun_elevation"] = 90.0 - float(p["MEAN_SOLAR_ZENITH_ANGLE"])
    document: dict[str, Any] = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": image_id,
        "collection": S2_COLLECTION,
        "geometry": geometry,
        "properties": {k: v for k, v in properties.items() if v is not None},
        "assets": _assets(image.get("bands") or []),
    }
    if geometry:
        document["bbox"] = list(shape(geometry).bounds)
    return document


def _assets(bands: list[Any]) -> dict[str, Any]:
    by_name = {ee_name: key for key, ee_name in EE_BANDS.items()}
    assets: dict[str, Any] = {}
    for band in bands:
        if not isinstance(band, Mapping) or band.get("id") not in by_name:
            continue
        key = by_name[band["id"]]
        grid = band.get("grid") or {}
        affine = grid.get("affineTransform") or {}
        dims = grid.get("dimensions") or {}
        asset: dict[str, Any] = {
            "earthengine:band": band["id"],
            "data_type": band_dtype(key),
            "proj:code": grid.get("crsCode"),
            "proj:shape": [int(dims.get("height", 0)), int(dims.get("width", 0))],
            "proj:transform": [
                float(affine.get(name, 0.0))
                for name in ("scaleX", "shearX", "translateX", "shearY", "scaleY", "translateY")
            ],
        }
        if key != SCL_KEY:
            asset.update({"raster:scale": REFLECTANCE_SCALE, "raster:offset": 0.0, "nodata": 0})
        assets[key] = asset
    return assets


def _rfc3339(value: Any) -> str | None:
    """Earth Engine's times as STAC writes them (``...Z``)."""
    if not isinstance(value, str) or not value:
        return None
    return value.replace("+00:00", "Z")
