"""The exceptions raised by the network layer.

Callers outside `darts.net` catch these types instead of `requests`, `botocore` or
`urllib3` exceptions, so a change of HTTP library never leaks into sources or pipelines.
Every message names the object involved (URL or s3:// href) and never a secret.
"""

from __future__ import annotations

from darts.net.redact import redact_url


class NetworkError(Exception):
    """Base class for every failure the network layer reports.

    `attempts` is how many times the operation was tried; the retry loop sets it when it
    gives up, so the message can say that retries already happened.
    """

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = attempts

    def __str__(self) -> str:
        if self.attempts > 1:
            return f"{self.message} (gave up after {self.attempts} attempts)"
        return self.message


class OfflineError(NetworkError):
    """Raised instead of connecting when offline mode is on.

    The message names the URL and what the code wanted from it, so an offline run that
    hits a missing cache entry says exactly which data has to be staged beforehand.
    """

    def __init__(self, url: str, purpose: str) -> None:
        self.url = url
        self.purpose = purpose
        super().__init__(
            f"offline mode: refusing to connect to {redact_url(url)} (wanted: {purpose})"
        )


class ConnectionBlocked(NetworkError):
    """Raised by `forbid_sockets` when code tries to open a socket it may not open.

    Deliberately not an `OSError`: HTTP libraries catch `OSError` and retry or wrap it,
    which would hide the attempt. This propagates straight to the test.
    """


class CredentialsError(NetworkError):
    """Missing or rejected credentials. The message says how to fix it, never the keys."""


class ChecksumMismatch(NetworkError):
    """Downloaded bytes do not match the expected size or checksum."""

    def __init__(self, name: str, what: str, expected: str, actual: str) -> None:
        self.name = name
        self.what = what
        self.expected = expected
        self.actual = actual
        super().__init__(f"{what} mismatch for {name}: expected {expected}, got {actual}")


class RemoteError(NetworkError):
    """The server answered with an error status.

    `retry_after_s` carries a parsed `Retry-After` header so the retry loop can honour it.
    """

    def __init__(
        self,
        status: int,
        url: str,
        body_excerpt: str = "",
        *,
        retry_after_s: float | None = None,
        method: str = "GET",
    ) -> None:
        self.status = status
        self.url = url
        self.body_excerpt = body_excerpt
        self.retry_after_s = retry_after_s
        self.method = method
        detail = f": {body_excerpt}" if body_excerpt else ""
        super().__init__(f"{method} {redact_url(url)} returned HTTP {status}{detail}")


def excerpt(text: str | bytes | None, limit: int = 300) -> str:
    """A short single-line excerpt of a response body for error messages."""
    if not text:
        return ""
    if isinstance(text, bytes):
        text = text[: limit * 4].decode("utf-8", errors="replace")
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
