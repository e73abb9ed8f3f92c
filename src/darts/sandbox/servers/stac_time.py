"""Timestamps of the STAC API: strict parsing of request values, lenient for items.

Times are kept as integer microseconds since the epoch (UTC): exact, cheap to compare
and storable in numpy arrays for the item index.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from darts.sandbox.servers.stac_errors import bad_request

# Bounds standing in for an open interval end ("..").
OPEN_START = -(2**62)
OPEN_END = 2**62

# Request values must be RFC 3339 date-times in UTC, as CDSE requires ("Z" or "+00:00").
_STRICT = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|\+00:00)$"
)
_FRACTION = re.compile(r"\.(\d+)")


def to_micros(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> str:
    """RFC 3339 text with millisecond precision, the form CDSE answers with."""
    moment = datetime.fromtimestamp(micros / 1_000_000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_request_instant(text: str) -> int:
    """A request timestamp; anything but an RFC 3339 UTC date-time is a 400."""
    match = _STRICT.match(text.strip())
    if not match:
        raise bad_request(
            f"Invalid datetime {text!r}: use RFC 3339 date-times ending in 'Z' or "
            "'+00:00', e.g. 2024-07-01T00:00:00Z",
            "InvalidDatetime",
        )
    year, month, day, hour, minute, second, fraction = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, UTC
        )
    except ValueError as err:
        raise bad_request(f"Invalid datetime {text!r}: {err}", "InvalidDatetime") from err
    return to_micros(moment)


def parse_request_interval(text: str) -> tuple[int, int]:
    """The ``datetime`` parameter: an instant, ``a/b``, ``../b``, ``a/..`` (or empty end)."""
    text = text.strip()
    if "/" not in text:
        instant = parse_request_instant(text)
        return instant, instant
    parts = text.split("/")
    if len(parts) != 2:
        raise bad_request(f"Invalid datetime interval {text!r}", "InvalidDatetime")
    start_text, end_text = (p.strip() for p in parts)
    start = OPEN_START if start_text in ("", "..") else parse_request_instant(start_text)
    end = OPEN_END if end_text in ("", "..") else parse_request_instant(end_text)
    if start == OPEN_START and end == OPEN_END:
        raise bad_request(f"Datetime interval {text!r} is open at both ends", "InvalidDatetime")
    if start > end:
        raise bad_request(f"Datetime interval {text!r} ends before it starts", "InvalidDatetime")
    return start, end


def parse_item_instant(value: object) -> int | None:
    """A timestamp inside an item; items come from our own files, so be lenient."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # fromisoformat takes at most 6 fraction digits.
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_micros(moment)
