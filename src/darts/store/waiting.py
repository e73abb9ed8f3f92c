"""Waiting for another darts process, visibly.

When a process finds another one fetching or writing what it needs (a scene under
its lock, a cube tile under a claim), it waits and then reuses the result instead of
fetching it again. A wait that prints nothing looks like a hang, so every wait logs
who it waits for: at INFO when it starts and every half minute, and at WARNING (seen
on the console without ``-v``) once it has lasted a minute, then every ten minutes.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("darts.store.wait")

# Waits are bounded by this by default (seconds): a holder that has not finished one
# scene or tile in an hour is stuck, and the waiter reports it instead of hanging.
DEFAULT_WAIT_S = 3600.0
_INFO_EVERY_S = 30.0
_WARN_AFTER_S = 60.0
_WARN_EVERY_S = 600.0


class WaitLog:
    """The log lines of one wait for ``what`` (e.g. "tile 40_18 of the ... cube")."""

    def __init__(self, what: str, limit_s: float | None) -> None:
        self.what = what
        self.limit_s = limit_s
        self.started = time.monotonic()
        self._next_info = self.started
        self._next_warning = self.started + _WARN_AFTER_S

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def tick(self, holder: str) -> None:
        """Log the wait if a line is due; ``holder`` says who is being waited for."""
        now = time.monotonic()
        if now < self._next_info and now < self._next_warning:
            return
        elapsed = now - self.started
        limit = "" if self.limit_s is None else f", giving up after {self.limit_s:g} s"
        if now >= self._next_warning:
            self._next_warning = now + _WARN_EVERY_S
            self._next_info = now + _INFO_EVERY_S
            log.warning(
                "still waiting for %s: %s (%.0f s so far%s)", self.what, holder, elapsed, limit
            )
            return
        self._next_info = now + _INFO_EVERY_S
        log.info("waiting for %s: %s (%.0f s so far%s)", self.what, holder, elapsed, limit)
