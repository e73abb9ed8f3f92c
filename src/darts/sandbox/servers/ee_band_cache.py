"""A byte-bounded LRU cache of decoded bands, shared by concurrent requests.

Why: a full-size Sentinel-2 band (10980² px) takes seconds to decode from JPEG2000,
and a client reads a scene in ≥ 21 ``computePixels`` windows, several at once. Decoding
per request would cost minutes per scene; decoding each (product, band) once and
slicing the cached array makes a window cost what copying it costs.

- bounded by the bytes of the arrays held (least recently used out first); an array
  larger than the whole bound is handed out but not kept;
- *single flight*: while one thread decodes a key, others wanting it wait for that
  result instead of decoding it again; a failed decode is raised to every waiter and
  not remembered, so the next request tries again;
- :meth:`get_many` lets a request needing several bands decode the ones nobody else is
  decoding first, so concurrent requests for the same scene share the work rather than
  queueing behind one thread.

Arrays are made read-only before they are shared.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

DEFAULT_CACHE_BYTES = 2 * 1024**3


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    value: np.ndarray | None = None
    error: BaseException | None = None


class BandCache:
    """Decoded arrays by key, at most ``max_bytes`` in all."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._arrays: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._pending: dict[Hashable, _Pending] = {}
        self._bytes = 0
        self.loads = 0  # decodes started, for tests and benchmarks

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def get(self, key: Hashable, load: Callable[[Hashable], np.ndarray]) -> np.ndarray:
        return self.get_many([key], load)[key]

    def get_many(
        self, keys: Sequence[Hashable], load: Callable[[Hashable], np.ndarray]
    ) -> dict[Hashable, np.ndarray]:
        """The arrays for ``keys``, loading (once, across threads) those not cached."""
        found: dict[Hashable, np.ndarray] = {}
        waiting: dict[Hashable, _Pending] = {}
        remaining = list(dict.fromkeys(keys))
        while remaining:
            claimed: tuple[Hashable, _Pending] | None = None
            with self._lock:
                for key in list(remaining):
                    if key in self._arrays:
                        self._arrays.move_to_end(key)
                        found[key] = self._arrays[key]
                        remaining.remove(key)
                    elif key in self._pending:
                        waiting[key] = self._pending[key]
                        remaining.remove(key)
                    elif claimed is None:
                        claimed = (key, _Pending())
                        self._pending[key] = claimed[1]
                        remaining.remove(key)
                        self.loads += 1
            if claimed is not None:
                found[claimed[0]] = self._load(claimed[0], claimed[1], load)
        for key, pending in waiting.items():
            pending.done.wait()
            if pending.error is not None:
                raise pending.error
            assert pending.value is not None
            found[key] = pending.value
        return {key: found[key] for key in keys}

    def _load(
        self, key: Hashable, pending: _Pending, load: Callable[[Hashable], np.ndarray]
    ) -> np.ndarray:
        try:
            array = load(key)
            array.setflags(write=False)
            pending.value = array
        except BaseException as error:
            pending.error = error
            raise
        finally:
            with self._lock:
                del self._pending[key]
                if pending.value is not None:
                    self._insert(key, pending.value)
            pending.done.set()
        return array

    def _insert(self, key: Hashable, array: np.ndarray) -> None:
        if array.nbytes > self.max_bytes:
            return
        self._arrays[key] = array
        self._bytes += array.nbytes
        while self._bytes > self.max_bytes:
            _, evicted = self._arrays.popitem(last=False)
            self._bytes -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._arrays.clear()
            self._bytes = 0
