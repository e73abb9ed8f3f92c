"""Reading a pixel window of cube arrays: the chunks it needs, fetched and decoded directly.

zarr's own read path decodes every chunk into a freshly allocated chunk-sized buffer
(a 16 MiB float32 chunk of 2048² is 4096 fresh pages, each a page fault) before
copying the window's part out, and goes through its async codec pipeline. For the
layout the cube writes (native-endian bytes, then Blosc) this module fetches each
needed chunk from the store, decodes it with numcodecs' Blosc into a scratch buffer
that is reused from read to read, and copies the window's part into the result.
Blosc releases the GIL, so the chunks of all arrays are shared out over a small pool
of worker threads, kept between reads (starting threads for every read costs
milliseconds on a busy machine). Any other layout (a cube written by other code) is
read through zarr. ``benchmarks/bench_aux_cube.py`` compares both with the floor.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import numcodecs
import numpy as np
import zarr
from zarr.abc.store import Store
from zarr.codecs import BloscCodec, BytesCodec
from zarr.core.buffer import Buffer, default_buffer_prototype
from zarr.core.chunk_grids import RegularChunkGrid
from zarr.core.metadata import ArrayV3Metadata
from zarr.core.sync import sync

from darts.grid.cube import Window

# Decoding threads: Blosc decodes one chunk per thread at a time, so more threads than
# cores only multiply scratch buffers (one chunk each).
MAX_WORKERS = 4
# A Blosc frame starts with 16 header bytes; bytes 4-8 hold the decoded size.
_BLOSC_HEADER = 16


class _ScratchPool:
    """Chunk-sized decode buffers kept between reads: touching fresh memory is a large
    part of a read's cost (page faults, ~4-15 ms per 16 MiB here), and every read
    decodes chunks of the same few shapes. Holds at most ``MAX_WORKERS`` buffers per
    shape and dtype (2 × 20 MiB for 2048² float32 + uint8 chunks on 2 cores)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: dict[tuple[tuple[int, int], str], list[np.ndarray]] = {}

    def take(self, shape: tuple[int, int], dtype: np.dtype[Any]) -> np.ndarray:
        with self._lock:
            free = self._free.get((shape, dtype.str))
            if free:
                return free.pop()
        return np.empty(shape, dtype)

    def give(self, buffer: np.ndarray) -> None:
        key = ((int(buffer.shape[0]), int(buffer.shape[1])), buffer.dtype.str)
        with self._lock:
            free = self._free.setdefault(key, [])
            if len(free) < MAX_WORKERS:
                free.append(buffer)


_scratch = _ScratchPool()
_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool)


def _worker_count() -> int:
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def _executor() -> ThreadPoolExecutor:
    """The shared decoding pool, made on first use (and again in a forked child,
    which inherits the pool object but none of its threads)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            pool = ThreadPoolExecutor(_worker_count(), thread_name_prefix="darts-cube-read")
            _pool = (os.getpid(), pool)
        return _pool[1]


@dataclass(frozen=True)
class _Piece:
    name: str  # which array
    key: str
    chunk: tuple[slice, slice]  # the needed part, in chunk pixels
    out: tuple[slice, slice]  # where it goes, in window pixels


def read_windows(
    store: Store, arrays: Mapping[str, zarr.Array], window: Window
) -> dict[str, np.ndarray]:
    """``array[window.slices]`` of each array as new numpy arrays (the window must lie
    inside every array), the chunks of all of them decoded by one pool of worker
    threads. Arrays without the plain Blosc layout are read through zarr."""
    out: dict[str, np.ndarray] = {}
    layouts: dict[str, tuple[tuple[int, int], np.dtype[Any]]] = {}
    pieces: list[_Piece] = []
    for name, array in arrays.items():
        rows, cols = array.shape[0], array.shape[-1]
        if window.row0 < 0 or window.col0 < 0 or window.row1 > rows or window.col1 > cols:
            raise ValueError(f"window {window} is not inside array {name!r} {array.shape}")
        chunk_shape = _plain_blosc_chunks(array)
        if chunk_shape is None:
            out[name] = np.asarray(array[window.slices])
            continue
        dtype = np.dtype(array.dtype)
        layouts[name] = (chunk_shape, dtype)
        out[name] = np.empty(window.shape, dtype)
        if not window.is_empty:
            pieces += _pieces(name, array.path, chunk_shape, window, array.metadata)
    if not pieces:
        return out
    # Widest types first: the big decodes are shared out before the small ones.
    pieces.sort(key=lambda piece: -layouts[piece.name][1].itemsize)
    todo: queue.SimpleQueue[_Piece] = queue.SimpleQueue()
    for piece in pieces:
        todo.put(piece)
    failed = threading.Event()

    def work() -> None:
        # Scratch chunks (one per layout) reused for every chunk this worker decodes,
        # then kept for the next read.
        scratch: dict[str, np.ndarray] = {}
        codec = numcodecs.Blosc()  # Blosc's frame header says how to decode
        prototype = default_buffer_prototype()
        try:
            while not failed.is_set():
                try:
                    piece = todo.get_nowait()
                except queue.Empty:
                    return
                # One chunk's bytes at a time, freed as soon as it is decoded: the
                # allocator hands the same memory back for the next chunk instead of
                # fresh pages (fetching several at once costs more in page faults
                # than it saves in round trips).
                decode(piece, sync(store.get(piece.key, prototype=prototype)), codec, scratch)
        except BaseException:
            failed.set()  # the other workers stop at their next chunk
            raise
        finally:
            for buffer in scratch.values():
                _scratch.give(buffer)

    def decode(
        piece: _Piece, buffer: Buffer | None, codec: Any, scratch: dict[str, np.ndarray]
    ) -> None:
        if buffer is None:  # never written: the whole chunk is the fill value
            out[piece.name][piece.out] = arrays[piece.name].metadata.fill_value
            return
        chunk_shape, dtype = layouts[piece.name]
        target = scratch.get(piece.name)
        if target is None:
            target = scratch[piece.name] = _scratch.take(chunk_shape, dtype)
        data = buffer.as_numpy_array()
        if len(data) < _BLOSC_HEADER or _decoded_size(data) != target.nbytes:
            raise ValueError(
                f"chunk {piece.key} does not decode to a {chunk_shape} {dtype} chunk; "
                "the cube is damaged"
            )
        codec.decode(data, out=target)
        out[piece.name][piece.out] = target[piece.chunk]

    workers = min(todo.qsize(), _worker_count())
    if workers <= 1:
        work()
    else:
        pool = _executor()
        futures = [pool.submit(work) for _ in range(workers)]
        wait(futures)  # all of them, so no worker still writes into ``out`` after this
        for future in futures:
            future.result()  # re-raises a worker's failure
    return out


def _plain_blosc_chunks(array: zarr.Array) -> tuple[int, int] | None:
    """The chunk shape, if the array is 2-D, regularly chunked, and stored as native
    byte order then Blosc and nothing else; None otherwise."""
    metadata = array.metadata
    if not isinstance(metadata, ArrayV3Metadata) or len(array.shape) != 2:
        return None
    grid = metadata.chunk_grid
    codecs = metadata.codecs
    if not isinstance(grid, RegularChunkGrid) or len(codecs) != 2:
        return None
    serializer, compressor = codecs
    dtype = np.dtype(array.dtype)
    if not isinstance(serializer, BytesCodec) or not isinstance(compressor, BloscCodec):
        return None
    native = "little" if np.little_endian else "big"
    endian = serializer.endian.value if serializer.endian is not None else None
    if not dtype.isnative or (dtype.itemsize > 1 and endian != native):
        return None
    rows, cols = grid.chunk_shape
    return int(rows), int(cols)


def _pieces(
    name: str, path: str, chunk_shape: tuple[int, int], window: Window, metadata: Any
) -> Iterator[_Piece]:
    rows, cols = chunk_shape
    prefix = f"{path}/" if path else ""
    for i in range(window.row0 // rows, (window.row1 - 1) // rows + 1):
        r0, r1 = max(window.row0, i * rows), min(window.row1, (i + 1) * rows)
        for j in range(window.col0 // cols, (window.col1 - 1) // cols + 1):
            c0, c1 = max(window.col0, j * cols), min(window.col1, (j + 1) * cols)
            yield _Piece(
                name=name,
                key=prefix + metadata.encode_chunk_key((i, j)),
                chunk=(slice(r0 - i * rows, r1 - i * rows), slice(c0 - j * cols, c1 - j * cols)),
                out=(
                    slice(r0 - window.row0, r1 - window.row0),
                    slice(c0 - window.col0, c1 - window.col0),
                ),
            )


def _decoded_size(frame: np.ndarray) -> int:
    return int.from_bytes(frame[4:8].tobytes(), "little")
