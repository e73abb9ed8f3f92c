"""The S3 stand-in for CDSE's ``eodata`` bucket: moto's S3 server behind a SigV4 check.

moto answers the S3 API (GET with Range, HEAD, ListObjectsV2, path-style addressing,
S3 XML errors); this module adds what a sandbox needs on top:

- **Authentication.** Every request must be SigV4-signed with the configured key pair
  (see :mod:`.sigv4` for why moto's own IAM mode is not used). Unsigned requests get
  403 ``AccessDenied``, an unknown key 403 ``InvalidAccessKeyId``, a wrong secret 403
  ``SignatureDoesNotMatch``, as S3 answers.
- **Fast start-up.** Every file ``<s3_root>/<bucket>/<key>`` becomes an object without
  copying it: moto keeps object bodies in a ``SpooledTemporaryFile`` per key (in memory
  up to ~5 MB, then a temp file), which would mean writing the whole world a second
  time. Here each key reads straight from the world file instead.
- **Isolation.** moto's state is process-global, keyed by account id. Each stand-in
  uses its own account (set per request, clients cannot choose it), so several worlds
  can be served at once and ``close()`` removes exactly what one stand-in loaded.
- **Read-only by default**, like ``eodata``: writes are refused with 403 after auth.
- **Range reads without reading the whole object.** moto serves a range by reading the
  entire object and slicing it (~0.5 ms per MB of *object* size per request; GDAL makes
  hundreds of small range reads per band). Plain GET/HEAD of an existing object are
  therefore answered from the file by this module with the same headers moto sends;
  anything unusual (conditional headers, ``partNumber``, response overrides, odd
  ranges, missing keys, listings) still goes to moto. ``direct_reads=False`` turns this
  off to measure moto itself.

ETags are not MD5s of the content (hashing the full world at start-up would take
seconds); they have the same format and change when a file changes, and real S3 ETags
are not MD5s either for multipart uploads, so clients cannot rely on that anyway.

Caveat: ``moto.mock_aws()`` resets every moto backend in the process when it starts, so
a test must not run ``mock_aws`` while a stand-in serves in the same process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from darts.sandbox.layout import WorldLayout
from darts.sandbox.servers.runner import StartResponse, WSGIEnviron
from darts.sandbox.servers.sigv4 import EMPTY_SHA256, AuthFailure, SigV4Verifier
from darts.sandbox.servers.static import Resource, serve

_log = logging.getLogger("darts.sandbox.servers.s3")

REGION = "us-east-1"
# Accounts 9999xxxxxxxx are never used by moto's defaults (123456789012).
_ACCOUNTS = itertools.count(1)
_ACCOUNT_LOCK = threading.Lock()
_ACCOUNT_ENV = "HTTP_X_MOTO_ACCOUNT_ID"

_READS = ("GET", "HEAD")
# Query strings of a GET that only reads bytes (botocore adds x-id=GetObject).
_DIRECT_READ_QUERY_OK = {"", "x-id=GetObject"}
_CONDITIONAL_HEADERS = (
    "HTTP_IF_MATCH",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_UNMODIFIED_SINCE",
    "HTTP_IF_RANGE",
)
# What moto's FakeKey.response_dict holds for an object loaded from the world.
_PLAIN_OBJECT_HEADERS = {"ETag", "last-modified", "content-length"}


def _new_account_id() -> str:
    pinned = os.environ.get("MOTO_ACCOUNT_ID")
    if pinned:
        # moto then ignores the per-request account; stand-ins share one namespace.
        _log.warning("MOTO_ACCOUNT_ID is set: S3 stand-ins in this process share state")
        return pinned
    with _ACCOUNT_LOCK:
        return f"9999{next(_ACCOUNTS):08d}"


class _FileBody:
    """Read-only, file-backed replacement for the buffer in which moto keeps an
    object's bytes. It opens the file per read, so thousands of objects hold no file
    descriptors, and reads see the world file as it is on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._position = 0

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._position = offset
        elif whence == io.SEEK_CUR:
            self._position += offset
        else:
            self._position = self.path.stat().st_size + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(self._position)
            data = f.read() if size is None or size < 0 else f.read(size)
        self._position += len(data)
        return data

    def write(self, data: bytes) -> int:
        raise io.UnsupportedOperation("objects loaded from the sandbox world are read-only")

    def truncate(self, size: int | None = None) -> int:
        raise io.UnsupportedOperation("objects loaded from the sandbox world are read-only")

    def close(self) -> None:
        pass


def _etag(bucket: str, key: str, stat: os.stat_result) -> str:
    identity = f"{bucket}/{key}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    return hashlib.md5(identity, usedforsecurity=False).hexdigest()


def s3_error_xml(code: str, message: str, resource: str = "", request_id: str = "") -> bytes:
    """An S3 error document."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>{escape(request_id)}</RequestId>"
        "</Error>"
    ).encode()


_INJECTED_ERRORS = {
    429: ("TooManyRequests", "Too many requests, please slow down."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
}


class S3StandIn:
    """WSGI app: the S3 API over the buckets found under ``layout.s3_root``."""

    def __init__(
        self,
        layout: WorldLayout,
        access_key: str,
        secret_key: str,
        *,
        read_only: bool = True,
        direct_reads: bool = True,
    ) -> None:
        # moto takes ~0.4 s to import; only processes that serve S3 pay for it.
        from moto.moto_server.werkzeug_app import create_backend_app
        from moto.s3.models import s3_backends

        self.layout = layout
        self.read_only = read_only
        self.direct_reads = direct_reads
        self.account_id = _new_account_id()
        self._verifier = SigV4Verifier(access_key, secret_key)
        self._backends = s3_backends
        self._backend = s3_backends[self.account_id]["aws"]
        self._moto = create_backend_app("s3")
        self._files: dict[tuple[str, str], Path] = {}
        self._closed = False
        started = time.perf_counter()
        self.object_count, self.byte_count = self._load(layout.s3_root)
        self.load_seconds = time.perf_counter() - started
        _log.info(
            "S3 stand-in: %d objects, %.1f MB in %.2f s",
            self.object_count,
            self.byte_count / 1e6,
            self.load_seconds,
        )

    # -- loading --------------------------------------------------------------------

    def _load(self, s3_root: Path) -> tuple[int, int]:
        from moto.s3.models import FakeBucket, FakeKey

        count = size = 0
        if not s3_root.is_dir():
            return count, size
        for bucket_dir in sorted(p for p in s3_root.iterdir() if p.is_dir()):
            name = bucket_dir.name
            # Not backend.create_bucket(): bucket names are global in moto (as in S3),
            # so a stand-in serving "eodata" would stop every other moto user in the
            # process (another stand-in, a test's own moto server) from creating it.
            # FakeBucket() registers the global name itself; undo that: requests to this
            # stand-in find the bucket through its own account.
            previous_owner = self._backends.bucket_accounts.get(name)
            bucket = FakeBucket(  # type: ignore[abstract]  # moto builds it this way too
                name=name, account_id=self.account_id, region_name=REGION
            )
            if previous_owner is None:
                self._backends.bucket_accounts.pop(name, None)
            else:
                self._backends.bucket_accounts[name] = previous_owner
            self._backend.buckets[name] = bucket
            for directory, _, filenames in os.walk(bucket_dir):
                for filename in filenames:
                    path = Path(directory, filename)
                    key = path.relative_to(bucket_dir).as_posix()
                    stat = path.stat()
                    fake = FakeKey(
                        name=key,
                        value=b"",
                        account_id=self.account_id,
                        region_name=REGION,
                        bucket_name=name,
                        etag=_etag(name, key, stat),
                    )
                    fake._value_buffer.close()
                    # Duck-typed: moto only seeks, reads and closes this buffer.
                    fake._value_buffer = _FileBody(path)  # type: ignore[assignment]
                    fake.contentsize = stat.st_size
                    fake.last_modified = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC).replace(
                        tzinfo=None  # moto keeps naive UTC datetimes
                    )
                    bucket.keys[key] = fake
                    self._files[(name, key)] = path
                    count += 1
                    size += stat.st_size
        return count, size

    def close(self) -> None:
        """Drop this stand-in's state from moto's process-wide backend."""
        if self._closed:
            return
        self._closed = True
        for bucket in list(self._backend.buckets.values()):
            for _, versions in bucket.keys.lists():
                for key in versions:
                    key.dispose()
        self._backend.buckets.clear()
        self._files.clear()

    # -- WSGI -----------------------------------------------------------------------

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        request_id = secrets.token_hex(8).upper()
        environ.pop(_ACCOUNT_ENV, None)  # the account is ours to choose, not the client's
        failure = self._verifier.verify(environ)
        if failure is None:
            failure = self._check_body(environ)
        read_only_violation = self.read_only and environ.get("REQUEST_METHOD") not in _READS
        if failure is None and read_only_violation:
            failure = AuthFailure(403, "AccessDenied", "Access Denied (the bucket is read-only)")
        if failure is not None:
            return self._refuse(environ, start_response, failure, request_id)

        if self.direct_reads:
            answer = self._direct_read(environ, start_response, request_id)
            if answer is not None:
                return answer
        environ[_ACCOUNT_ENV] = self.account_id
        return self._moto(environ, start_response)

    def error_document(self, status: int, environ: WSGIEnviron) -> tuple[str, bytes]:
        """S3-style body for errors injected by a FaultInjector in front of this app."""
        code, message = _INJECTED_ERRORS.get(status, (f"Http{status}", "Injected error"))
        request_id = secrets.token_hex(8).upper()
        return "application/xml", s3_error_xml(code, message, _path(environ) or "", request_id)

    # -- internals ------------------------------------------------------------------

    def _refuse(
        self,
        environ: WSGIEnviron,
        start_response: StartResponse,
        failure: AuthFailure,
        request_id: str,
    ) -> list[bytes]:
        body = s3_error_xml(failure.code, failure.message, _path(environ) or "", request_id)
        if environ.get("REQUEST_METHOD") == "HEAD":
            body = b""  # HEAD answers carry no body; S3 sends just the status
        reason = "Forbidden" if failure.status == 403 else "Bad Request"
        start_response(
            f"{failure.status} {reason}",
            [
                ("Content-Type", "application/xml"),
                ("Content-Length", str(len(body))),
                ("x-amz-request-id", request_id),
            ],
        )
        return [body]

    def _check_body(self, environ: WSGIEnviron) -> AuthFailure | None:
        """For writes, the hex payload hash that was signed must be the body's hash."""
        if self.read_only:
            return None  # bodies are never used
        claimed = environ.get("HTTP_X_AMZ_CONTENT_SHA256", "")
        if len(claimed) != 64:
            return None  # UNSIGNED-PAYLOAD / STREAMING-*: nothing to compare
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        actual = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        if actual != claimed.lower():
            return AuthFailure(
                400,
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
        return None

    def _direct_read(
        self, environ: WSGIEnviron, start_response: StartResponse, request_id: str
    ) -> Iterable[bytes] | None:
        """Serve a plain GET/HEAD of an unmodified world object from its file, with the
        headers moto would send, or return None to let moto answer."""
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return None
        if environ.get("QUERY_STRING", "") not in _DIRECT_READ_QUERY_OK:
            return None
        if any(name in environ for name in _CONDITIONAL_HEADERS):
            return None
        range_header = environ.get("HTTP_RANGE")
        if range_header is not None and not _simple_range(range_header):
            return None  # moto's answers to unusual ranges are the reference
        path_info = _path(environ)
        if path_info is None:
            return None
        bucket_name, _, key_name = path_info.lstrip("/").partition("/")
        path = self._files.get((bucket_name, key_name))
        bucket = self._backend.buckets.get(bucket_name)
        fake_key = bucket.keys.get(key_name) if path is not None and bucket is not None else None
        if fake_key is None or not isinstance(fake_key._value_buffer, _FileBody):
            return None  # not a world object (any more): moto knows best
        # Anything beyond the basic headers (checksums, tags, encryption, versions,
        # user metadata) is moto's to render.
        if set(fake_key.response_dict) - _PLAIN_OBJECT_HEADERS or len(fake_key.metadata) > 1:
            return None
        if fake_key.checksum_algorithm is not None:
            return None
        size = fake_key.size
        if size == 0 or (range_header is not None and not _range_satisfiable(range_header, size)):
            return None  # empty objects and 416s: moto's error documents
        resource = Resource(
            size=size,
            etag=fake_key.etag,
            last_modified=fake_key.last_modified.replace(tzinfo=dt.UTC).timestamp(),
            content_type=fake_key.metadata.get("Content-Type", "binary/octet-stream"),
            path=path,
        )

        def s3_start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            return start_response(status, [*headers, ("x-amz-request-id", request_id)], *exc)

        return serve(environ, s3_start_response, resource)


def _path(environ: WSGIEnviron) -> str | None:
    # WSGI passes the decoded path as latin-1 characters; S3 keys are UTF-8.
    try:
        return str(environ.get("PATH_INFO", "")).encode("latin-1").decode("utf-8")
    except UnicodeError:
        return None


def _simple_range(header: str) -> bool:
    """One well-formed ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` range."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return False
    first, dash, last = spec.strip().partition("-")
    if not dash or (not first and not last):
        return False
    if first and not first.isdigit():
        return False
    if last and not last.isdigit():
        return False
    return not (first and last and int(last) < int(first))


def _range_satisfiable(header: str, size: int) -> bool:
    first, _, last = header.partition("=")[2].strip().partition("-")
    if first:
        return int(first) < size
    return int(last) > 0


def s3_app(
    layout: WorldLayout,
    access_key: str,
    secret_key: str,
    *,
    read_only: bool = True,
    direct_reads: bool = True,
) -> S3StandIn:
    """The S3 stand-in for ``layout``; requests must be signed with this key pair."""
    return S3StandIn(layout, access_key, secret_key, read_only=read_only, direct_reads=direct_reads)


__all__ = ["S3StandIn", "s3_app", "s3_error_xml"]
