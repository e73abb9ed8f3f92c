"""Collection documents for the stand-ins that have no recorded one.

The ``sentinel-2-l2a`` document follows the recorded ``sentinel-2-global-mosaics`` one
in shape; its ``item_assets`` are derived from the recorded L2A item, so they describe
exactly the assets the served items carry. Links are left out everywhere: the app
writes them per request.
"""

from __future__ import annotations

from typing import Any

_CDSE_STORAGE_DESCRIPTION = (
    "S3 storage provided by CloudFerro Cloud and OpenTelekom Cloud (OTC). "
    "Use endpoint URL `https://eodata.dataspace.copernicus.eu`."
)

# Asset fields that vary per item (location, checksum, geometry on the ground) and so
# do not belong in a collection's item_assets.
_PER_ITEM_ASSET_FIELDS = {
    "href",
    "file:size",
    "file:checksum",
    "file:local_path",
    "proj:bbox",
    "proj:code",
    "proj:transform",
    "view:azimuth",
    "view:incidence_angle",
    "classification:classes",
}

_L2A_EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v2.0.0/schema.json",
    "https://stac-extensions.github.io/authentication/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
    "https://stac-extensions.github.io/product/v0.1.0/schema.json",
    "https://stac-extensions.github.io/alternate-assets/v1.2.0/schema.json",
    "https://stac-extensions.github.io/storage/v2.0.0/schema.json",
]


def l2a_collection_document(
    recorded_item: dict[str, Any], mosaic_document: dict[str, Any]
) -> dict[str, Any]:
    """A ``sentinel-2-l2a`` collection document in the shape CDSE uses for its collections."""
    item_assets = {
        key: _item_asset(asset) for key, asset in sorted(recorded_item["assets"].items())
    }
    # Newer baselines add cloud and snow probability layers the recorded item predates.
    for layer, title in (("CLD", "Cloud probability"), ("SNW", "Snow probability")):
        for resolution, size in (("20m", 5490), ("60m", 1830)):
            item_assets[f"{layer}_{resolution}"] = _probability_asset(title, resolution, size)
    return {
        "id": "sentinel-2-l2a",
        "type": "Collection",
        "title": "Sentinel-2 Level-2A",
        "description": (
            "Sentinel-2 Level-2A bottom-of-atmosphere reflectance products, one item per "
            "MGRS tile and datatake, with JPEG2000 band files per resolution (10, 20, 60 m), "
            "the scene classification layer (SCL) and auxiliary layers (AOT, WVP, TCI)."
        ),
        "bands": _collection_bands(recorded_item),
        "license": "other",
        "keywords": [
            "Sentinel",
            "Copernicus",
            "ESA",
            "Satellite",
            "Global",
            "Imagery",
            "Reflectance",
        ],
        "providers": mosaic_document.get("providers", []),
        "extent": {
            "spatial": {"bbox": [[-180, -90, 180, 90]]},
            "temporal": {"interval": [["2015-07-04T00:00:00.000Z", None]]},
        },
        "summaries": {
            "gsd": [10, 20, 60],
            "platform": ["sentinel-2a", "sentinel-2b", "sentinel-2c"],
            "instruments": ["msi"],
            "constellation": ["sentinel-2"],
            "product:type": ["S2MSI2A"],
            "processing:level": ["L2"],
            "product:timeliness": ["PT24H"],
            "eo:cloud_cover": {"minimum": 0, "maximum": 100},
            "eo:snow_cover": {"minimum": 0, "maximum": 100},
        },
        "item_assets": item_assets,
        "auth:schemes": mosaic_document.get("auth:schemes", {}),
        "storage:schemes": mosaic_document.get("storage:schemes", {}),
        "sci:citation": mosaic_document.get("sci:citation", "Copernicus Sentinel data [Year]"),
        "stac_version": "1.1.0",
        "stac_extensions": _L2A_EXTENSIONS,
        "links": [],
    }


def arcticdem_collection_document(collection_id: str, resolution_m: int) -> dict[str, Any]:
    """An ArcticDEM v4.1 mosaic collection; the extent is computed from the items."""

    def cog(title: str, data_type: str, nodata: float | int, roles: list[str]) -> dict[str, Any]:
        return {
            "title": title,
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": roles,
            "gsd": resolution_m,
            "proj:code": "EPSG:3413",
            "nodata": nodata,
            "data_type": data_type,
        }

    return {
        "id": collection_id,
        "type": "Collection",
        "title": f"ArcticDEM Mosaics, version 4.1, {resolution_m}m",
        "description": (
            f"ArcticDEM digital surface model mosaics at {resolution_m} m, in NSIDC Sea Ice "
            "Polar Stereographic North (EPSG:3413), produced by the Polar Geospatial Center."
        ),
        "license": "CC-BY-4.0",
        "keywords": ["ArcticDEM", "elevation", "DEM", "mosaic", "Arctic"],
        "providers": [
            {
                "name": "Polar Geospatial Center",
                "roles": ["producer", "processor", "host"],
                "url": "https://www.pgc.umn.edu/data/arcticdem/",
            }
        ],
        "summaries": {"gsd": [resolution_m], "proj:code": ["EPSG:3413"]},
        "item_assets": {
            "dem": cog("DEM", "float32", -9999, ["data"]),
            "datamask": cog("Valid data mask", "uint8", 0, ["metadata", "data-mask"]),
            "count": cog("Count", "uint8", 0, ["metadata", "count"]),
            "mad": cog("Median absolute deviation", "float32", -9999, ["metadata", "mad"]),
            "mindate": cog("Minimum date", "int16", 0, ["metadata", "date"]),
            "maxdate": cog("Maximum date", "int16", 0, ["metadata", "date"]),
            "hillshade": cog("Hillshade", "uint8", 0, ["overview", "visual"]),
        },
        "stac_version": "1.1.0",
        "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"],
        "links": [],
    }


def tcvis_collection_document(collection_id: str) -> dict[str, Any]:
    """A TCVIS trend collection of the mirror; the extent is computed from the items."""
    return {
        "id": collection_id,
        "type": "Collection",
        "title": f"TCVIS Tasseled Cap trends {collection_id}",
        "description": (
            "Landsat Tasseled Cap trends (TCVIS, Ingmar Nitze) with the bands TCB_slope, "
            "TCG_slope and TCW_slope (uint8), on EPSG:4326 at about 30 m, mirrored as COGs."
        ),
        "license": "other",
        "keywords": ["TCVIS", "Landsat", "Tasseled Cap", "trend"],
        "providers": [{"name": "Alfred Wegener Institute", "roles": ["producer"]}],
        "summaries": {
            "bands": [
                {"name": name, "data_type": "uint8"}
                for name in ("TCB_slope", "TCG_slope", "TCW_slope")
            ],
            "proj:code": ["EPSG:4326"],
        },
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "links": [],
    }


def _item_asset(asset: dict[str, Any]) -> dict[str, Any]:
    described = {k: v for k, v in asset.items() if k not in _PER_ITEM_ASSET_FIELDS}
    alternates = described.get("alternate")
    if isinstance(alternates, dict):
        described["alternate"] = {
            name: {k: v for k, v in alt.items() if k != "href"} for name, alt in alternates.items()
        }
    if "s3" in described.get("auth:refs", []):
        described.setdefault("description", _CDSE_STORAGE_DESCRIPTION)
    return described


def _probability_asset(title: str, resolution: str, size: int) -> dict[str, Any]:
    return {
        "gsd": int(resolution.removesuffix("m")),
        "type": "image/jp2",
        "roles": ["data", f"gsd:{resolution}"],
        "title": f"{title} - {resolution}",
        "nodata": 0,
        "data_type": "uint8",
        "proj:shape": [size, size],
        "auth:refs": ["s3"],
        "storage:refs": ["cdse-s3", "creodias-s3"],
        "alternate:name": "S3",
        "alternate": {"https": {"auth:refs": ["oidc"], "alternate:name": "HTTPS"}},
        "description": _CDSE_STORAGE_DESCRIPTION,
    }


def _collection_bands(recorded_item: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per spectral band, taken from the band assets of the recorded item."""
    bands: dict[str, dict[str, Any]] = {}
    for key in sorted(recorded_item["assets"]):
        asset = recorded_item["assets"][key]
        if key.startswith("TCI"):
            continue  # the true colour composite repeats B04/B03/B02
        for band in asset.get("bands", []):
            if isinstance(band, dict) and band.get("name"):
                bands.setdefault(band["name"], dict(band))
    return [bands[name] for name in sorted(bands)]
