"""Anonymous, range-capable static file serving (WSGI).

GDAL reads COGs over HTTP with byte ranges and Python's ``http.server`` cannot answer
them, so this app implements what the public PGC bucket and data server do:
``Range: bytes=a-b | a- | -n`` (206 with ``Content-Range``; several ranges give a
``multipart/byteranges`` answer), 416 for unsatisfiable ranges, ``If-Range``, HEAD,
strong ETags with ``If-None-Match`` / ``If-Modified-Since`` (304), ``Accept-Ranges``,
404 for anything missing, and no way out of the served folder.
"""

from __future__ import annotations

import email.utils
import hashlib
import mimetypes
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from darts.sandbox.servers.runner import StartResponse, WSGIEnviron

# Large reads keep the per-chunk Python overhead small next to the copy itself
# (measured: 1 MiB chunks already reach the loopback/socket limit).
CHUNK_SIZE = 1 << 20

_EXTRA_TYPES = {
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".jp2": "image/jp2",
    ".parquet": "application/vnd.apache.parquet",
    ".zip": "application/zip",
    ".json": "application/json",
}


@dataclass(frozen=True)
class Resource:
    """Something to serve: a file on disk or bytes in memory."""

    size: int
    etag: str
    last_modified: float  # seconds since the epoch
    content_type: str
    path: Path | None = None
    data: bytes | None = None

    def chunks(self, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start..end`` (inclusive), in chunks of at most CHUNK_SIZE."""
        if self.data is not None:
            view = memoryview(self.data)
            for offset in range(start, end + 1, CHUNK_SIZE):
                yield bytes(view[offset : min(offset + CHUNK_SIZE, end + 1)])
            return
        assert self.path is not None
        remaining = end - start + 1
        with open(self.path, "rb", buffering=0) as f:
            f.seek(start)
            while remaining > 0:
                chunk = f.read(min(CHUNK_SIZE, remaining))
                if not chunk:
                    # The file shrank while we were serving it; the client sees a short
                    # body (Content-Length was already sent), which is the truth.
                    return
                remaining -= len(chunk)
                yield chunk


def content_type_for(name: str) -> str:
    suffix = os.path.splitext(name)[1].lower()
    if suffix in _EXTRA_TYPES:
        return _EXTRA_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def file_resource(path: Path, content_type: str | None = None) -> Resource:
    stat = path.stat()
    # Size + mtime identify a version of a file well enough (like nginx's ETag) without
    # hashing gigabytes at start-up.
    etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
    return Resource(
        size=stat.st_size,
        etag=etag,
        last_modified=stat.st_mtime,
        content_type=content_type or content_type_for(path.name),
        path=path,
    )


def bytes_resource(data: bytes, content_type: str, last_modified: float = 0.0) -> Resource:
    etag = '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'
    return Resource(
        size=len(data),
        etag=etag,
        last_modified=last_modified,
        content_type=content_type,
        data=data,
    )


def parse_range(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """Parse a Range header against a resource of ``size`` bytes (RFC 9110 §14).

    Returns None when the header is absent or invalid (serve the whole resource: an
    invalid Range header is ignored), an empty list when no range is satisfiable
    (answer 416), else the satisfiable ranges as inclusive (start, end) pairs.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return None
    ranges: list[tuple[int, int]] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        first, dash, last = part.partition("-")
        first, last = first.strip(), last.strip()
        if not dash or not (first.isdigit() or (not first and last.isdigit())):
            return None
        if last and not last.isdigit():
            return None
        if not first:  # suffix range: the last n bytes
            length = int(last)
            if length > 0 and size > 0:
                ranges.append((max(0, size - length), size - 1))
            continue
        start = int(first)
        if last and int(last) < start:
            return None  # syntactically invalid: the whole header is ignored
        if start < size:
            ranges.append((start, min(int(last), size - 1) if last else size - 1))
    return ranges


def serve(
    environ: WSGIEnviron, start_response: StartResponse, resource: Resource
) -> Iterable[bytes]:
    """Answer a GET or HEAD for ``resource``, honouring Range and conditional headers."""
    method = environ.get("REQUEST_METHOD", "GET")
    if method not in ("GET", "HEAD"):
        allow = [("Allow", "GET, HEAD")]
        return _plain(environ, start_response, 405, "method not allowed\n", allow)

    base_headers = [
        ("Accept-Ranges", "bytes"),
        ("ETag", resource.etag),
        ("Last-Modified", email.utils.formatdate(resource.last_modified, usegmt=True)),
    ]
    if _not_modified(environ, resource):
        start_response("304 Not Modified", base_headers)
        return []

    ranges = parse_range(environ.get("HTTP_RANGE"), resource.size)
    if ranges is not None and not _if_range_holds(environ.get("HTTP_IF_RANGE"), resource):
        ranges = None  # the client's copy is stale: it must get the whole new version
    head = method == "HEAD"

    if ranges is None:
        headers = [
            *base_headers,
            ("Content-Type", resource.content_type),
            ("Content-Length", str(resource.size)),
        ]
        start_response("200 OK", headers)
        return [] if head or resource.size == 0 else resource.chunks(0, resource.size - 1)

    if not ranges:
        headers = [*base_headers, ("Content-Range", f"bytes */{resource.size}")]
        return _plain(environ, start_response, 416, "range not satisfiable\n", headers)

    if len(ranges) == 1:
        start, end = ranges[0]
        headers = [
            *base_headers,
            ("Content-Type", resource.content_type),
            ("Content-Range", f"bytes {start}-{end}/{resource.size}"),
            ("Content-Length", str(end - start + 1)),
        ]
        start_response("206 Partial Content", headers)
        return [] if head else resource.chunks(start, end)

    boundary = secrets.token_hex(12)
    parts = [
        (
            (
                f"\r\n--{boundary}\r\nContent-Type: {resource.content_type}\r\n"
                f"Content-Range: bytes {start}-{end}/{resource.size}\r\n\r\n"
            ).encode("latin-1"),
            start,
            end,
        )
        for start, end in ranges
    ]
    closing = f"\r\n--{boundary}--\r\n".encode("latin-1")
    length = sum(len(p) + end - start + 1 for p, start, end in parts) + len(closing)
    headers = [
        *base_headers,
        ("Content-Type", f"multipart/byteranges; boundary={boundary}"),
        ("Content-Length", str(length)),
    ]
    start_response("206 Partial Content", headers)
    if head:
        return []

    def multipart() -> Iterator[bytes]:
        for preamble, start, end in parts:
            yield preamble
            yield from resource.chunks(start, end)
        yield closing

    return multipart()


class RangeFileApp:
    """Serves the files under ``root`` at their relative paths, plus ``routes``
    (URL path -> file) for files that live elsewhere."""

    def __init__(self, root: Path, routes: Mapping[str, Path] | None = None) -> None:
        self.root = Path(root).resolve()
        self.routes = {path: Path(file) for path, file in (routes or {}).items()}

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        path = request_path(environ)
        if path is None:
            return _plain(environ, start_response, 400, "bad request path\n")
        target = self.routes.get(path) or self.resolve(path)
        if target is None or not target.is_file():
            return not_found(environ, start_response)
        try:
            resource = file_resource(target)
        except OSError:
            return not_found(environ, start_response)
        return serve(environ, start_response, resource)

    def resolve(self, path: str) -> Path | None:
        """The file for a URL path, or None if it would leave the served folder."""
        relative = path.lstrip("/")
        if not relative or "\x00" in relative:
            return None
        if any(part in ("", ".", "..") for part in relative.split("/")):
            return None
        target = (self.root / relative).resolve()
        # resolve() follows symlinks too, so a link out of the folder is refused as well.
        if not target.is_relative_to(self.root):
            return None
        return target


def range_file_app(root: Path, routes: dict[str, Path] | None = None) -> RangeFileApp:
    """A WSGI app serving ``root`` (and ``routes``) anonymously with byte ranges."""
    return RangeFileApp(root, routes)


def request_path(environ: WSGIEnviron) -> str | None:
    """The decoded request path, or None if it is not valid UTF-8."""
    # WSGI hands over the path as latin-1 decoded bytes ("the WSGI encoding dance").
    raw = environ.get("PATH_INFO", "") or "/"
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return None


def not_found(environ: WSGIEnviron, start_response: StartResponse) -> list[bytes]:
    return _plain(environ, start_response, 404, "not found\n")


def _plain(
    environ: WSGIEnviron,
    start_response: StartResponse,
    status: int,
    text: str,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    body = text.encode()
    reason = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}.get(
        status, "Range Not Satisfiable" if status == 416 else "Error"
    )
    start_response(
        f"{status} {reason}",
        [
            *(headers or []),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


def _not_modified(environ: WSGIEnviron, resource: Resource) -> bool:
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or resource.etag in tags
    since = environ.get("HTTP_IF_MODIFIED_SINCE")
    if since:
        try:
            parsed = email.utils.parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        return int(resource.last_modified) <= parsed.timestamp()
    return False


def _if_range_holds(if_range: str | None, resource: Resource) -> bool:
    if not if_range:
        return True
    if_range = if_range.strip()
    if if_range.startswith('"'):
        return if_range == resource.etag
    try:
        parsed = email.utils.parsedate_to_datetime(if_range)
    except (TypeError, ValueError):
        return False
    return int(resource.last_modified) <= parsed.timestamp()
