"""Scene documents and selections, the same for every optical source.

Every source describes a scene as a STAC-like item document (see
`darts.sources.scene_source`); this module reads the fields all of them share
(footprint, tile, time), validates id selections without any connection, and words
queries and empty results for messages.

Offline, nothing may search: `discover_offline` returns the ids the user gave or
prep-data saved and refuses tile/AOI selections before any connection is considered
(pitfall 6: the reference searched anyway when the saved id file was missing).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from darts.errors import EXIT_NETWORK, ConfigError, DartsError
from darts.sources.query import SceneFilters, SceneSelection, date_spans, describe_filters
from darts.sources.scene_ids import parse_scene_id, read_scene_id_file, validate_scene_ids

_GRID_PREFIX = "MGRS-"


class DiscoveryError(DartsError):
    """Scene discovery cannot give what was asked (e.g. scene ids the catalogue lacks)."""


class CatalogueUnavailable(DiscoveryError):
    """The catalogue could not be searched (unreachable, or failing after the retries):
    the network's exit code, so a job script can tell "try later" from "fix the input"."""

    exit_code = EXIT_NETWORK


def discover_offline(selection: SceneSelection, *, source: str = "cdse") -> list[str]:
    """The scene ids of an offline run, from ``--scene-ids`` or ``--scene-id-file``.

    Opens no connection. Tile ids and an AOI need a catalogue search, so they are
    refused with a message saying how to prepare the run.
    """
    if selection.needs_search:
        refuse_offline_search(selection)
    return list(selected_ids(selection, source=source))


def describe_query(
    selection: SceneSelection, filters: SceneFilters, *, today: date | None = None
) -> str:
    """The query in words, for logs and the "nothing found" message."""
    what = describe_selection(selection)
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


def selected_ids(selection: SceneSelection, *, source: str = "cdse") -> tuple[str, ...]:
    if selection.scene_ids:
        return validate_scene_ids(selection.scene_ids, source)
    assert selection.scene_id_file is not None
    return read_scene_id_file(
        selection.scene_id_file, source=source, option=selection.scene_id_file_option
    )


def refuse_offline_search(selection: SceneSelection) -> None:
    flag = "--tile-ids" if selection.tile_ids else "--aoi-file"
    raise ConfigError(
        f"{flag} needs a catalogue search, which an offline run cannot do; give the scenes "
        "with --scene-ids or --scene-id-file, or pass --prep-data-scene-id-file FILE: the "
        f"file `darts inference prep-data sentinel2 {flag} ... --prep-data-scene-id-file "
        "FILE --optical --aux` wrote"
    )


def describe_selection(selection: SceneSelection) -> str:
    if selection.tile_ids:
        return "tiles " + ", ".join(selection.tile_ids)
    if selection.aoi_file is not None:
        return f"AOI {selection.aoi_file}"
    if selection.scene_id_file is not None:
        return f"scene ids from {selection.scene_id_file}"
    shown = ", ".join(selection.scene_ids[:3])
    more = f" and {len(selection.scene_ids) - 3} more" if len(selection.scene_ids) > 3 else ""
    return f"scene ids {shown}{more}"


def discover_scenes(source: Any, selection: SceneSelection, filters: SceneFilters) -> list[dict]:
    """``source.discover`` with a failing catalogue turned into one clear error: the
    retries are spent by then, so the message says what was searched and what to
    check, not a traceback of the connection."""
    from darts.net.errors import CredentialsError, NetworkError, OfflineError

    try:
        return source.discover(selection, filters)
    except (CredentialsError, OfflineError):
        raise
    except NetworkError as error:
        raise CatalogueUnavailable(
            f"the {source.name} catalogue could not be searched for "
            f"{describe_query(selection, filters)}: {error}; check the endpoint settings "
            "(`darts debug-paths`) and the network, then run again"
        ) from None


def describe_scene(scene: Any, keys: Any, grid: Any, download_bytes: int, bytes_exact: bool) -> Any:
    """A `SceneDescription` of a scene document, with what its source computed."""
    from darts.sources.scene_source import SceneDescription

    moment = item_datetime(dict(scene))
    return SceneDescription(
        scene_id=str(scene.get("id")),
        datetime=moment.isoformat().replace("+00:00", "Z") if moment else None,
        footprint=scene_footprint(dict(scene)),
        grid=grid,
        bands=tuple(keys),
        download_bytes=int(download_bytes),
        bytes_exact=bytes_exact,
    )


def file_sizes(scene: Any, asset_keys: Any) -> tuple[int, bool]:
    """(Σ ``file:size`` of the assets, whether every asset has one)."""
    assets = scene.get("assets") or {}
    sizes = [(assets.get(key) or {}).get("file:size") for key in asset_keys]
    return sum(int(size or 0) for size in sizes), all(size is not None for size in sizes)


def matches(document: Any, selection: SceneSelection, filters: SceneFilters) -> bool:
    """Whether a scene document falls in a tile or AOI ``selection`` and ``filters``:
    what a catalogue search would have returned it for, decided from the document
    alone (for choosing among scenes already staged, offline). Cover filters apply to
    documents that carry the cover (mosaics carry none)."""
    from darts.sources.aoi import read_aoi

    if selection.tile_ids:
        try:
            if item_tile(document) not in selection.tile_ids:
                return False
        except DiscoveryError:
            return False
    if selection.aoi_file is not None and not scene_footprint(document).intersects(
        read_aoi(selection.aoi_file)
    ):
        return False
    moment = item_datetime(document)
    if moment is None:
        return False
    spans = date_spans(filters, datetime.now(UTC).date())
    if not any(start <= moment <= end for start, end in spans):
        return False
    properties = document.get("properties") or {}
    for active, key, limit in (
        (filters.cloud_filter, "eo:cloud_cover", filters.max_cloud_cover),
        (filters.snow_filter, "eo:snow_cover", filters.max_snow_cover),
    ):
        value = properties.get(key)
        if active and isinstance(value, int | float) and value > limit:
            return False
    return True
