"""``GET /v1/{parent=projects/*/assets/**}:listImages`` for the Sentinel-2 collection.

Query parameters, as in the real REST method (sources.md §3a):

- ``startTime`` (inclusive) / ``endTime`` (exclusive): RFC 3339 date-times, compared
  with each image's ``startTime``;
- ``region``: a GeoJSON geometry (EPSG:4326) as a JSON string; images whose footprint
  intersects it;
- ``filter``: the AIP-160 subset of :mod:`ee_filter` over ``properties``;
- ``pageSize`` (default and maximum 1000, larger values are capped as Google's list
  methods do) and ``pageToken``;
- ``view``: ``FULL`` (default) or ``BASIC``, which leaves out ``properties``.

The answer is ``{"images": [...], "nextPageToken": "..."}`` (no token on the last
page), sorted by (startTime, id). Page tokens are opaque to clients: base64url JSON
holding the offset and a digest of the query, so a token reused with other query
parameters is refused instead of silently skipping or repeating images. Unknown
parameters are a 400, as Google's APIs answer them, so a misspelt ``starttime`` is
not quietly ignored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from darts.sandbox.servers.ee_filter import FilterError, ImageFilter, parse_filter
from darts.sandbox.servers.ee_pixels import invalid
from darts.sandbox.servers.ee_sentinel2 import S2Image
from darts.sandbox.servers.stac_time import to_micros

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 1000
_PARAMETERS = {"startTime", "endTime", "region", "filter", "pageSize", "pageToken", "view"}
# Google's system parameters, accepted on every method and ignored here.
_SYSTEM_PARAMETERS = {"alt", "prettyPrint", "fields", "key", "quotaUser", "$.xgafv", "callback"}
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def list_images(images: list[S2Image], query_string: str) -> dict[str, Any]:
    """The listImages answer for ``images`` (sorted by start, id) and a query string."""
    params = _single_values(query_string)
    start = _time(params, "startTime")
    end = _time(params, "endTime")
    region = _region(params.get("region"))
    image_filter = _filter(params.get("filter"))
    full = _view(params.get("view"))
    page_size = _page_size(params.get("pageSize"))
    digest = _query_digest(params)
    offset = _offset(params.get("pageToken"), digest)

    selected = [
        image
        for image in images
        if (start is None or image.start >= start)
        and (end is None or image.start < end)
        and (region is None or shapely.intersects(image.footprint, region))
        and (image_filter is None or image_filter.matches(image.properties))
    ]
    page = selected[offset : offset + page_size]
    answer: dict[str, Any] = {"images": [image.to_json(full=full) for image in page]}
    if offset + page_size < len(selected):
        answer["nextPageToken"] = _token(offset + page_size, digest)
    return answer


def _single_values(query_string: str) -> dict[str, str]:
    try:
        parsed = parse_qs(query_string, keep_blank_values=True, strict_parsing=False)
    except ValueError:
        raise invalid("the query string cannot be parsed") from None
    values: dict[str, str] = {}
    for name, given in parsed.items():
        if name in _SYSTEM_PARAMETERS:
            continue
        if name not in _PARAMETERS:
            raise invalid(
                f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query '
                f"parameter. Field '{name}' could not be found in request message."
            )
        if len(given) > 1:
            raise invalid(f"query parameter {name!r} is given {len(given)} times")
        values[name] = given[0]
    return values


def _time(params: dict[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    match = _RFC3339.match(text.strip())
    if match is None:
        raise invalid(
            f"Invalid value at '{name}' ({text!r}): use an RFC 3339 date-time such as "
            "2023-07-01T00:00:00Z"
        )
    date, clock, fraction, zone = match.groups()
    micros = (fraction or ".0")[1:7].ljust(6, "0")
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        moment = datetime.fromisoformat(f"{date}T{clock}.{micros}{zone}")
    except ValueError as exc:
        raise invalid(f"Invalid value at '{name}' ({text!r}): {exc}") from None
    return to_micros(moment.astimezone(UTC))


def _region(text: str | None) -> BaseGeometry | None:
    if text is None or text == "":
        return None
    try:
        geojson = json.loads(text)
        if not isinstance(geojson, dict) or geojson.get("type") in ("Feature", None):
            raise ValueError("not a GeoJSON geometry object")
        geometry = shape(geojson)
    except (ValueError, TypeError, KeyError, AttributeError, shapely.errors.GEOSException) as exc:
        raise invalid(
            f"Invalid value at 'region': expected a GeoJSON geometry (EPSG:4326) as a JSON "
            f"string ({exc})"
        ) from None
    if geometry.is_empty:
        raise invalid("Invalid value at 'region': the geometry is empty")
    return geometry


def _filter(text: str | None) -> ImageFilter | None:
    if text is None or text.strip() == "":
        return None
    try:
        return parse_filter(text)
    except FilterError as exc:
        raise invalid(f"Invalid filter: {exc}") from None


def _view(text: str | None) -> bool:
    if text in (None, "", "FULL", "IMAGE_VIEW_UNSPECIFIED"):
        return True
    if text == "BASIC":
        return False
    raise invalid(f"Invalid value at 'view' ({text!r}): use FULL or BASIC")


def _page_size(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = int(text)
    except ValueError:
        raise invalid(f"Invalid value at 'page_size' (TYPE_INT32), {text!r}") from None
    if size < 0:
        raise invalid(f"pageSize must not be negative, got {size}")
    return DEFAULT_PAGE_SIZE if size == 0 else min(size, MAX_PAGE_SIZE)


def _query_digest(params: dict[str, str]) -> str:
    relevant = {k: v for k, v in params.items() if k not in ("pageSize", "pageToken", "view")}
    text = json.dumps(relevant, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _token(offset: int, digest: str) -> str:
    raw = json.dumps({"offset": offset, "query": digest}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _offset(token: str | None, digest: str) -> int:
    if token is None or token == "":
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        offset = int(data["offset"])
        query = data["query"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise invalid("Invalid page token.") from None
    if query != digest or offset < 0:
        raise invalid(
            "Invalid page token: it belongs to a listImages request with other "
            "startTime, endTime, region or filter."
        )
    return offset
