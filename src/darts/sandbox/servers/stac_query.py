"""Turning GET query strings and POST bodies of item search into one request object.

Both forms end in the same ``SearchRequest`` so that the two methods cannot drift
apart; every malformed value is a 400 with a message naming the parameter.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from darts.sandbox.servers.stac_errors import bad_request
from darts.sandbox.servers.stac_filter import (
    CompiledFilter,
    combine,
    parse_filter,
    query_to_cql2,
)
from darts.sandbox.servers.stac_time import parse_request_interval

_GEOMETRY_TYPES = {
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
}
_CRS84 = {
    "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    "https://www.opengis.net/def/crs/OGC/1.3/CRS84",
    "http://www.opengis.net/def/crs/EPSG/0/4326",
    "EPSG:4326",
}


@dataclass
class SearchRequest:
    """An item search, whichever way it was asked."""

    ids: list[str] | None = None
    collections: list[str] | None = None
    geometry: BaseGeometry | None = None  # from bbox or intersects
    interval: tuple[int, int] | None = None  # microseconds, inclusive
    filter: CompiledFilter | None = None
    sortby: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    limit: int | None = None  # None: the collection default
    offset: int = 0  # position of the first item of this page, from the token


def search_from_args(args: Mapping[str, str]) -> SearchRequest:
    """A GET ``/search`` (or ``/collections/{id}/items``) query string."""
    request = SearchRequest()
    if args.get("ids"):
        request.ids = _split(args["ids"])
    if args.get("collections"):
        request.collections = _split(args["collections"])
    if args.get("bbox") and args.get("intersects"):
        raise bad_request("Use either bbox or intersects, not both")
    if args.get("bbox"):
        request.geometry = parse_bbox(_split(args["bbox"]))
    if args.get("intersects"):
        request.geometry = parse_intersects(_json_param("intersects", args["intersects"]))
    if args.get("datetime"):
        request.interval = parse_request_interval(args["datetime"])
    _check_filter_crs(args.get("filter-crs"))
    if args.get("filter"):
        request.filter = parse_filter(args["filter"], args.get("filter-lang"), "cql2-text")
    if args.get("query"):
        request.filter = combine(request.filter, _query_filter(_json_param("query", args["query"])))
    if args.get("sortby"):
        request.sortby = parse_sortby_text(args["sortby"])
    if args.get("limit"):
        request.limit = parse_limit(args["limit"])
    if args.get("token"):
        request.offset = decode_token(args["token"])
    return request


def search_from_body(body: Any) -> SearchRequest:
    """A POST ``/search`` JSON body; ``limit`` counts only at the top level."""
    if not isinstance(body, dict):
        raise bad_request("The search body must be a JSON object")
    request = SearchRequest()
    if body.get("ids") is not None:
        request.ids = _string_list("ids", body["ids"]) or None
    if body.get("collections") is not None:
        request.collections = _string_list("collections", body["collections"]) or None
    if body.get("bbox") is not None and body.get("intersects") is not None:
        raise bad_request("Use either bbox or intersects, not both")
    if body.get("bbox") is not None:
        bbox = body["bbox"]
        request.geometry = parse_bbox(_split(bbox) if isinstance(bbox, str) else bbox)
    if body.get("intersects") is not None:
        request.geometry = parse_intersects(body["intersects"])
    if body.get("datetime") is not None:
        if not isinstance(body["datetime"], str):
            raise bad_request("datetime must be a string", "InvalidDatetime")
        request.interval = parse_request_interval(body["datetime"])
    _check_filter_crs(body.get("filter-crs"))
    if body.get("filter") is not None:
        lang = body.get("filter-lang", body.get("filter_lang"))
        request.filter = parse_filter(body["filter"], lang, "cql2-json")
    if body.get("query") is not None:
        request.filter = combine(request.filter, _query_filter(body["query"]))
    if body.get("sortby") is not None:
        request.sortby = parse_sortby_json(body["sortby"])
    if body.get("limit") is not None:
        request.limit = parse_limit(body["limit"])
    if body.get("token") is not None:
        request.offset = decode_token(body["token"])
    return request


def parse_bbox(values: Any) -> BaseGeometry:
    """A 2D or 3D bbox in WGS84; one crossing the antimeridian (west > east) is split."""
    if not isinstance(values, list) or len(values) not in (4, 6):
        raise bad_request(f"bbox must have 4 or 6 numbers, got {values!r}", "InvalidBbox")
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError) as err:
        raise bad_request(f"bbox must be numbers, got {values!r}", "InvalidBbox") from err
    if isinstance(values[0], bool) or not all(math.isfinite(n) for n in numbers):
        raise bad_request(f"bbox must be finite numbers, got {values!r}", "InvalidBbox")
    west, south, east, north = numbers if len(numbers) == 4 else [numbers[i] for i in (0, 1, 3, 4)]
    if not (-90 <= south <= north <= 90) or not (-180 <= west <= 180 and -180 <= east <= 180):
        raise bad_request(
            f"bbox {values!r} is not [west, south, east, north] in degrees", "InvalidBbox"
        )
    if west > east:
        return shapely.union(box(west, south, 180, north), box(-180, south, east, north))
    return box(west, south, east, north)


def parse_intersects(value: Any) -> BaseGeometry:
    """A GeoJSON geometry object."""
    if not isinstance(value, dict) or value.get("type") not in _GEOMETRY_TYPES:
        raise bad_request("intersects must be a GeoJSON geometry object", "InvalidGeometry")
    try:
        geometry = shape(value)
    except (KeyError, TypeError, ValueError, IndexError, shapely.errors.GEOSException) as err:
        raise bad_request(f"intersects is not a valid geometry: {err}", "InvalidGeometry") from err
    if geometry.is_empty:
        raise bad_request("intersects is an empty geometry", "InvalidGeometry")
    return geometry


def parse_sortby_text(text: str) -> list[tuple[str, bool]]:
    """``-properties.datetime,+id``; a raw ``+`` that arrived as a space means ascending."""
    order: list[tuple[str, bool]] = []
    for part in text.split(","):
        stripped = part.strip()
        if not stripped:
            continue
        descending = stripped.startswith("-")
        name = stripped.lstrip("+-").strip()
        order.append((_sort_field(name), descending))
    return order


def parse_sortby_json(value: Any) -> list[tuple[str, bool]]:
    """``[{"field": "properties.eo:cloud_cover", "direction": "asc"}, ...]``."""
    if isinstance(value, str):
        return parse_sortby_text(value)
    if not isinstance(value, list):
        raise bad_request("sortby must be a list of {field, direction} objects", "InvalidSortby")
    order: list[tuple[str, bool]] = []
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("field"), str):
            raise bad_request(f"Invalid sortby entry {entry!r}", "InvalidSortby")
        direction = str(entry.get("direction", "asc")).lower()
        if direction not in ("asc", "desc"):
            raise bad_request(f"sortby direction must be asc or desc, got {direction!r}")
        order.append((_sort_field(entry["field"]), direction == "desc"))
    return order


def parse_limit(value: Any) -> int:
    if isinstance(value, bool):
        raise bad_request(f"limit must be a positive integer, got {value!r}", "InvalidLimit")
    try:
        limit = int(value)
    except (TypeError, ValueError) as err:
        raise bad_request(
            f"limit must be a positive integer, got {value!r}", "InvalidLimit"
        ) from err
    if limit < 1 or (isinstance(value, float) and value != limit):
        raise bad_request(f"limit must be a positive integer, got {value!r}", "InvalidLimit")
    return limit


def encode_token(offset: int) -> str:
    """An opaque paging token holding the position of the next page's first item.

    The position is enough for stable paging because the catalogue is read-only and
    every ordering ends in unique tie-breakers (datetime, id, collection).
    """
    raw = json.dumps({"offset": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: Any) -> int:
    if not isinstance(token, str):
        raise bad_request("token must be a string", "InvalidToken")
    text = token.removeprefix("next:")
    try:
        padded = text + "=" * (-len(text) % 4)
        offset = json.loads(base64.urlsafe_b64decode(padded))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError) as err:
        raise bad_request(f"Invalid paging token {token!r}", "InvalidToken") from err
    if not isinstance(offset, int) or offset < 0:
        raise bad_request(f"Invalid paging token {token!r}", "InvalidToken")
    return offset


def _query_filter(query: Any) -> CompiledFilter | None:
    expression = query_to_cql2(query)
    return CompiledFilter(expression) if expression is not None else None


def _sort_field(name: str) -> str:
    name = name.strip()
    if not name:
        raise bad_request("sortby has an empty field name", "InvalidSortby")
    return name.removeprefix("properties.")


def _check_filter_crs(value: Any) -> None:
    if value is not None and value not in _CRS84:
        raise bad_request(f"filter-crs {value!r} is not supported; use CRS84", "InvalidFilter")


def _split(text: str | list[Any]) -> list[Any]:
    if isinstance(text, list):
        return text
    return [part.strip() for part in text.split(",") if part.strip()]


def _string_list(name: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return _split(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"{name} must be a list of strings")
    return value


def _json_param(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise bad_request(f"{name} is not valid JSON: {err}") from err
