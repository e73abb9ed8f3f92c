"""Per-client transfer counters with a callback hook for progress bars.

Each client owns one `TransferCounter`. It counts requests, retries and received bytes
(thread-safe, since one client serves many worker threads) and forwards every byte
delta to the listeners, e.g. `tqdm.update`:

    bar = tqdm(unit="B", unit_scale=True)
    client = HttpClient(settings, on_bytes=bar.update)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

ByteCallback = Callable[[int], object]


@dataclass(frozen=True)
class TransferStats:
    requests: int
    retries: int
    bytes_received: int


class TransferCounter:
    def __init__(self, on_bytes: ByteCallback | None = None) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._retries = 0
        self._bytes = 0
        self._listeners: list[ByteCallback] = [on_bytes] if on_bytes is not None else []

    def add_listener(self, callback: ByteCallback) -> None:
        with self._lock:
            self._listeners.append(callback)

    def request_started(self) -> None:
        with self._lock:
            self._requests += 1

    def retried(self) -> None:
        with self._lock:
            self._retries += 1

    def received(self, nbytes: int) -> None:
        if nbytes <= 0:
            return
        with self._lock:
            self._bytes += nbytes
            listeners = list(self._listeners)
        for callback in listeners:
            try:
                callback(nbytes)
            except Exception:
                # A broken progress bar must not fail a download.
                log.debug("transfer listener failed", exc_info=True)

    def snapshot(self) -> TransferStats:
        with self._lock:
            return TransferStats(self._requests, self._retries, self._bytes)
