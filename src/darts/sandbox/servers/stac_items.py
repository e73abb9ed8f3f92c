"""The in-memory item index of one collection, built once from the item JSON files.

Geometries and times are parsed once at load, into arrays, so that the spatial and
temporal parts of a search are vectorised and only the survivors meet the (slower)
CQL2 evaluation.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from darts.sandbox.servers.stac_config import CollectionSpec
from darts.sandbox.servers.stac_time import from_micros, parse_item_instant

# Keys of an item that CQL2 filters can refer to; the (large) assets and links stay out
# of what is handed to cql2 for every test.
_FILTER_KEYS = ("id", "collection", "geometry", "bbox", "properties")
_LAST = 2**62  # sorts items without a time after all others


@dataclass
class ItemRecord:
    """One item and what search needs of it, precomputed."""

    id: str
    collection: str
    item: dict[str, Any]
    geometry: BaseGeometry | None
    start: int | None  # microseconds; start_datetime, else datetime
    end: int | None  # end_datetime, else datetime
    time: int | None  # datetime, else start_datetime: what "datetime" sorts on
    filter_view: dict[str, Any] = field(repr=False)
    # Answers are cached as JSON text per rendering context (see stac_api); keyed by
    # a hashable context object this module need not know.
    rendered: dict[Any, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def properties(self) -> dict[str, Any]:
        return self.item.get("properties") or {}

    def sort_value(self, name: str) -> Any:
        """The value ``sortby`` orders on; times compare as instants, not as text."""
        if name in ("id", "collection"):
            return getattr(self, name)
        if name == "datetime":
            return self.time
        value = self.properties.get(name)
        if name.endswith("datetime") or name in ("created", "updated", "published"):
            return parse_item_instant(value)
        return value


class CollectionIndex:
    """All items of one collection, in default order (datetime, then id)."""

    def __init__(self, spec: CollectionSpec, records: list[ItemRecord]) -> None:
        self.spec = spec
        records.sort(key=lambda r: (_LAST if r.time is None else r.time, r.id))
        self.records = records
        self.by_id = {r.id: r for r in records}
        self._positions = {r.id: i for i, r in enumerate(records)}
        self._geometries = np.array([r.geometry for r in records], dtype=object)
        self._has_time = np.array([r.start is not None for r in records], dtype=bool)
        self._starts = np.array([r.start or 0 for r in records], dtype=np.int64)
        self._ends = np.array([r.end or 0 for r in records], dtype=np.int64)

    @classmethod
    def load(cls, spec: CollectionSpec) -> CollectionIndex:
        records: dict[str, ItemRecord] = {}
        for item in spec.extra_items:
            record = _record(copy.deepcopy(item), spec.id, source="extra item")
            records[record.id] = record
        if spec.items_dir.is_dir():
            for path in sorted(spec.items_dir.glob("*.json")):
                try:
                    item = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError) as err:
                    raise ValueError(f"Cannot read STAC item {path}: {err}") from err
                record = _record(item, spec.id, source=str(path))
                records[record.id] = record  # a file wins over an extra item
        return cls(spec, list(records.values()))

    def select(
        self,
        ids: list[str] | None,
        geometry: BaseGeometry | None,
        interval: tuple[int, int] | None,
    ) -> list[ItemRecord]:
        """Items passing the id, spatial and temporal tests, in default order."""
        mask = np.ones(len(self.records), dtype=bool)
        if ids is not None:
            mask[:] = False
            mask[[self._positions[i] for i in ids if i in self._positions]] = True
        if geometry is not None and len(self.records):
            mask &= shapely.intersects(self._geometries, geometry)
        if interval is not None:
            start, end = interval
            mask &= self._has_time & (self._ends >= start) & (self._starts <= end)
        return [self.records[i] for i in np.flatnonzero(mask)]

    def extent(self) -> dict[str, Any]:
        """Spatial and temporal extent of the items, for documents that lack one."""
        bounds = shapely.total_bounds(self._geometries) if len(self.records) else None
        bbox = (
            [float(b) for b in bounds]
            if bounds is not None and np.all(np.isfinite(bounds))
            else [-180.0, -90.0, 180.0, 90.0]
        )
        times = self._has_time
        interval = (
            [from_micros(int(self._starts[times].min())), from_micros(int(self._ends[times].max()))]
            if times.any()
            else [None, None]
        )
        return {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [interval]}}


def _record(item: Any, collection_id: str, source: str) -> ItemRecord:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        raise ValueError(f"{source}: not a STAC item (no string 'id')")
    # The folder decides the collection, whatever the file says.
    item["collection"] = collection_id
    properties = item.get("properties") or {}
    try:
        geometry = shape(item["geometry"]) if item.get("geometry") else None
    except (KeyError, TypeError, ValueError, shapely.errors.GEOSException) as err:
        raise ValueError(f"{source}: invalid geometry: {err}") from err
    instant = parse_item_instant(properties.get("datetime"))
    start = _first(parse_item_instant(properties.get("start_datetime")), instant)
    end = _first(parse_item_instant(properties.get("end_datetime")), instant)
    return ItemRecord(
        id=item["id"],
        collection=collection_id,
        item=item,
        geometry=geometry,
        start=_first(start, end),
        end=_first(end, start),
        time=_first(instant, start),
        filter_view={k: item[k] for k in _FILTER_KEYS if k in item},
    )


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)
