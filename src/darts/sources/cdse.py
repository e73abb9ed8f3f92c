"""Finding Sentinel-2 L2A scenes (and, with another collection, quarterly mosaics) on the
CDSE STAC API.

All traffic goes through `darts.net.open_stac`, so the offline gate, timeouts, retries
with backoff (429/5xx) and the concurrency bound apply to every search page. One
search is sent per date span (`darts.sources.query.date_spans`), as a POST with the
largest page size CDSE allows (200) and the conditions as CQL2 JSON; pystac-client
follows the ``next`` links. Results are de-duplicated by id and sorted by (datetime,
id), so the same query always gives the same list in the same order.

Offline, nothing here may search: id selections are validated before any connection,
and tile/AOI selections are refused (`darts.sources.scene_docs`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from darts.sources.query import SceneFilters, SceneSelection, date_spans, format_span
from darts.sources.scene_docs import (
    DiscoveryError,
    describe_query,
    describe_selection,
    discover_offline,
    item_datetime,
    item_tile,
    no_scenes_message,
    scene_footprint,
    selected_ids,
)

if TYPE_CHECKING:
    from darts.net.http import HttpClient
    from darts.net.settings import NetworkSettings

CDSE_STAC_URL = "https://stac.dataspace.copernicus.eu/v1/"
CDSE_COLLECTION = "sentinel-2-l2a"
# CDSE refuses a larger `limit` for sentinel-2-l2a (an error, not a silent cap).
MAX_PAGE_LIMIT = 200

__all__ = [
    "CDSE_COLLECTION",
    "CDSE_STAC_URL",
    "DiscoveryError",
    "describe_query",
    "discover_cdse",
    "discover_offline",
    "item_datetime",
    "item_tile",
    "no_scenes_message",
    "scene_footprint",
]
_GRID_PREFIX = "MGRS-"
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


def discover_cdse(
    selection: SceneSelection,
    filters: SceneFilters,
    *,
    stac_url: str,
    net: NetworkSettings | HttpClient,
    collection: str = CDSE_COLLECTION,
    page_limit: int = MAX_PAGE_LIMIT,
    today: date | None = None,
    source: str = "cdse",
) -> list[dict[str, Any]]:
    """The STAC item dicts for ``selection`` and ``filters``, unique, ordered by
    (datetime, id).

    Scene ids (given or from the id file) are fetched by id, in batches of at most
    ``page_limit``, and the filters do not apply to them: the user named those scenes.
    Every id the catalogue lacks is listed in one `DiscoveryError`. Tile ids and an AOI
    are searched once per date span; an empty list means nothing matched (see
    `no_scenes_message` for the message to show).

    today: the end of open date ranges (default: today in UTC); for tests.
    source: whose id form scene ids must have (``cdse``, ``cdse-mosaic``).
    """
    if not 1 <= page_limit <= MAX_PAGE_LIMIT:
        raise ValueError(f"page_limit must be 1..{MAX_PAGE_LIMIT}, got {page_limit}")
    # Everything local is checked before a connection is opened, so a typo fails fast.
    # An offline client refuses the search itself, naming the URL and its purpose.
    if not selection.needs_search:
        ids = selected_ids(selection, source=source)
        with _http_client(net) as client:
            stac = _open(stac_url, client, f"fetch {len(ids)} Sentinel-2 scene(s) by id")
            return _ordered(_fetch_ids(stac, ids, collection, page_limit, source))

    spans = date_spans(filters, today or datetime.now(UTC).date())
    cql = _cql2_filter(selection, filters)
    intersects = None
    if selection.aoi_file is not None:
        from darts.sources.aoi import aoi_geojson, read_aoi

        intersects = aoi_geojson(read_aoi(selection.aoi_file))
    if not spans:
        return []
    purpose = f"STAC search for Sentinel-2 scenes ({describe_selection(selection)})"
    found: dict[str, dict[str, Any]] = {}
    with _http_client(net) as client:
        stac = _open(stac_url, client, purpose)
        for span in spans:
            search = stac.search(
                method="POST",
                collections=[collection],
                datetime=format_span(span),
                intersects=intersects,
                filter=cql,
                filter_lang="cql2-json" if cql is not None else None,
                limit=page_limit,
            )
            for item in search.items_as_dicts():
                found.setdefault(item["id"], item)
    return _ordered(found.values())


# -- helpers ---------------------------------------------------------------------------


def _cql2_filter(selection: SceneSelection, filters: SceneFilters) -> dict[str, Any] | None:
    terms: list[dict[str, Any]] = []
    if selection.tile_ids:
        codes = [f"{_GRID_PREFIX}{tile}" for tile in selection.tile_ids]
        terms.append({"op": "in", "args": [{"property": "grid:code"}, codes]})
    # A maximum of 100 is no filter: leaving the term out also keeps items that lack
    # the property, which is what "any cover" means.
    if filters.cloud_filter:
        terms.append(
            {"op": "<=", "args": [{"property": "eo:cloud_cover"}, filters.max_cloud_cover]}
        )
    if filters.snow_filter:
        terms.append({"op": "<=", "args": [{"property": "eo:snow_cover"}, filters.max_snow_cover]})
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else {"op": "and", "args": terms}


def _fetch_ids(
    stac: Any, ids: Sequence[str], collection: str, page_limit: int, source: str = "cdse"
) -> list[dict[str, Any]]:
    wanted = set(ids)
    found: dict[str, dict[str, Any]] = {}
    for batch in _batches(ids, page_limit):
        search = stac.search(
            method="POST", collections=[collection], ids=list(batch), limit=len(batch)
        )
        for item in search.items_as_dicts():
            if item.get("id") in wanted:
                found.setdefault(item["id"], item)
    missing = [i for i in ids if i not in found]
    if missing:
        raise DiscoveryError(
            f"{len(missing)} of {len(ids)} scene id(s) not found in collection {collection}: "
            f"{', '.join(missing)}; check the ids (source {source} needs "
            f"{'the full product id' if source == 'cdse' else 'the mosaic id'}) or remove them"
        )
    return list(found.values())


def _batches(values: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@contextlib.contextmanager
def _http_client(net: NetworkSettings | HttpClient) -> Iterator[HttpClient]:
    """The caller's own client (left open), or one built from settings and closed
    afterwards, so no session outlives the discovery."""
    from darts.net.http import HttpClient

    if isinstance(net, HttpClient):
        yield net
        return
    with HttpClient(net) as client:
        yield client


def _open(stac_url: str, client: HttpClient, purpose: str) -> Any:
    # Imported here: pystac-client is slow to import and offline runs never need it.
    from darts.net.stac import open_stac

    return open_stac(stac_url, client, purpose)


def _ordered(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    unique = {item["id"]: item for item in reversed(list(items))}  # first occurrence wins
    return sorted(unique.values(), key=lambda i: (item_datetime(i) or _FAR_FUTURE, i["id"]))
