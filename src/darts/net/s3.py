"""S3 downloads (CDSE `eodata` and compatible endpoints) through boto3.

Whole-object downloads, verified against STAC `file:size` / `file:checksum`, re-fetched
on mismatch, written atomically. The gate is checked before every call, and credentials
are resolved only when the first request is actually made, so an offline run (or one
that finds everything cached) never needs keys.

Per object we issue one GET: a 10 m Sentinel-2 band is ~100-135 MB and parallelism is
better spent across objects (`max_concurrency` downloads at once) than inside one, which
also keeps the request count, and so the rate-limit pressure on CDSE, minimal.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import botocore.exceptions
import urllib3.exceptions
from botocore.config import Config

from darts import __version__
from darts.net.checksum import StreamingVerifier, parse_multihash
from darts.net.credentials import (
    HOW_TO_PROVIDE_KEYS,
    AwsCredentials,
    boto3_session,
    resolve_credentials,
)
from darts.net.errors import CredentialsError, NetworkError, RemoteError, excerpt
from darts.net.files import atomic_file
from darts.net.guard import NetworkGate, get_gate
from darts.net.progress import ByteCallback, TransferCounter
from darts.net.retry import (
    RetryDecision,
    RetryPolicy,
    call_with_retries,
    classify_common,
    parse_retry_after,
)
from darts.net.settings import NetworkSettings, S3Settings
from darts.net.unreachable import UnreachableEndpoints, endpoint_of, errno_text

log = logging.getLogger(__name__)

T = TypeVar("T")

_CHUNK = 1 << 20

# Error codes that mean "slow down / try again" even when the status is not a 5xx
# (S3's RequestTimeout comes as a 400).
_RETRYABLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
    }
)
# Error codes that mean the keys are wrong, expired or not allowed.
_AUTH_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidSecurity",
        "AuthorizationHeaderMalformed",
    }
)

_TRANSIENT: tuple[type[BaseException], ...] = (
    # EndpointConnectionError, ConnectTimeoutError, ...
    botocore.exceptions.ConnectionError,
    # ReadTimeoutError, ConnectionClosedError, ResponseStreamingError (truncated body)
    botocore.exceptions.HTTPClientError,
    # Content-Length not met when the body stream ended
    botocore.exceptions.IncompleteReadError,
    urllib3.exceptions.ProtocolError,
    ConnectionResetError,
)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def href(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def __str__(self) -> str:
        return self.href


def parse_s3_href(href: str | S3Location | tuple[str, str]) -> S3Location:
    """Accept `s3://bucket/key`, an `S3Location` or a `(bucket, key)` pair."""
    if isinstance(href, S3Location):
        return href
    if isinstance(href, tuple):
        bucket, key = href
        return S3Location(bucket, key)
    parts = urlsplit(href)
    key = parts.path.lstrip("/")
    if parts.scheme != "s3" or not parts.netloc or not key:
        raise ValueError(f"not an s3://bucket/key href: {href!r}")
    return S3Location(parts.netloc, key)


@dataclass(frozen=True)
class S3ObjectInfo:
    location: S3Location
    size: int
    etag: str | None
    last_modified: datetime | None


class S3Error(RemoteError):
    """An S3 error response; `code` is the S3 error code (e.g. NoSuchKey, SlowDown)."""

    def __init__(self, status: int, url: str, code: str, message: str, **kwargs: Any) -> None:
        self.code = code
        super().__init__(status, url, f"{code}: {message}" if message else code, **kwargs)


def classify_s3(exc: BaseException) -> RetryDecision | None:
    common = classify_common(exc)
    if common is not None:
        return common
    if isinstance(
        exc, botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectTimeoutError
    ):
        # No connection was made at all: refused, name not resolved, or a connect
        # timeout. botocore's own message names only the URL; the cause says why.
        if isinstance(exc, botocore.exceptions.ConnectTimeoutError):
            reason = "connect timeout"
        else:
            reason = errno_text(exc.kwargs.get("error")) or "no connection"
        return RetryDecision(type(exc).__name__, unreachable=reason)
    if isinstance(exc, S3Error) and exc.code in _RETRYABLE_CODES:
        return RetryDecision(exc.code, exc.retry_after_s)
    if isinstance(exc, _TRANSIENT):
        return RetryDecision(type(exc).__name__)
    return None


class S3Client:
    """Verified, retrying, offline-aware S3 object downloads. Thread-safe; share one."""

    def __init__(
        self,
        s3: S3Settings | None = None,
        net: NetworkSettings | None = None,
        *,
        gate: NetworkGate | None = None,
        on_bytes: ByteCallback | None = None,
    ) -> None:
        self.s3 = s3 or S3Settings()
        self.net = net or NetworkSettings()
        self.gate = gate or get_gate()
        self.counter = TransferCounter(on_bytes)
        self.unreachable = UnreachableEndpoints()
        self._policy = RetryPolicy.from_settings(self.net)
        self._slots = threading.BoundedSemaphore(self.net.max_concurrency)
        self._lock = threading.Lock()
        self._boto: Any = None
        self._credentials: AwsCredentials | None = None

    def __repr__(self) -> str:
        return f"S3Client({self.s3!r}, {self.net!r})"

    def close(self) -> None:
        with self._lock:
            if self._boto is not None:
                self._boto.close()
                self._boto = None

    def __enter__(self) -> S3Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- public operations ------------------------------------------------------------

    def url_for(self, href: str | S3Location | tuple[str, str]) -> str:
        """The path-style URL an object is fetched from (what offline errors name)."""
        loc = parse_s3_href(href)
        return f"{self.s3.endpoint_url.rstrip('/')}/{loc.bucket}/{quote(loc.key)}"

    def head(self, href: str | S3Location | tuple[str, str], *, purpose: str) -> S3ObjectInfo:
        loc = parse_s3_href(href)

        def attempt() -> S3ObjectInfo:
            client = self._ready(loc, purpose)
            with self._slots:
                self.counter.request_started()
                resp = self._call(loc, "HEAD", client.head_object, Bucket=loc.bucket, Key=loc.key)
            return S3ObjectInfo(
                loc, int(resp["ContentLength"]), resp.get("ETag"), resp.get("LastModified")
            )

        return self._retrying(attempt, "HEAD", loc)

    def get_object_bytes(
        self,
        href: str | S3Location | tuple[str, str],
        *,
        purpose: str,
        expected_size: int | None = None,
        checksum: str | None = None,
    ) -> bytes:
        """The whole object, verified; retried on mismatch, then `ChecksumMismatch`."""
        loc = parse_s3_href(href)
        if checksum:
            parse_multihash(checksum)

        def attempt() -> bytes:
            client = self._ready(loc, purpose)
            with self._slots:
                self.counter.request_started()
                resp = self._call(loc, "GET", client.get_object, Bucket=loc.bucket, Key=loc.key)
                verifier = StreamingVerifier(loc.href, checksum, expected_size)
                buffer = bytearray()
                with contextlib.closing(resp["Body"]) as body:
                    for chunk in body.iter_chunks(_CHUNK):
                        buffer += chunk
                        verifier.update(chunk)
                        self.counter.received(len(chunk))
                verifier.verify()
            return bytes(buffer)

        return self._retrying(attempt, "GET", loc)

    def download_to_file(
        self,
        href: str | S3Location | tuple[str, str],
        path: str | Path,
        *,
        purpose: str,
        expected_size: int | None = None,
        checksum: str | None = None,
    ) -> Path:
        """Stream the object to `path` via a temp file in the same folder; atomic."""
        loc = parse_s3_href(href)
        if checksum:
            parse_multihash(checksum)
        destination = Path(path)

        def attempt() -> Path:
            client = self._ready(loc, purpose)
            with self._slots:
                self.counter.request_started()
                resp = self._call(loc, "GET", client.get_object, Bucket=loc.bucket, Key=loc.key)
                verifier = StreamingVerifier(loc.href, checksum, expected_size)
                with contextlib.closing(resp["Body"]) as body, atomic_file(destination) as f:
                    for chunk in body.iter_chunks(_CHUNK):
                        f.write(chunk)
                        verifier.update(chunk)
                        self.counter.received(len(chunk))
                    verifier.verify()
            return destination

        return self._retrying(attempt, "GET", loc)

    # -- internals --------------------------------------------------------------------

    def _ready(self, loc: S3Location, purpose: str) -> Any:
        """Check the gate, then return the boto3 client (created on first use)."""
        self.gate.check(self.url_for(loc), purpose, offline=self.net.offline)
        with self._lock:
            if self._boto is None:
                self._credentials = resolve_credentials(self.s3)
                self._boto = self._make_client(self._credentials)
            return self._boto

    def _make_client(self, creds: AwsCredentials) -> Any:
        session = boto3_session(creds, self.s3.region)
        config = Config(
            connect_timeout=self.net.connect_timeout_s,
            read_timeout=self.net.read_timeout_s,
            # One attempt per call: retries, backoff and Retry-After live in
            # darts.net.retry so they also cover truncated bodies and checksum
            # mismatches, which botocore cannot see.
            retries={"mode": "standard", "total_max_attempts": 1},
            max_pool_connections=max(10, self.net.max_concurrency),
            # CDSE serves bucket "eodata" path-style only.
            s3={"addressing_style": "path"},
            # botocore >= 1.36 adds CRC checksums by default; S3-compatible stores
            # (CDSE, MinIO, Ceph) may reject or not return them. Only when required.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            user_agent_extra=f"darts/{__version__}",
        )
        return session.client("s3", endpoint_url=self.s3.endpoint_url, config=config)

    def _call(self, loc: S3Location, method: str, operation: Callable[..., T], **kwargs: Any) -> T:
        try:
            return operation(**kwargs)
        except botocore.exceptions.ClientError as exc:
            raise self._translate(exc, loc, method) from None
        except (
            botocore.exceptions.NoCredentialsError,
            botocore.exceptions.PartialCredentialsError,
        ):
            raise CredentialsError(
                f"No usable S3 credentials for {self.s3.endpoint_url}. {HOW_TO_PROVIDE_KEYS}"
            ) from None

    def _translate(
        self, exc: botocore.exceptions.ClientError, loc: S3Location, method: str
    ) -> Exception:
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        status = int(meta.get("HTTPStatusCode") or 0)
        code = str(error.get("Code", ""))
        if not code or code.isdigit():
            # HEAD answers carry no body, so botocore's "code" is just the status.
            code = f"HTTP {status}"
        if code in _AUTH_CODES or status in (401, 403):
            source = self._credentials.source if self._credentials else "unknown source"
            # No botocore text: auth error bodies can echo the access key id and the
            # string-to-sign. Raised `from None` so no traceback carries them either.
            return CredentialsError(
                f"S3 endpoint {self.s3.endpoint_url} refused {method} {loc.href} "
                f"({code}): the keys from {source} are wrong, expired "
                f"or not allowed to read this bucket. {HOW_TO_PROVIDE_KEYS}"
            )
        headers = {k.lower(): v for k, v in (meta.get("HTTPHeaders") or {}).items()}
        return S3Error(
            status,
            self.url_for(loc),
            code,
            excerpt(str(error.get("Message", ""))),
            retry_after_s=parse_retry_after(headers.get("retry-after")),
            method=method,
        )

    def _retrying(self, attempt: Callable[[], T], method: str, loc: S3Location) -> T:
        what = f"S3 {method} {loc.href}"
        try:
            return call_with_retries(
                attempt,
                policy=self._policy,
                classify=classify_s3,
                what=what,
                on_retry=self.counter.retried,
                endpoint=endpoint_of(self.s3.endpoint_url),
                unreachable=self.unreachable,
            )
        except botocore.exceptions.BotoCoreError as exc:
            # Final botocore failures (e.g. an invalid endpoint or parameter): callers
            # catch NetworkError, never a botocore type.
            raise NetworkError(f"{what} failed: {type(exc).__name__}: {exc}") from exc
