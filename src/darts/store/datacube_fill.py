"""Filling a datacube: fetch tiles a few at a time, write them one at a time.

Fetching (network, decoding) is the slow part and runs in a small thread pool; writing
needs the repository's commit lock anyway, so the calling thread writes each fetched
tile in turn while the pool fetches the next ones. At most ``workers`` tiles are being
fetched and one written, so at most ``workers + 1`` disk-backed tile buffers exist.

Every outcome reaches the calling thread through a future, and the calling thread never
waits on anything but those futures: a fetch that raises is recorded as that tile's
failure, and no thread is ever left waiting for another that died (pitfall 11).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from darts.store.cube_spec import CubeSpec, TileBuffer, TileFetch, TileSource, tile_buffer
from darts.store.datacube_errors import CubeFillError
from darts.store.datacube_records import TileRecord
from darts.store.scratch import remove_stale_buffers

if TYPE_CHECKING:
    from darts.store.datacube import Datacube


@dataclass
class _Staged:
    """A fetched tile waiting to be written; ``cleanup`` removes its buffer."""

    buffer: TileBuffer
    fetch: TileFetch
    cleanup: ExitStack


def fill_tiles(
    cube: Datacube,
    tile_ids: Sequence[str],
    source: TileSource,
    *,
    on_tile: Callable[[str, TileRecord], None] | None,
    workers: int,
) -> list[TileRecord]:
    """See :meth:`Datacube.fill`."""
    if workers < 1:
        raise ValueError(f"fetch_workers must be >= 1, got {workers}")
    todo = cube.missing(tile_ids)
    if not todo:
        return []
    scratch = cube.scratch_dir()
    remove_stale_buffers(scratch)  # left by fills that were killed
    written: dict[str, TileRecord] = {}
    failures: dict[str, BaseException] = {}
    queue: Iterator[str] = iter(todo)
    pending: dict[Future[_Staged], str] = {}
    pool = ThreadPoolExecutor(
        max_workers=min(workers, len(todo)), thread_name_prefix="darts-cube-fetch"
    )

    def submit_next() -> None:
        tile = next(queue, None)
        if tile is not None:
            pending[pool.submit(_stage, cube.spec, tile, source, scratch)] = tile

    try:
        for _ in range(workers):
            submit_next()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                tile = pending.pop(future)
                submit_next()  # keep the pool busy while this tile is written
                try:
                    staged = future.result()
                except Exception as error:  # a tile's failure, not the fill's
                    failures[tile] = error
                    continue
                with staged.cleanup:
                    try:
                        # Another process may have written it while we fetched: the
                        # write then keeps theirs (decided under the commit lock).
                        record = cube.write_tile(tile, staged.buffer, staged.fetch, if_missing=True)
                    except Exception as error:
                        failures[tile] = error
                        continue
                written[tile] = record
                if on_tile is not None:
                    on_tile(tile, record)
    finally:
        # Only reached with work left when the caller is interrupted (or on_tile
        # raised): drop what has not started, clean up what finishes later.
        for future in pending:
            if not future.cancel():
                future.add_done_callback(_discard)
        pool.shutdown(wait=False, cancel_futures=True)
    if failures:
        ordered = {tile: failures[tile] for tile in todo if tile in failures}
        raise CubeFillError(cube.description, ordered, written)
    return [written[tile] for tile in todo]


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
