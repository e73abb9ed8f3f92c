"""Endpoints that could not be connected to: the next requests fail at once.

When a request spends its whole retry budget without once reaching the server
(connection refused, name not resolved, connect timeout), the next request to the same
endpoint would almost surely do the same. Staging hundreds of tiles from a host that is
down would then take the retry budget (tens of seconds with the default backoff) per
tile, and say the same thing hundreds of times. Instead the endpoint is held as
unreachable for ``hold_s``: requests to it fail immediately with the error that the
budget ended on, in one line, and after the hold the next request tries again with a
fresh budget (the host may be back).

Each client keeps its own registry, so a hold lasts at most as long as the command
that made it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from darts.net.errors import NetworkError
from darts.net.redact import redact_url

# Long enough that a run over many tiles does not spend a budget per tile on a dead
# host, short enough that a long staging run recovers from an outage by itself.
HOLD_S = 120.0


_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def errno_text(error: object) -> str | None:
    """The OS's words in an exception's text ("Connection refused"), if it has some."""
    match = _ERRNO_TEXT.search(str(error))
    return match.group(1).strip() if match else None


class EndpointUnreachable(NetworkError):
    """A request not sent because its endpoint refused every attempt of an earlier one."""


@dataclass(frozen=True)
class _Hold:
    reason: str
    attempts: int
    until: float


def endpoint_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL (userinfo redacted): what a connection failure
    is about."""
    parts = urlsplit(redact_url(url))
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


def unreachable_message(what: str, endpoint: str, reason: str) -> str:
    return f"{what}: cannot connect to {endpoint} ({reason})"


class UnreachableEndpoints:
    """Thread-safe registry of held endpoints, shared by the threads of one client."""

    def __init__(self, hold_s: float = HOLD_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.hold_s = hold_s
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[str, _Hold] = {}

    def check(self, endpoint: str, what: str) -> None:
        """Raise `EndpointUnreachable` if ``endpoint`` is held."""
        with self._lock:
            hold = self._held.get(endpoint)
            if hold is None:
                return
            if self._clock() >= hold.until:
                del self._held[endpoint]
                return
        raise EndpointUnreachable(
            f"{unreachable_message(what, endpoint, hold.reason)}; not sent: an earlier "
            f"request to it failed all {hold.attempts} attempts"
        )

    def hold(self, endpoint: str, reason: str, attempts: int) -> None:
        with self._lock:
            self._held[endpoint] = _Hold(reason, attempts, self._clock() + self.hold_s)

    def is_held(self, endpoint: str) -> bool:
        with self._lock:
            hold = self._held.get(endpoint)
            return hold is not None and self._clock() < hold.until
