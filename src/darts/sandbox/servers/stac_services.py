"""Configurations of the three STAC stand-ins: CDSE, PGC and the TCVIS mirror.

Each reads the item folders of a built world (``darts.sandbox.layout``); the paths
and collection names are those of the production services (see
shared/reference/sources.md §1, §2, §5) so that client code only changes its base URL.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from darts.sandbox.layout import PGC_STAC_PLACEHOLDER, WorldLayout
from darts.sandbox.servers.stac_config import (
    GENERIC_CONFORMANCE,
    HOST_URL_TOKEN,
    CollectionSpec,
    StacApiConfig,
)
from darts.sandbox.servers.stac_documents import (
    arcticdem_collection_document,
    l2a_collection_document,
    tcvis_collection_document,
)

CDSE_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cdse"

CDSE_L2A = "sentinel-2-l2a"
CDSE_MOSAICS = "sentinel-2-global-mosaics"
CDSE_L2A_MAX_LIMIT = 200

# Real hosts inside recorded CDSE documents. Their hrefs are sent to the answering
# stand-in by default so that nothing a client follows leaves the loopback; a runner
# may point them elsewhere by editing ``StacApiConfig.href_rewrites``.
CDSE_STAC_HOST = "https://stac.dataspace.copernicus.eu/"
CDSE_ODATA_HOSTS = ("https://zipper.dataspace.copernicus.eu/", "https://datahub.creodias.eu/")

PGC_COLLECTIONS = {
    "arcticdem-mosaics-v4.1-2m": 2,
    "arcticdem-mosaics-v4.1-10m": 10,
    "arcticdem-mosaics-v4.1-32m": 32,
}


def cdse_stac_config(layout: WorldLayout, include_fixture_items: bool = True) -> StacApiConfig:
    """The CDSE STAC API (``/v1``): ``sentinel-2-l2a`` and ``sentinel-2-global-mosaics``.

    With ``include_fixture_items`` the two recorded items are served as well, next to
    the world's items; their s3:// hrefs stay (the S3 endpoint is a client setting).
    """
    landing = _fixture("landing-page.json")
    mosaic_document = _fixture("collection-sentinel-2-global-mosaics.json")
    l2a_item = _fixture_item("search-sentinel-2-l2a-T36NYH.json")
    mosaic_item = _fixture_item("search-sentinel-2-global-mosaics-31SDV.json")
    collections = [
        CollectionSpec(
            id=CDSE_L2A,
            items_dir=layout.cdse_items / CDSE_L2A,
            document=l2a_collection_document(l2a_item, mosaic_document),
            default_limit=10,
            max_limit=CDSE_L2A_MAX_LIMIT,
            extra_items=[l2a_item] if include_fixture_items else [],
        ),
        CollectionSpec(
            id=CDSE_MOSAICS,
            items_dir=layout.cdse_items / CDSE_MOSAICS,
            document=mosaic_document,
            default_limit=10,
            extra_items=[mosaic_item] if include_fixture_items else [],
        ),
    ]
    rewrites = {CDSE_STAC_HOST: HOST_URL_TOKEN}
    rewrites.update({host: HOST_URL_TOKEN for host in CDSE_ODATA_HOSTS})
    return StacApiConfig(
        title=landing["title"],
        root_path="/v1",
        collections=collections,
        conforms_to=list(landing["conformsTo"]),
        href_rewrites=rewrites,
        catalog_id=landing["id"],
        description=landing["description"],
        stac_version=landing.get("stac_version", "1.1.0"),
    )


def pgc_stac_config(layout: WorldLayout) -> StacApiConfig:
    """The PGC STAC API (``/api/v1``) with the three ArcticDEM v4.1 mosaic collections.

    Asset hrefs start with ``PGC_DATA_PLACEHOLDER`` in the world; the runner maps it to
    the data server's URL through ``href_rewrites`` once that server has a port.
    ``PGC_STAC_PLACEHOLDER`` stands for this API's own root and maps to it by default.
    """
    collections = [
        CollectionSpec(
            id=collection_id,
            items_dir=layout.pgc_items / collection_id,
            document=arcticdem_collection_document(collection_id, resolution),
        )
        for collection_id, resolution in PGC_COLLECTIONS.items()
    ]
    return StacApiConfig(
        title="PGC STAC API (sandbox)",
        root_path="/api/v1",
        collections=collections,
        conforms_to=list(GENERIC_CONFORMANCE),
        href_rewrites={PGC_STAC_PLACEHOLDER: HOST_URL_TOKEN + "api/v1/"},
        catalog_id="pgc-stac",
        description="Stand-in for the Polar Geospatial Center STAC API (ArcticDEM mosaics).",
    )


def tcvis_stac_config(layout: WorldLayout) -> StacApiConfig:
    """The TCVIS mirror's STAC API (``/stac/v1``): one collection per item folder.

    Asset hrefs start with ``TCVIS_DATA_PLACEHOLDER``; the runner maps it like PGC's.
    """
    folders = (
        sorted(p for p in layout.tcvis_items.iterdir() if p.is_dir())
        if layout.tcvis_items.is_dir()
        else []
    )
    collections = [
        CollectionSpec(id=p.name, items_dir=p, document=tcvis_collection_document(p.name))
        for p in folders
    ]
    return StacApiConfig(
        title="TCVIS mirror STAC API (sandbox)",
        root_path="/stac/v1",
        collections=collections,
        conforms_to=list(GENERIC_CONFORMANCE),
        catalog_id="tcvis-mirror",
        description="Stand-in for a STAC catalogue of mirrored TCVIS trend images.",
    )


def _fixture(name: str) -> dict[str, Any]:
    return copy.deepcopy(_read_fixture(name))


def _fixture_item(name: str) -> dict[str, Any]:
    return _fixture(name)["features"][0]


@cache
def _read_fixture(name: str) -> dict[str, Any]:
    return json.loads((CDSE_FIXTURES / name).read_text(encoding="utf-8"))
