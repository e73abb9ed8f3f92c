"""Running an item search over the collection indexes: select, filter, order, page."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from darts.sandbox.servers.stac_config import CollectionSpec
from darts.sandbox.servers.stac_errors import bad_request
from darts.sandbox.servers.stac_items import CollectionIndex, ItemRecord
from darts.sandbox.servers.stac_query import SearchRequest

_LAST = 2**62  # sorts items without a time after all others


@dataclass
class SearchPage:
    """One page of a search: its items, how many matched in all, where the next starts."""

    records: list[ItemRecord]
    matched: int
    limit: int
    next_offset: int | None


def run_search(request: SearchRequest, indexes: Mapping[str, CollectionIndex]) -> SearchPage:
    """Answer ``request`` from ``indexes`` (collection id -> index, in config order)."""
    if request.collections is None:
        targets = list(indexes.values())
    else:
        unknown = [c for c in request.collections if c not in indexes]
        if unknown:
            raise bad_request(
                f"Unknown collection(s): {', '.join(unknown)}; available: {', '.join(indexes)}",
                "InvalidCollection",
            )
        targets = [indexes[c] for c in dict.fromkeys(request.collections)]
    limit = resolve_limit(request.limit, [t.spec for t in targets])

    matches: list[ItemRecord] = []
    for index in targets:
        candidates = index.select(request.ids, request.geometry, request.interval)
        if request.filter is not None:
            candidates = [r for r in candidates if request.filter.matches(r.filter_view)]
        matches.extend(candidates)

    ordered = order_records(matches, request.sortby)
    start = request.offset
    page = ordered[start : start + limit]
    next_offset = start + limit if start + limit < len(ordered) else None
    return SearchPage(records=page, matched=len(ordered), limit=limit, next_offset=next_offset)


def resolve_limit(requested: int | None, specs: list[CollectionSpec]) -> int:
    """The page size: the request's, checked against the strictest collection maximum.

    A limit over the maximum is an error rather than silently capped, because that is
    what CDSE does for ``sentinel-2-l2a`` and client code must cope with it.
    """
    if requested is None:
        return min((s.default_limit for s in specs), default=10)
    maxima = [(s.max_limit, s.id) for s in specs if s.max_limit is not None]
    if maxima:
        maximum, collection_id = min(maxima)
        if requested > maximum:
            raise bad_request(
                f"limit: Input should be less than or equal to {maximum} "
                f"(collection {collection_id}), got {requested}",
                "RequestValidationError",
            )
    return requested


def order_records(records: list[ItemRecord], sortby: list[tuple[str, bool]]) -> list[ItemRecord]:
    """``sortby`` order; ties (and the default) go by datetime, id, collection.

    Python's sort is stable also with ``reverse=True``, so sorting by the least
    significant key first gives a total, deterministic order; that determinism is
    what keeps offset-based paging tokens correct. Items lacking a sort value go last
    whatever the direction.
    """
    ordered = sorted(records, key=_default_key)
    for name, descending in reversed(sortby):
        keyed = [(r.sort_value(name), r) for r in ordered]
        present = [(v, r) for v, r in keyed if v is not None]
        missing = [r for v, r in keyed if v is None]
        present.sort(key=lambda pair: _comparable(pair[0]), reverse=descending)
        ordered = [r for _, r in present] + missing
    return ordered


def _default_key(record: ItemRecord) -> tuple[int, str, str]:
    return (_LAST if record.time is None else record.time, record.id, record.collection)


def _comparable(value: Any) -> tuple[int, Any]:
    """Values of mixed JSON types compare by type first, so sorting never raises."""
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (0, float(value))
    if isinstance(value, str):
        return (1, value)
    return (2, json.dumps(value, sort_keys=True))
