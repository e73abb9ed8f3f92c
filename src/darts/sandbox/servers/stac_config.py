"""Configuration of the generic sandbox STAC API (one config per stand-in service)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Token allowed inside ``StacApiConfig.href_rewrites`` replacements. It expands to the
# scheme, host and port the request came in on ("http://127.0.0.1:8123/"), so a
# rewrite can point at the answering server itself without knowing its port up front.
HOST_URL_TOKEN = "{host_url}"

# Conformance classes for the stand-ins that have no recorded landing page (PGC, TCVIS
# mirror): what this implementation really offers, no transactions, no collection search.
GENERIC_CONFORMANCE: list[str] = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0/item-search#fields",
    "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
]


def _string(description: str) -> dict[str, Any]:
    return {"description": description, "type": "string"}


def _percent(description: str) -> dict[str, Any]:
    return {"description": description, "type": "number", "minimum": 0, "maximum": 100}


# JSON Schema fragments of the properties a client may filter on. The names follow the
# CDSE queryables; services without such a property simply never match on it.
DEFAULT_QUERYABLES: dict[str, dict[str, Any]] = {
    "id": {"description": "Item identifier", "type": "string"},
    "collection": {"description": "Collection identifier", "type": "string"},
    "datetime": {"description": "Acquisition time", "type": "string", "format": "date-time"},
    "start_datetime": {
        "description": "Start of the time span",
        "type": "string",
        "format": "date-time",
    },
    "end_datetime": {
        "description": "End of the time span",
        "type": "string",
        "format": "date-time",
    },
    "geometry": {
        "description": "Footprint",
        "$ref": "https://geojson.org/schema/Geometry.json",
    },
    "grid:code": {
        **_string("Grid cell, e.g. MGRS-33UUP"),
        "pattern": "^[A-Z0-9]+-[-_.A-Za-z0-9]+$",
    },
    "eo:cloud_cover": _percent("Cloud cover of the scene in percent"),
    "eo:snow_cover": _percent("Snow and ice cover of the scene in percent"),
    "platform": {**_string("Satellite"), "enum": ["sentinel-2a", "sentinel-2b", "sentinel-2c"]},
    "processing:version": _string("Processing baseline, e.g. 05.00"),
    "sat:relative_orbit": {"description": "Relative orbit number", "type": "integer", "minimum": 1},
    "product:type": _string("Product type, e.g. S2MSI2A"),
    "gsd": {"description": "Ground sample distance in metres", "type": "number"},
}


@dataclass
class CollectionSpec:
    """One collection: its document and where its item files lie.

    ``extra_items`` are item dicts served next to the files (the recorded CDSE fixture
    items); a file with the same id wins over an extra item.
    """

    id: str
    items_dir: Path
    document: dict[str, Any]
    default_limit: int = 10
    max_limit: int | None = None
    extra_items: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StacApiConfig:
    """What one stand-in STAC API serves and under which path.

    ``href_rewrites`` maps a prefix to its replacement in asset hrefs, alternate asset
    hrefs and the non-navigation links of items. It is read at answer time, so a runner
    may fill it in once it knows the ports of the other stand-ins. A replacement may
    contain ``{host_url}`` (see ``HOST_URL_TOKEN``).
    """

    title: str
    root_path: str
    collections: list[CollectionSpec]
    conforms_to: list[str]
    href_rewrites: dict[str, str] = field(default_factory=dict)
    catalog_id: str = "sandbox-stac"
    description: str = "Local stand-in STAC API serving a synthetic sandbox world."
    stac_version: str = "1.1.0"
    queryables: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_QUERYABLES))

    def collection(self, collection_id: str) -> CollectionSpec | None:
        return next((c for c in self.collections if c.id == collection_id), None)
