"""STAC items for synthetic Sentinel-2 L2A products, shaped like CDSE's.

The recorded CDSE item (``sandbox/fixtures/cdse/search-sentinel-2-l2a-T36NYH.json``)
is the template: its property names, its 43 asset keys and every asset's static fields
(bands, title, roles, type, data_type, nodata, raster scale/offset, auth and storage
refs) are copied, and everything that describes the product (ids, times, orbits, sun
angles, cloud statistics, footprints, per-asset projection, sizes and checksums) is
replaced with the synthetic product's own values.

Deviations from the recording, on purpose:
- ``file:checksum`` is ``1620`` + SHA3-256 of the served bytes on every served object,
  also on the XML and thumbnail assets (the recording uses MD5 multihashes there), so
  one verification routine covers every download;
- the ``Product`` asset (the zipped SAFE) keeps only its https OData form, as recorded;
  no zip is served, its ``file:size`` is the sum of the product's objects and its
  checksum is SHA3-256 over their checksums (not verifiable against any bytes);
- the recording's data glitches are not copied (``B07_60m`` says gsd 20, the Product's
  ``storage:refs`` is garbage); ``thumbnail`` has its real ``proj:shape``.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from darts.sandbox.world.s2names import ProductNames
from darts.sandbox.world.seeds import derive_seed

FIXTURE = (
    Path(__file__).resolve().parent.parent
    / "fixtures"
    / "cdse"
    / "search-sentinel-2-l2a-T36NYH.json"
)
STAC_ROOT = "https://stac.dataspace.copernicus.eu/v1/"
COLLECTION = "sentinel-2-l2a"


@cache
def template() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))["features"][0]


@cache
def _asset_json(key: str) -> str:
    return json.dumps(template()["assets"][key])


def asset_template(key: str) -> dict[str, Any]:
    """A fresh, deep copy of the recorded asset ``key`` (JSON round trip: fast)."""
    return json.loads(_asset_json(key))


def iso_ms(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def iso_us(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def links(item_id: str) -> list[dict[str, str]]:
    collection = f"{STAC_ROOT}collections/{COLLECTION}"
    return [
        {"rel": "collection", "type": "application/json", "href": collection},
        {"rel": "parent", "type": "application/json", "href": collection},
        {"rel": "root", "type": "application/json", "href": STAC_ROOT},
        {"rel": "self", "type": "application/geo+json", "href": f"{collection}/items/{item_id}"},
        {
            "rel": "version-history",
            "href": f"https://trace.dataspace.copernicus.eu/api/v1/traces/name/{item_id}.SAFE.zip",
            "type": "application/json",
            "title": "Product history record from the CDSE traceability service",
        },
    ]


def properties(
    names: ProductNames,
    seed: int,
    sun_azimuth: float,
    sun_elevation: float,
    statistics: dict[str, float],
    cloud_cover: float,
    snow_cover: float,
) -> dict[str, Any]:
    acq = names.acq
    jitter = derive_seed(seed, "times", names.product_id)
    start = acq.sensing + timedelta(milliseconds=jitter % 1000)
    created = names.processed + timedelta(
        minutes=20 + jitter % 40, microseconds=jitter % 997 * 1000
    )
    published = created + timedelta(minutes=15, microseconds=(jitter >> 10) % 999_983)
    updated = published + timedelta(
        days=1 + (jitter >> 20) % 30, microseconds=(jitter >> 30) % 999_979
    )
    view_azimuth = 100.0 + (acq.relative_orbit * 37) % 180 + (jitter % 1000) / 1000.0
    incidence = 2.0 + (acq.relative_orbit * 13) % 9 + ((jitter >> 8) % 1000) / 1000.0
    props = copy.deepcopy(template()["properties"])
    props.update(
        {
            "gsd": 10,
            "created": iso_us(created),
            "updated": iso_us(updated),
            "datetime": iso_ms(start),
            "platform": acq.platform,
            "grid:code": f"MGRS-{names.tile}",
            "published": iso_us(published),
            "statistics": statistics,
            "instruments": ["msi"],
            "end_datetime": iso_ms(start),
            "product:type": "S2MSI2A",
            "view:azimuth": view_azimuth,
            "constellation": "sentinel-2",
            "eo:snow_cover": snow_cover,
            "eo:cloud_cover": cloud_cover,
            "start_datetime": iso_ms(start),
            "sat:orbit_state": "descending",
            "eopf:datatake_id": names.datatake_id,
            "processing:level": "L2",
            "view:sun_azimuth": sun_azimuth,
            "eopf:datastrip_id": names.datastrip_id,
            "processing:version": names.baseline,
            "product:timeliness": "PT24H",
            "sat:absolute_orbit": names.absolute_orbit,
            "sat:relative_orbit": acq.relative_orbit,
            "view:sun_elevation": sun_elevation,
            "processing:datetime": iso_us(names.processed),
            "processing:facility": "ESA",
            "eopf:instrument_mode": "INS-NOBS",
            "eopf:origin_datetime": iso_us(created),
            "view:incidence_angle": incidence,
            "product:timeliness_category": "NRT",
            "sat:platform_international_designator": names.platform_designator,
        }
    )
    assert set(props) == set(template()["properties"]), "property set drifted from CDSE's"
    return props
