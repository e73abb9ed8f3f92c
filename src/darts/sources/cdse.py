"""Finding Sentinel-2 L2A scenes on the CDSE STAC API (source ``cdse``).

All traffic goes through `darts.net.open_stac`, so the offline gate, timeouts, retries
with backoff (429/5xx) and the concurrency bound apply to every search page. One
search is sent per date span (`darts.sources.query.date_spans`), as a POST with the
largest page size CDSE allows (200) and the conditions as CQL2 JSON; pystac-client
follows the ``next`` links. Results are de-duplicated by id and sorted by (datetime,
id), so the same query always gives the same list in the same order.

Offline, nothing here may search: `discover_offline` returns the ids the user gave or
prep-data saved and refuses tile/AOI selections before any connection is considered
(pitfall 6: the reference searched anyway when the saved id file was missing).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from darts.errors import ConfigError, DartsError
from darts.sources.query import (
    SceneFilters,
    SceneSelection,
    date_spans,
    describe_filters,
    format_span,
)
from darts.sources.scene_ids import parse_scene_id, read_scene_id_file, validate_scene_ids

if TYPE_CHECKING:
    from darts.net.http import HttpClient
    from darts.net.settings import NetworkSettings

CDSE_STAC_URL = "https://stac.dataspace.copernicus.eu/v1/"
CDSE_COLLECTION = "sentinel-2-l2a"
# CDSE refuses a larger `limit` for sentinel-2-l2a (an error, not a silent cap).
MAX_PAGE_LIMIT = 200
_GRID_PREFIX = "MGRS-"
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


class DiscoveryError(DartsError):
    """Scene discovery cannot give what was asked (e.g. scene ids the catalogue lacks)."""


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
    # Everything local is checked before a connection is opened, so a typo fails fast
    # and offline runs fail with the message about prep-data rather than a refused URL.
    offline = _is_offline(net)
    if selection.needs_search and offline:
        _refuse_offline_search(selection)
    if not selection.needs_search:
        ids = _selected_ids(selection, offline=offline, source=source)
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
    purpose = f"STAC search for Sentinel-2 scenes ({_describe_selection(selection)})"
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


def discover_offline(selection: SceneSelection, *, source: str = "cdse") -> list[str]:
    """The scene ids of an offline run, from ``--scene-ids`` or ``--scene-id-file``.

    Opens no connection. Tile ids and an AOI need a catalogue search, so they are
    refused with a message saying how to prepare the run.
    """
    if selection.needs_search:
        _refuse_offline_search(selection)
    return list(_selected_ids(selection, offline=True, source=source))


def describe_query(
    selection: SceneSelection, filters: SceneFilters, *, today: date | None = None
) -> str:
    """The query in words, for logs and the "nothing found" message."""
    what = _describe_selection(selection)
    if not selection.needs_search:
        return what
    spans = date_spans(filters, today or datetime.now(UTC).date())
    count = f"{len(spans)} date span{'s' if len(spans) != 1 else ''}"
    return f"{what}; {describe_filters(filters)} ({count})"


def no_scenes_message(
    selection: SceneSelection,
    filters: SceneFilters,
    source: Any = None,
    *,
    today: date | None = None,
) -> str:
    """One line for an empty result: which query found nothing and what to relax.
    ``source`` (a `SceneSource`) names what was searched; default CDSE L2A scenes."""
    kind = getattr(source, "kind", "Sentinel-2 L2A scenes")
    hint = getattr(
        source,
        "relax_hint",
        "raise --max-cloud-cover or --max-snow-cover (100 disables), widen "
        "--start-date/--end-date, or drop --years/--months/--quarters",
    )
    where = f" ({source.name})" if getattr(source, "name", None) else ""
    return (
        f"no {kind}{where} found for {describe_query(selection, filters, today=today)}; "
        f"relax the filters: {hint}"
    )


def scene_footprint(item: dict[str, Any]) -> BaseGeometry:
    """The item's footprint (EPSG:4326) as a shapely geometry."""
    geometry = item.get("geometry")
    if not geometry:
        raise DiscoveryError(f"STAC item {item.get('id')!r} has no geometry")
    try:
        return shape(geometry)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise DiscoveryError(
            f"STAC item {item.get('id')!r} has an invalid geometry: {err}"
        ) from None


def item_tile(item: dict[str, Any]) -> str:
    """The item's MGRS tile (``33UUP``): from ``grid:code``, else from the product id."""
    code = (item.get("properties") or {}).get("grid:code")
    if isinstance(code, str) and code.startswith(_GRID_PREFIX):
        return code.removeprefix(_GRID_PREFIX)
    try:
        return parse_scene_id(str(item.get("id", ""))).tile
    except ConfigError:
        raise DiscoveryError(
            f"STAC item {item.get('id')!r} names no MGRS tile (no grid:code, id not a "
            "Sentinel-2 product id)"
        ) from None


def item_datetime(item: dict[str, Any]) -> datetime | None:
    """The item's ``datetime`` (else ``start_datetime``) as an aware UTC datetime."""
    properties = item.get("properties") or {}
    for key in ("datetime", "start_datetime"):
        value = properties.get(key)
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                continue
            return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


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


def _selected_ids(
    selection: SceneSelection, *, offline: bool, source: str = "cdse"
) -> tuple[str, ...]:
    if selection.scene_ids:
        return validate_scene_ids(selection.scene_ids, source)
    assert selection.scene_id_file is not None
    return read_scene_id_file(selection.scene_id_file, offline=offline, source=source)


def _refuse_offline_search(selection: SceneSelection) -> None:
    flag = "--tile-ids" if selection.tile_ids else "--aoi-file"
    raise ConfigError(
        f"{flag} needs a catalogue search, which an offline run cannot do; offline runs need "
        "--scene-ids or --scene-id-file (the file `darts inference prep-data` writes)"
    )


def _is_offline(net: NetworkSettings | HttpClient) -> bool:
    from darts.net.guard import get_gate
    from darts.net.http import HttpClient

    if isinstance(net, HttpClient):
        return net.settings.offline or net.gate.offline
    return net.offline or get_gate().offline


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


def _describe_selection(selection: SceneSelection) -> str:
    if selection.tile_ids:
        return "tiles " + ", ".join(selection.tile_ids)
    if selection.aoi_file is not None:
        return f"AOI {selection.aoi_file}"
    if selection.scene_id_file is not None:
        return f"scene ids from {selection.scene_id_file}"
    shown = ", ".join(selection.scene_ids[:3])
    more = f" and {len(selection.scene_ids) - 3} more" if len(selection.scene_ids) > 3 else ""
    return f"scene ids {shown}{more}"
