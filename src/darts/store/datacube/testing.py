"""A deterministic :class:`TileSource` for tests and benchmarks of datacubes.

:class:`PatternTileSource` cuts the cube grid into square tiles and fills each from a
formula of the pixel's row and column, so any reader can compute what a window must
contain (:meth:`PatternTileSource.expected`). Like a real source it checks the network
gate before "downloading", so offline runs fail the way real ones do; it can also be
told to fail for some tiles, to report some as empty, or to take its time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from darts.grid.cube import Window
from darts.net.errors import RemoteError
from darts.net.guard import get_gate
from darts.store.datacube.spec import CubeSpec, TileBuffer, TileFetch


@dataclass
class PatternTileSource:
    """Tiles of ``tile_size`` px named "<tile row>_<tile col>".

    empty: tiles the source reports as having no data (buffer left at fill values).
    failing: tiles whose fetch raises a ``RemoteError`` (HTTP 503).
    delay_s: seconds each fetch sleeps, to make fetches overlap in tests.
    fetch_log: a file each fetch appends its tile id to (one line), so the fetches of
        several processes can be counted.
    """

    spec: CubeSpec
    tile_size: int
    empty: frozenset[str] = frozenset()
    failing: frozenset[str] = frozenset()
    delay_s: float = 0.0
    base_url: str = "https://tiles.example.invalid"
    description: str = "synthetic pattern tiles"
    fetch_log: Path | None = None
    fetched: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def tiles_for(self, window: Window) -> list[str]:
        window = window.intersection(self.spec.grid.full)
        if window.is_empty:
            return []
        size = self.tile_size
        rows = range(window.row0 // size, (window.row1 - 1) // size + 1)
        cols = range(window.col0 // size, (window.col1 - 1) // size + 1)
        return sorted(f"{r}_{c}" for r in rows for c in cols)

    def tile_window(self, tile_id: str) -> Window:
        r, c = (int(part) for part in tile_id.split("_"))
        size = self.tile_size
        return Window(r * size, (r + 1) * size, c * size, (c + 1) * size).intersection(
            self.spec.grid.full
        )

    def fetch(self, tile_id: str, into: TileBuffer) -> TileFetch:
        url = f"{self.base_url}/{tile_id}.tif"
        get_gate().check(url, f"download pattern tile {tile_id}")
        with self._lock:
            self.fetched.append(tile_id)
        if self.fetch_log is not None:
            # One short O_APPEND write per line: lines of processes never interleave.
            with open(self.fetch_log, "a") as log:
                log.write(tile_id + "\n")
        if self.delay_s:
            time.sleep(self.delay_s)
        if tile_id in self.failing:
            raise RemoteError(503, url, "Service Unavailable")
        if tile_id in self.empty:
            return TileFetch("empty", {"url": url})
        for name in into.arrays:
            into.arrays[name][...] = self.values(name, into.window)
        return TileFetch("filled", {"url": url, "pattern": "v1"})

    def values(self, name: str, window: Window) -> np.ndarray:
        """The pattern over ``window`` as if every tile were filled."""
        index = [v.name for v in self.spec.variables].index(name)
        dtype = np.dtype(self.spec.variable(name).dtype)
        rows = np.arange(window.row0, window.row1, dtype=np.int64)[:, None]
        cols = np.arange(window.col0, window.col1, dtype=np.int64)[None, :]
        if dtype.kind == "f":
            return ((rows * 7 + cols * 13 + index * 101) % 10007 / 10.0).astype(dtype)
        # 1..250: never 0, the usual integer fill value.
        return ((rows * 3 + cols * 5 + index * 11) % 250 + 1).astype(dtype)

    def expected(self, name: str, window: Window, tiles: Iterable[str] | None = None) -> np.ndarray:
        """What the cube must hold over ``window`` once ``tiles`` (default: all tiles
        of the window) are written: the pattern on filled tiles, the fill value
        elsewhere."""
        variable = self.spec.variable(name)
        out = np.full(window.shape, variable.fill_value, dtype=np.dtype(variable.dtype))
        pattern = self.values(name, window)
        for tile in self.tiles_for(window) if tiles is None else tiles:
            if tile in self.empty:
                continue
            part = self.tile_window(tile).intersection(window)
            if part.is_empty:
                continue
            local = part.relative_to(window).slices
            out[local] = pattern[local]
        return out
