"""Filling a datacube: claim tiles, fetch a few at a time, write them one at a time.

Fetching (network, decoding) is the slow part and runs in a small thread pool; writing
needs the repository's commit lock anyway, so the calling thread writes each fetched
tile in turn while the pool fetches the next ones. At most ``workers`` tiles are being
fetched and one written, so at most ``workers + 1`` disk-backed tile buffers exist.

Each tile is claimed before it is fetched (:mod:`darts.store.claims`) and its claim
released once its record is committed. A tile another process has claimed is set
aside: the fill goes on with the others, then polls until the tile's record appears
(reused, never fetched here), its claim goes away without a record (the other process
failed: the tile is claimed and fetched here), or its claimant is found dead (its
claim is taken over). A wait longer than the cube's lock timeout fails that tile with
a message naming the claimant.

Every outcome reaches the calling thread through a future, and the calling thread never
waits on anything but those futures and its own polling: a fetch that raises is
recorded as that tile's failure, and no thread is ever left waiting for another that
died (pitfall 11).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from darts.store.claims import Claimant, ClaimBoard, HeldClaim
from darts.store.datacube.errors import CubeFillError, TileClaimTimeout
from darts.store.datacube.records import TileRecord, node_name
from darts.store.datacube.spec import CubeSpec, TileBuffer, TileFetch, TileSource, tile_buffer
from darts.store.scratch import remove_stale_buffers
from darts.store.waiting import WaitLog

# How often a fill that waits for other processes' tiles looks for their records.
POLL_S = 0.5


class FillTarget(Protocol):
    """What a fill needs of a cube (a :class:`~darts.store.datacube.cube.Datacube`):
    which tiles it lacks, where to stage buffers and claims, and one tile's write.
    The cube hands itself over, so this module never imports it."""

    @property
    def spec(self) -> CubeSpec: ...

    @property
    def description(self) -> str: ...

    @property
    def wait_s(self) -> float | None: ...

    def missing(self, tile_ids: Iterable[str]) -> list[str]: ...

    def record(self, tile_id: str) -> TileRecord | None: ...

    def scratch_dir(self) -> Path: ...

    def claims(self) -> ClaimBoard: ...

    def write_tile(
        self, tile_id: str, buffer: TileBuffer, fetch: TileFetch, *, if_missing: bool = False
    ) -> TileRecord: ...


@dataclass
class _Staged:
    """A fetched tile waiting to be written; ``cleanup`` removes its buffer."""

    buffer: TileBuffer
    fetch: TileFetch
    cleanup: ExitStack


@dataclass
class _Waiting:
    """A tile another process has claimed, and who that is."""

    holder: Claimant
    log: WaitLog


def fill_tiles(
    cube: FillTarget,
    tile_ids: Sequence[str],
    source: TileSource,
    *,
    on_tile: Callable[[str, TileRecord], None] | None,
    workers: int,
    on_reused: Callable[[str, TileRecord], None] | None = None,
) -> list[TileRecord]:
    """See :meth:`Datacube.fill`."""
    if workers < 1:
        raise ValueError(f"fetch_workers must be >= 1, got {workers}")
    todo = cube.missing(tile_ids)
    if not todo:
        return []
    return _Fill(cube, source, workers, on_tile, on_reused).run(todo)


class _Fill:
    """The state of one fill; :meth:`run` is called once."""

    def __init__(
        self,
        cube: FillTarget,
        source: TileSource,
        workers: int,
        on_tile: Callable[[str, TileRecord], None] | None,
        on_reused: Callable[[str, TileRecord], None] | None,
    ) -> None:
        self.cube = cube
        self.source = source
        self.workers = workers
        self.on_tile = on_tile
        self.on_reused = on_reused
        self.scratch = cube.scratch_dir()
        self.board = cube.claims()
        self.ready: deque[str] = deque()  # not yet claimed
        self.waiting: dict[str, _Waiting] = {}  # claimed by another process
        self.claims: dict[str, HeldClaim] = {}
        self.pending: dict[Future[_Staged], str] = {}
        self.written: dict[str, TileRecord] = {}
        self.failures: dict[str, BaseException] = {}
        self.pool: ThreadPoolExecutor | None = None

    def run(self, todo: list[str]) -> list[TileRecord]:
        remove_stale_buffers(self.scratch)  # left by fills that were killed
        self.ready.extend(todo)
        self.pool = ThreadPoolExecutor(
            max_workers=min(self.workers, len(todo)), thread_name_prefix="darts-cube-fetch"
        )
        next_poll = time.monotonic()
        try:
            self._start_more()
            while self.pending or self.waiting or self.ready:
                if self.pending:
                    timeout = POLL_S if self.waiting else None
                    done, _ = wait(self.pending, timeout=timeout, return_when=FIRST_COMPLETED)
                else:
                    time.sleep(max(0.0, next_poll - time.monotonic()))
                    done = set()
                for future in done:
                    self._finish(future)
                if self.waiting and time.monotonic() >= next_poll:
                    self._poll_waiting()
                    next_poll = time.monotonic() + POLL_S
                self._start_more()
        finally:
            # Only reached with work left when the caller is interrupted (or on_tile
            # raised): drop what has not started, clean up what finishes later.
            for future in self.pending:
                if not future.cancel():
                    future.add_done_callback(_discard)
            self.pool.shutdown(wait=False, cancel_futures=True)
            for claim in self.claims.values():
                claim.release()
        if self.failures:
            ordered = {tile: self.failures[tile] for tile in todo if tile in self.failures}
            raise CubeFillError(self.cube.description, ordered, self.written)
        return [self.written[tile] for tile in todo if tile in self.written]

    # -- claiming and fetching ------------------------------------------------------

    def _start_more(self) -> None:
        """Claim and start fetching ready tiles while the pool has room."""
        while self.ready and len(self.pending) < self.workers:
            tile = self.ready.popleft()
            self._claim_and_fetch(tile)

    def _claim_and_fetch(self, tile: str) -> bool:
        """Fetch ``tile`` if this process gets its claim; else it waits. False if the
        tile is someone else's for now."""
        got = self.board.try_claim(node_name(tile))
        if isinstance(got, Claimant):
            waiting = self.waiting.get(tile)
            if waiting is None:
                what = f"tile {tile} of the {self.cube.description}"
                self.waiting[tile] = _Waiting(got, WaitLog(what, self.cube.wait_s))
            else:
                waiting.holder = got
            return False
        self.waiting.pop(tile, None)
        # Its last claimant may have committed it and let go just before we claimed.
        if not self.cube.missing([tile]):
            got.release()
            self._reuse(tile)
            return True
        self.claims[tile] = got
        assert self.pool is not None
        future = self.pool.submit(_stage, self.cube.spec, tile, self.source, self.scratch)
        self.pending[future] = tile
        return True

    def _finish(self, future: Future[_Staged]) -> None:
        """Write a fetched tile (or record its failure) and let its claim go."""
        tile = self.pending.pop(future)
        claim = self.claims.pop(tile)
        try:
            try:
                staged = future.result()
            except Exception as error:  # a tile's failure, not the fill's
                self.failures[tile] = error
                return
            with staged.cleanup:
                try:
                    # Another process may have written it meanwhile (its claim was
                    # wrongly taken over): the write then keeps theirs, decided under
                    # the commit lock.
                    record = self.cube.write_tile(
                        tile, staged.buffer, staged.fetch, if_missing=True
                    )
                except Exception as error:
                    self.failures[tile] = error
                    return
        finally:
            claim.release()  # after the commit: a waiter then finds the record
        self.written[tile] = record
        if self.on_tile is not None:
            self.on_tile(tile, record)

    # -- waiting for other processes --------------------------------------------------

    def _poll_waiting(self) -> None:
        tiles = list(self.waiting)
        still_missing = set(self.cube.missing(tiles))
        for tile in tiles:
            if tile not in still_missing:
                del self.waiting[tile]
                self._reuse(tile)
                continue
            waiting = self.waiting[tile]
            limit = self.cube.wait_s
            if limit is not None and waiting.log.elapsed_s >= limit:
                del self.waiting[tile]
                self.failures[tile] = TileClaimTimeout(
                    tile, self.cube.description, waiting.holder.describe(), waiting.log.elapsed_s
                )
                continue
            if len(self.pending) < self.workers and self._claim_and_fetch(tile):
                continue  # its claimant failed or died: fetched here now
            waiting = self.waiting[tile]
            waiting.log.tick(f"{waiting.holder.describe()} is fetching it")

    def _reuse(self, tile: str) -> None:
        record = self.cube.record(tile)
        if record is None:  # cannot happen: records are never removed
            self.ready.append(tile)
            return
        if self.on_reused is not None:
            self.on_reused(tile, record)


def _stage(spec: CubeSpec, tile: str, source: TileSource, scratch: Path) -> _Staged:
    """Fetch one tile into a fresh buffer (runs in the pool). The buffer outlives this
    call, so its context is handed over in an ExitStack, or closed here on failure."""
    cleanup = ExitStack()
    try:
        window = source.tile_window(tile)
        buffer = cleanup.enter_context(tile_buffer(spec, window, scratch))
        fetch = source.fetch(tile, buffer)
        if not isinstance(fetch, TileFetch):
            raise TypeError(f"{source.description}: fetch({tile!r}) returned {fetch!r}")
        buffer.flush()
    except BaseException:
        cleanup.close()
        raise
    return _Staged(buffer, fetch, cleanup)


def _discard(future: Future[_Staged]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().cleanup.close()
