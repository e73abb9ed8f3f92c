"""The HTTP client every HTTP(S) request in DARTS goes through.

One `requests.Session` per client, and on top of it what the reference implementation
lacked (pitfall 14): a timeout on every request, retries with exponential backoff and
full jitter on 429/5xx, dropped connections and truncated bodies, `Retry-After`
honoured, a bound on concurrent requests across threads, whole-file verification and
atomic writes for downloads, byte ranges checked against what was asked
(`darts.net.ranges`), an endpoint that cannot be connected to held as unreachable
(`darts.net.unreachable`), and the offline gate checked before every attempt.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import requests
import requests.adapters
import requests.exceptions
import urllib3.exceptions

from darts import __version__
from darts.net.checksum import StreamingVerifier, parse_multihash
from darts.net.errors import NetworkError, RemoteError, excerpt
from darts.net.files import atomic_file
from darts.net.guard import NetworkGate, get_gate
from darts.net.progress import ByteCallback, TransferCounter
from darts.net.ranges import RangeBody, check_range_answer
from darts.net.redact import redact_url
from darts.net.retry import (
    RetryDecision,
    RetryPolicy,
    call_with_retries,
    classify_common,
    parse_retry_after,
)
from darts.net.settings import NetworkSettings
from darts.net.unreachable import UnreachableEndpoints, endpoint_of, errno_text

log = logging.getLogger(__name__)

T = TypeVar("T")

_CHUNK = 1 << 20

# Failures of the transport rather than of the request: worth another attempt.
# Truncated bodies surface as ChunkedEncodingError (urllib3's IncompleteRead, wrapped by
# requests), ContentDecodingError, or, when a raw stream is read directly, as the
# urllib3 / http.client exceptions themselves.
_TRANSIENT: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
    http.client.IncompleteRead,
    ConnectionResetError,
)


def connect_failure(exc: BaseException) -> str | None:
    """Why no connection was made at all ("Connection refused"), or None if it was."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect timeout"
    if not isinstance(exc, requests.exceptions.ConnectionError) or not exc.args:
        return None
    reason = exc.args[0]
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    # NewConnectionError (and its NameResolutionError) before ConnectTimeoutError,
    # which urllib3 makes its base class.
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return errno_text(reason) or type(reason).__name__
    if isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
        return "connect timeout"
    return None


def classify_http(exc: BaseException) -> RetryDecision | None:
    common = classify_common(exc)
    if common is not None:
        return common
    unreachable = connect_failure(exc)
    if unreachable is not None:
        return RetryDecision(type(exc).__name__, unreachable=unreachable)
    if (
        isinstance(exc, requests.exceptions.SSLError)
        and "certificate verify failed" in str(exc).lower()
    ):
        # A certificate that does not verify will not verify on the next attempt either.
        return None
    if isinstance(exc, _TRANSIENT):
        return RetryDecision(type(exc).__name__)
    return None


class HttpClient:
    """A retrying, bounded, offline-aware HTTP client. Share one per service across threads.

    Every public method takes `purpose`: a few words saying what the request is for
    ("STAC search for tile 33UUP"). It appears in the offline error, which is how an
    offline run tells the user what was not staged.
    """

    def __init__(
        self,
        settings: NetworkSettings | None = None,
        *,
        gate: NetworkGate | None = None,
        on_bytes: ByteCallback | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings or NetworkSettings()
        self.gate = gate or get_gate()
        self.counter = TransferCounter(on_bytes)
        self.unreachable = UnreachableEndpoints()
        self._policy = RetryPolicy.from_settings(self.settings)
        # Bounds requests in flight across all threads using this client, so a thread
        # pool of 32 workers still only opens max_concurrency connections to a service
        # that rate-limits.
        self._slots = threading.BoundedSemaphore(self.settings.max_concurrency)
        self.session = requests.Session()
        # urllib3's own retries are off (max_retries=0): the retry policy lives in
        # darts.net.retry, where it also covers truncated bodies and checksums.
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=4,
            pool_maxsize=max(self.settings.max_concurrency, 1),
            max_retries=0,
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = (
            f"darts/{__version__} {requests.utils.default_user_agent()}"
        )
        if headers:
            self.session.headers.update(headers)

    # -- lifecycle --------------------------------------------------------------------

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- core -------------------------------------------------------------------------

    def prepare(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.PreparedRequest:
        request = requests.Request(
            method=method.upper(),
            url=url,
            params=dict(params or {}),
            json=json,
            data=data,
            headers=dict(headers or {}),
        )
        return self.session.prepare_request(request)

    def send(self, request: requests.PreparedRequest, *, purpose: str) -> requests.Response:
        """Send a prepared request with retries; the body is fully read and 2xx.

        Raises `RemoteError` for error statuses (after retries for 429/5xx),
        `OfflineError` when offline, `NetworkError` when the transport keeps failing.
        """
        return self._send_checked(request, purpose, lambda response: response)

    def _send_checked(
        self,
        request: requests.PreparedRequest,
        purpose: str,
        check: Callable[[requests.Response], T],
    ) -> T:
        """`send`, with `check` run on every 2xx answer inside the retry loop: what it
        raises as retryable (`ChecksumMismatch`) is re-fetched like a dropped body."""
        url = request.url or ""

        def attempt() -> T:
            self.gate.check(url, purpose, offline=self.settings.offline)
            with self._slots:
                self.counter.request_started()
                response = self._send_once(request, stream=False)
                self.counter.received(len(response.content))
            _raise_for_status(response)
            return check(response)

        return self._retrying(attempt, request)

    def request(
        self,
        method: str,
        url: str,
        *,
        purpose: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        prepared = self.prepare(method, url, params=params, json=json, data=data, headers=headers)
        return self.send(prepared, purpose=purpose)

    # -- conveniences -----------------------------------------------------------------

    def get_json(
        self,
        url: str,
        *,
        purpose: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        response = self.request("GET", url, purpose=purpose, params=params, headers=headers)
        return _decode_json(response)

    def post_json(
        self,
        url: str,
        body: Any,
        *,
        purpose: str,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        response = self.request("POST", url, purpose=purpose, json=body, headers=headers)
        return _decode_json(response)

    def get_bytes(
        self,
        url: str,
        *,
        purpose: str,
        byte_range: tuple[int, int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        """GET the body as bytes; `byte_range=(start, stop)` is half-open, like a slice."""
        if byte_range is not None:
            start, stop = byte_range
            return self.get_range(url, start, stop, purpose=purpose, headers=headers).data
        merged = {"Accept-Encoding": "identity", **(headers or {})}
        return self.request("GET", url, purpose=purpose, headers=merged).content

    def get_range(
        self,
        url: str,
        start: int,
        stop: int,
        *,
        purpose: str,
        headers: Mapping[str, str] | None = None,
    ) -> RangeBody:
        """GET bytes ``[start, stop)`` (clipped at the end of the object), checked.

        The answer must hold exactly the range asked for (`darts.net.ranges`); a short
        or misplaced one is re-fetched under the retry policy like a truncated body,
        then `ChecksumMismatch`. The result also carries the object's size when the
        server said it (``Content-Range``), which range readers need.
        """
        if not 0 <= start < stop:
            raise ValueError(f"byte range must satisfy 0 <= start < stop, got ({start}, {stop})")
        merged = {
            "Accept-Encoding": "identity",
            **(headers or {}),
            "Range": f"bytes={start}-{stop - 1}",
        }
        prepared = self.prepare("GET", url, headers=merged)

        def check(response: requests.Response) -> RangeBody:
            if response.status_code == 200:
                # The server ignored Range and sent the whole object: still correct,
                # just wasteful, so slice rather than fail.
                log.debug("%s ignored the Range header", redact_url(url))
            return check_range_answer(
                url, start, stop, response.status_code, response.headers, response.content
            )

        return self._send_checked(prepared, purpose, check)

    def stream_to_file(
        self,
        url: str,
        path: str | Path,
        *,
        purpose: str,
        expected_size: int | None = None,
        checksum: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Path:
        """Download `url` to `path` atomically, verifying size and multihash checksum.

        A truncated or corrupt download is retried from the start (up to max_retries),
        then `ChecksumMismatch` is raised; `path` only ever holds verified content.
        """
        if checksum:
            parse_multihash(checksum)  # an unusable checksum is a bug, not a retry
        destination = Path(path)
        prepared = self.prepare(
            "GET", url, headers={"Accept-Encoding": "identity", **(headers or {})}
        )
        name = redact_url(url)

        def attempt() -> Path:
            self.gate.check(url, purpose, offline=self.settings.offline)
            with self._slots:
                self.counter.request_started()
                response = self._send_once(prepared, stream=True)
                with contextlib.closing(response):
                    _raise_for_status(response)
                    verifier = StreamingVerifier(name, checksum, expected_size)
                    with atomic_file(destination) as f:
                        for chunk in response.iter_content(_CHUNK):
                            f.write(chunk)
                            verifier.update(chunk)
                            self.counter.received(len(chunk))
                        verifier.verify()
            return destination

        return self._retrying(attempt, prepared)

    # -- internals --------------------------------------------------------------------

    def _send_once(self, request: requests.PreparedRequest, *, stream: bool) -> requests.Response:
        # Session.send skips the environment merge that Session.request does; do it
        # here so HTTPS_PROXY / NO_PROXY / REQUESTS_CA_BUNDLE on HPC login nodes apply.
        env = self.session.merge_environment_settings(request.url or "", {}, stream, None, None)
        return self.session.send(request, timeout=self.settings.timeout_pair, **env)

    def _retrying(self, attempt: Callable[[], T], request: requests.PreparedRequest) -> T:
        url = request.url or ""
        what = f"{request.method} {redact_url(url)}"
        try:
            return call_with_retries(
                attempt,
                policy=self._policy,
                classify=classify_http,
                what=what,
                on_retry=self.counter.retried,
                endpoint=endpoint_of(url),
                unreachable=self.unreachable,
            )
        except requests.RequestException as exc:
            # Final, non-transient failures (redirect loops, invalid URLs, bad
            # certificates): callers catch NetworkError, never a `requests` type.
            raise NetworkError(f"{what} failed: {type(exc).__name__}: {exc}") from exc


def _raise_for_status(response: requests.Response) -> None:
    if 200 <= response.status_code < 300:
        return
    try:
        body = response.content
    except Exception:
        body = b""
    response.close()
    raise RemoteError(
        response.status_code,
        response.url or "",
        excerpt(body),
        retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
        method=response.request.method or "GET",
    )


def _decode_json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise NetworkError(
            f"{response.request.method} {redact_url(response.url)} did not return JSON: "
            f"{excerpt(response.content)}"
        ) from None
