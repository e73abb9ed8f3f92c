"""Checking that a range answer holds exactly the bytes asked for.

A byte-range GET can come back short without any transport error: a proxy that drops
``Content-Length``, a server that closes early on a keep-alive-less connection, an
object replaced between two requests. Raster decoders fed such bytes either fail
deep inside a codec or, worse, decode garbage. So every range answer is checked here
against what was asked, and a mismatch is a `ChecksumMismatch` ("length"), which the
retry policy re-fetches like a truncated body.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from darts.net.errors import ChecksumMismatch
from darts.net.redact import redact_url

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class RangeBody:
    """The bytes ``[start, start + len(data))`` of an object of ``total_size`` bytes
    (None when the server did not say)."""

    data: bytes
    start: int
    total_size: int | None

    @property
    def stop(self) -> int:
        return self.start + len(self.data)


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """(first, last, total) of a ``Content-Range: bytes first-last/total`` header; total
    None for ``*``; None when absent or not of that form."""
    if value is None:
        return None
    match = _CONTENT_RANGE.match(value)
    if match is None:
        return None
    first, last, total = match.groups()
    return int(first), int(last), None if total == "*" else int(total)


def check_range_answer(
    url: str,
    start: int,
    stop: int,
    status: int,
    headers: Mapping[str, str],
    data: bytes,
) -> RangeBody:
    """The bytes of ``[start, stop)`` from a 200/206 answer, or `ChecksumMismatch`.

    A 206 must cover exactly ``[start, min(stop, total))`` and carry that many bytes; a
    200 (the server ignored Range) must carry its whole ``Content-Length``, and is
    sliced. A range reaching past the end of the object is clipped, as servers do.
    """
    name = redact_url(url)
    if status == 200:
        declared = headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) != len(data):
            raise ChecksumMismatch(name, "length", f"{declared} bytes", f"{len(data)} bytes")
        return RangeBody(data[start:stop], start, len(data))
    parsed = parse_content_range(headers.get("Content-Range"))
    if parsed is None:
        raise ChecksumMismatch(
            name, "Content-Range", f"bytes {start}-{stop - 1}/…", repr(headers.get("Content-Range"))
        )
    first, last, total = parsed
    end = stop if total is None else min(stop, total)
    if first != start or last != end - 1:
        raise ChecksumMismatch(name, "range", f"bytes {start}-{end - 1}", f"bytes {first}-{last}")
    if len(data) != end - start:
        raise ChecksumMismatch(name, "length", f"{end - start} bytes", f"{len(data)} bytes")
    return RangeBody(data, start, total)
