"""One retry policy for every client: exponential backoff with full jitter, Retry-After.

The HTTP and the S3 client both retry through `call_with_retries`, so a 429 from the
STAC API and a SlowDown from S3 are treated alike, and a corrupted download is re-fetched
with the same backoff as a dropped connection. (botocore's and urllib3's own retries are
switched off for that reason: two retry layers multiply attempts and ignore each other's
backoff.)

A request that never reaches its server (connection refused, name not resolved,
connect timeout) for its whole budget holds its endpoint as unreachable
(`darts.net.unreachable`) when the client keeps such a registry: the next requests to it
fail at once instead of spending the budget again.

Full jitter (sleep a uniform random time in [0, min(cap, base * 2**n)]) spreads many
workers that failed together across the window instead of having them retry in lock
step against a rate-limited service.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from darts.net.errors import ChecksumMismatch, NetworkError, RemoteError
from darts.net.settings import NetworkSettings
from darts.net.unreachable import UnreachableEndpoints, unreachable_message

log = logging.getLogger(__name__)

T = TypeVar("T")

# Statuses that mean "try again later", not "your request is wrong".
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    backoff_base_s: float
    backoff_max_s: float

    @classmethod
    def from_settings(cls, settings: NetworkSettings) -> RetryPolicy:
        return cls(settings.max_retries, settings.backoff_base_s, settings.backoff_max_s)

    def backoff_s(self, retry_index: int, rng: random.Random | None = None) -> float:
        """Full-jitter backoff before retry number `retry_index` (0-based)."""
        # Cap the exponent: 2**1100 overflows a float long before anyone retries that often.
        window = min(self.backoff_max_s, self.backoff_base_s * 2 ** min(retry_index, 60))
        return (rng or random).uniform(0.0, window)

    def delay_s(self, retry_index: int, retry_after_s: float | None) -> float:
        """How long to wait: the server's Retry-After if given (capped), else backoff."""
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.backoff_max_s)
        return self.backoff_s(retry_index)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date form)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        # HTTP-dates are GMT by definition.
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max((when - now).total_seconds(), 0.0)


@dataclass(frozen=True)
class RetryDecision:
    """Why an attempt may be retried, and how long the server asked us to wait.

    ``unreachable`` says, in a few words, why the server could not be reached at all
    ("Connection refused"); None when it was reached (an error status, a reset or a
    truncated body).
    """

    reason: str
    retry_after_s: float | None = None
    unreachable: str | None = None


Classifier = Callable[[BaseException], RetryDecision | None]


def classify_common(exc: BaseException) -> RetryDecision | None:
    """The retry rules shared by all clients (error statuses and integrity failures).

    Offline refusals, credential problems and 4xx answers are final: retrying cannot
    change them.
    """
    if isinstance(exc, RemoteError) and exc.status in RETRYABLE_STATUSES:
        return RetryDecision(f"HTTP {exc.status}", exc.retry_after_s)
    if isinstance(exc, ChecksumMismatch):
        return RetryDecision(f"{exc.what} mismatch")
    return None


def call_with_retries(
    attempt: Callable[[], T],
    *,
    policy: RetryPolicy,
    classify: Classifier,
    what: str,
    on_retry: Callable[[], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    endpoint: str | None = None,
    unreachable: UnreachableEndpoints | None = None,
) -> T:
    """Run `attempt` until it succeeds, a failure is final, or retries are used up.

    `what` names the operation for logs and for the final error ("GET https://…").
    When retries run out, a `NetworkError` is re-raised with its `attempts` set; any
    other exception is wrapped in a `NetworkError` that names `what` and chains the cause.
    With `endpoint` and `unreachable`, no attempt is made while the endpoint is held
    (`EndpointUnreachable`), and a budget spent without reaching the server holds it.
    """
    total = policy.max_retries + 1
    for index in range(total):
        if unreachable is not None and endpoint is not None:
            unreachable.check(endpoint, what)
        try:
            return attempt()
        except Exception as exc:
            decision = classify(exc)
            if decision is None:
                raise
            if index + 1 >= total:
                if decision.unreachable is not None:
                    if unreachable is not None and endpoint is not None:
                        unreachable.hold(endpoint, decision.unreachable, total)
                    message = unreachable_message(
                        what, endpoint or "the server", decision.unreachable
                    )
                    raise NetworkError(message, attempts=total) from exc
                raise _gave_up(exc, what, total) from _cause(exc)
            delay = policy.delay_s(index, decision.retry_after_s)
            log.info(
                "%s: %s; retry %d/%d in %.2f s", what, decision.reason, index + 1, total - 1, delay
            )
            log.debug("%s: attempt %d failed with %r", what, index + 1, exc)
            if on_retry is not None:
                on_retry()
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _gave_up(exc: Exception, what: str, attempts: int) -> NetworkError:
    if isinstance(exc, NetworkError):
        exc.attempts = attempts
        return exc
    detail = " ".join(str(exc).split())[:300]
    return NetworkError(f"{what} failed: {type(exc).__name__}: {detail}", attempts=attempts)


def _cause(exc: Exception) -> BaseException | None:
    # A NetworkError is re-raised as itself; keep its own cause rather than chaining it
    # to itself.
    return exc.__cause__ if isinstance(exc, NetworkError) else exc
