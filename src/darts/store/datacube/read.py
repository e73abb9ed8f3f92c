"""Reading a pixel window of cube arrays: the chunks it needs, fetched and decoded directly.

zarr's own read path decodes every chunk into a freshly allocated chunk-sized buffer
(a 16 MiB float32 chunk of 2048² is 4096 fresh pages, each a page fault) before
copying the window's part out, and goes through its async codec pipeline. For the
layouts the cube writes (native-endian bytes, then Blosc; whole chunks, or the inner
chunks of shards) this module fetches each needed chunk from the store, decodes what
the window needs into a scratch buffer reused from read to read, and copies (or, for
values stored scaled, divides) the window's part into the result:

- of a chunk whose rows the window needs only some of, only the Blosc blocks holding
  those rows are decoded (:mod:`darts.store.blosc_rows`);
- of a shard, only the inner chunks ("blocks") the window touches are fetched (its
  index, then one byte range) and decoded.

Blosc releases the GIL, so the chunks of all arrays are shared out over a small pool
of worker threads, kept between reads (starting threads for every read costs
milliseconds on a busy machine); each worker fetches its next chunk while decoding
the current one. Any other layout (a cube written by other code) is read through
zarr. ``benchmarks/bench_aux_cube.py`` compares both with the floor.

Each fetched frame's CRC-32C (the ``crc32c`` codec after Blosc, in cubes made since it
was added) is checked before anything of it is decoded, so a window that needs only a
few rows of a chunk still checks all of its bytes (at several GB/s). A frame that fails
it, or whose Blosc header or shard index does not fit, raises :class:`DamagedChunk`
naming the array and chunk; the cube turns it into an error naming its tiles.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import crc32c
import numcodecs
import numpy as np
import zarr
from zarr.abc.buffer import BufferPrototype
from zarr.abc.store import RangeByteRequest, Store, SuffixByteRequest
from zarr.buffer import default_buffer_prototype
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec

from darts.grid.cube import Window
from darts.store.blosc_rows import decode_rows
from darts.store.checksum import ChecksumMismatch, payload
from darts.store.datacube.aio import event_loop

# Decoding threads: Blosc decodes one chunk per thread at a time, so more threads than
# cores only multiply scratch buffers (one chunk each).
MAX_WORKERS = 4
# A Blosc frame starts with 16 header bytes; bytes 4-8 hold the decoded size.
_BLOSC_HEADER = 16
# A shard's index (at its end): (offset, length) as little-endian uint64 per inner
# chunk, row-major, then its CRC-32C; both all-ones for an inner chunk never written.
_INDEX_ENTRY = np.dtype("<u8")
_ABSENT = 2**64 - 1
_CRC_BYTES = 4


class DamagedChunk(ValueError):
    """A stored chunk of ``array`` that fails its checksum or does not decode.

    ``key`` is the chunk's store key, ``index`` its (row, column) in the chunk grid
    (None when zarr read it and did not say which)."""

    def __init__(self, array: str, key: str | None, index: tuple[int, int] | None, reason: str):
        self.array = array
        self.key = key
        self.index = index
        self.reason = reason
        where = f"chunk {key}" if key else "a chunk"
        super().__init__(f"array {array!r}, {where} is damaged: {reason}")


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
class _Layout:
    """How one array's chunks are stored: each chunk (the object in the store) holds
    either one Blosc frame (``block == chunk``) or, sharded, a grid of ``block``-shaped
    Blosc frames followed by their index (even a grid of one)."""

    chunk: tuple[int, int]
    block: tuple[int, int]
    sharded: bool
    checksum: bool  # each Blosc frame is followed by its CRC-32C
    dtype: np.dtype[Any]
    fill_value: Any  # as read (divided by the divisor)
    divisor: Any  # stored values are divided by this when read; None: as stored

    @property
    def blocks(self) -> tuple[int, int]:
        return self.chunk[0] // self.block[0], self.chunk[1] // self.block[1]

    @property
    def index_bytes(self) -> int:
        rows, cols = self.blocks
        return rows * cols * 2 * _INDEX_ENTRY.itemsize + _CRC_BYTES


@dataclass(frozen=True)
class _Piece:
    name: str  # which array
    key: str
    index: tuple[int, int]  # the chunk's (row, column) in the chunk grid
    chunk: Window  # the needed part, in chunk pixels
    out: Window  # where it goes, in window pixels


@dataclass(frozen=True)
class _Fetched:
    """Bytes of one chunk object: all of it, or (a part of a shard) the span of the
    frames a piece needs, starting at byte ``base`` of the object."""

    data: np.ndarray  # uint8; a shard's frames only (its index is parsed into entries)
    base: int
    entries: np.ndarray | None  # a shard's (offset, length) per block; None: not sharded


async def _fetch(
    store: Store, piece: _Piece, layout: _Layout, prototype: BufferPrototype
) -> _Fetched | None:
    """The bytes ``piece`` needs, or None for a chunk never written. A piece that needs
    only part of a shard reads the shard's index, then just the span of byte ranges
    of the blocks it needs (a 10 km read of 2048² shards of 512² blocks: ~2 MB
    instead of ~25 MB)."""
    whole = Window(0, layout.chunk[0], 0, layout.chunk[1])
    if not layout.sharded or piece.chunk == whole:
        buffer = await store.get(piece.key, prototype=prototype)
        if buffer is None:
            return None
        data = buffer.as_numpy_array()
        if not layout.sharded:
            return _Fetched(data, 0, None)
        frames = max(len(data) - layout.index_bytes, 0)
        return _Fetched(data[:frames], 0, _shard_index(piece, data[frames:], layout))
    tail = await store.get(
        piece.key, prototype=prototype, byte_range=SuffixByteRequest(layout.index_bytes)
    )
    if tail is None:
        return None
    entries = _shard_index(piece, tail.as_numpy_array(), layout)
    wanted = np.array([entries[i, j] for i, j, _ in piece.chunk.cells(*layout.block)])
    present = wanted[wanted[:, 0] != _ABSENT]
    if not len(present):
        return _Fetched(np.empty(0, np.uint8), 0, entries)
    start, end = int(present[:, 0].min()), int((present[:, 0] + present[:, 1]).max())
    short = _damaged(piece, "the shard is shorter than its index says")
    try:
        span = await store.get(
            piece.key, prototype=prototype, byte_range=RangeByteRequest(start, end)
        )
    except ValueError as error:  # icechunk >= 2 refuses a range past the object's end
        raise short from error
    data = span.as_numpy_array() if span is not None else np.empty(0, np.uint8)
    if len(data) != end - start:  # others (icechunk 1, local files) return what there is
        raise short
    return _Fetched(data, start, entries)


def _damaged(piece: _Piece, reason: str) -> DamagedChunk:
    return DamagedChunk(piece.name, piece.key, piece.index, reason)


def _shard_index(piece: _Piece, index: np.ndarray, layout: _Layout) -> np.ndarray:
    """A shard's index bytes as (offset, length) per block, its CRC-32C checked."""
    if len(index) != layout.index_bytes or crc32c.crc32c(index[:-_CRC_BYTES]) != int.from_bytes(
        index[-_CRC_BYTES:].tobytes(), "little"
    ):
        raise _damaged(piece, "the shard's index fails its CRC-32C")
    entries = np.frombuffer(index[:-_CRC_BYTES].tobytes(), _INDEX_ENTRY)
    return entries.reshape(*layout.blocks, 2)


class _Decoder:
    """One worker's decoding state: a Blosc codec and a scratch block per layout
    (taken from the shared pool, given back when the worker ends)."""

    def __init__(self, out: dict[str, np.ndarray], layouts: dict[str, _Layout]) -> None:
        self.out = out
        self.layouts = layouts
        self.codec = numcodecs.Blosc()  # Blosc's frame header says how to decode
        self.scratch: dict[str, np.ndarray] = {}

    def release(self) -> None:
        for buffer in self.scratch.values():
            _scratch.give(buffer)
        self.scratch.clear()

    def piece(self, piece: _Piece, fetched: _Fetched | None) -> None:
        layout = self.layouts[piece.name]
        target = self.out[piece.name]
        if fetched is None:  # never written: the whole chunk is the fill value
            target[piece.out.slices] = layout.fill_value
            return
        if fetched.entries is None:
            self._block(piece, fetched.data, piece.chunk, piece.out, target)
            return
        need = piece.chunk
        for i, j, block in need.cells(*layout.block):
            part = block.intersection(need)
            out = part.relative_to(need).offset(piece.out.row0, piece.out.col0)
            offset, length = (int(v) for v in fetched.entries[i, j])
            if offset == _ABSENT:  # an inner chunk never written: fill
                target[out.slices] = layout.fill_value
                continue
            start = offset - fetched.base
            if start < 0 or start + length > len(fetched.data):
                raise _damaged(piece, "the shard's index points past its end")
            frame = fetched.data[start : start + length]
            self._block(piece, frame, part.relative_to(block), out, target)

    def _block(
        self, piece: _Piece, frame: np.ndarray, part: Window, out: Window, target: np.ndarray
    ) -> None:
        """Decode one Blosc frame (a whole chunk, or one inner chunk of a shard) into
        scratch and copy its ``part`` to ``out`` of ``target``."""
        layout = self.layouts[piece.name]
        scratch = self.scratch.get(piece.name)
        if scratch is None:
            scratch = self.scratch[piece.name] = _scratch.take(layout.block, layout.dtype)
        if layout.checksum:
            try:
                frame = payload(frame)
            except ChecksumMismatch as mismatch:
                raise _damaged(piece, str(mismatch)) from None
        if len(frame) < _BLOSC_HEADER or _decoded_size(frame) != scratch.nbytes:
            raise _damaged(piece, f"does not decode to {layout.block} {layout.dtype} blocks")
        try:
            partial = part.height < layout.block[0] and decode_rows(
                frame, (part.row0, part.row1), scratch
            )
        except ValueError as error:
            raise _damaged(piece, str(error)) from None
        if partial:
            # Only the Blosc blocks holding the rows needed were decoded, into the
            # first rows of scratch.
            decoded = scratch[: part.height, part.col0 : part.col1]
        else:
            try:
                self.codec.decode(frame, out=scratch)
            except (RuntimeError, ValueError) as error:
                raise _damaged(piece, f"does not decode ({error})") from None
            decoded = scratch[part.slices]
        if layout.divisor is None:
            target[out.slices] = decoded
        else:  # the copy and the division in one pass
            np.divide(decoded, layout.divisor, out=target[out.slices])


def read_windows(
    store: Store,
    arrays: Mapping[str, zarr.Array],
    window: Window,
    divisors: Mapping[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """``array[window.slices]`` of each array as new numpy arrays (the window must lie
    inside every array), the chunks of all of them decoded by one pool of worker
    threads. Arrays in any other layout than the two this module knows are read
    through zarr. The values of the arrays named in ``divisors`` (float arrays) are
    divided by their divisor, in the array's dtype."""
    divisors = divisors or {}
    out: dict[str, np.ndarray] = {}
    layouts: dict[str, _Layout] = {}
    pieces: list[_Piece] = []
    for name, array in arrays.items():
        rows, cols = array.shape[0], array.shape[-1]
        if window.row0 < 0 or window.col0 < 0 or window.row1 > rows or window.col1 > cols:
            raise ValueError(f"window {window} is not inside array {name!r} {array.shape}")
        divisor = divisors.get(name)
        if divisor is not None and np.dtype(array.dtype).kind != "f":
            raise ValueError(f"array {name!r} is {array.dtype}: only floats are divided")
        layout = _layout(array, divisor)
        if layout is None:
            try:
                values = np.asarray(array[window.slices])
            except ValueError as error:  # zarr's own checks (crc32c) say no more
                raise DamagedChunk(name, None, None, str(error)) from None
            if divisor is not None:
                np.divide(values, values.dtype.type(divisor), out=values)
            out[name] = values
            continue
        layouts[name] = layout
        out[name] = np.empty(window.shape, layout.dtype)
        if not window.is_empty:
            pieces += _pieces(name, array.path, layout.chunk, window, array.metadata)
    if not pieces:
        return out
    # Widest types first: the big decodes are shared out before the small ones.
    pieces.sort(key=lambda piece: -layouts[piece.name].dtype.itemsize)
    todo: queue.SimpleQueue[_Piece] = queue.SimpleQueue()
    for piece in pieces:
        todo.put(piece)
    failed = threading.Event()

    def work() -> None:
        decoder = _Decoder(out, layouts)
        prototype = default_buffer_prototype()
        loop = event_loop()

        def fetch() -> tuple[_Piece, Future[_Fetched | None]] | None:
            try:
                piece = todo.get_nowait()
            except queue.Empty:
                return None
            coroutine = _fetch(store, piece, layouts[piece.name], prototype)
            return piece, asyncio.run_coroutine_threadsafe(coroutine, loop)

        # Each worker fetches its next chunk while it decodes the current one: the
        # store's I/O threads then overlap the decoding instead of the worker
        # waiting for every fetch. Only one chunk ahead, so the allocator mostly
        # hands the memory of the chunk just decoded back for the next one.
        ahead = fetch()
        try:
            while ahead is not None and not failed.is_set():
                piece, fetching = ahead
                ahead = fetch()
                decoder.piece(piece, fetching.result())
        except BaseException:
            failed.set()  # the other workers stop at their next chunk
            raise
        finally:
            decoder.release()
            if ahead is not None:
                ahead[1].cancel()

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


def _layout(array: zarr.Array, divisor: int | None = None) -> _Layout | None:
    """The array's layout if it is 2-D, regularly chunked, and stored as native byte
    order then Blosc (then, optionally, CRC-32C), whole or in the inner chunks of
    shards indexed at their end (CRC-32C checked); None otherwise."""
    metadata = array.metadata
    if metadata.zarr_format != 3 or len(array.shape) != 2:
        return None
    # Only a regular chunk grid has one stored-object shape (zarr >= 3.2 knows others);
    # the grid's name is part of the array's public metadata document.
    if (metadata.to_dict().get("chunk_grid") or {}).get("name") != "regular":
        return None
    stored = array.shards or array.chunks  # the stored objects: shards, or whole chunks
    dtype = np.dtype(array.dtype)
    chunk = (int(stored[0]), int(stored[1]))
    codecs = metadata.codecs
    block = chunk
    sharding = codecs[0] if len(codecs) == 1 else None
    sharded = isinstance(sharding, ShardingCodec)
    if isinstance(sharding, ShardingCodec):
        index_codecs = sharding.index_codecs
        if (
            _literal(sharding.index_location) != "end"
            or len(index_codecs) != 2
            or not _is_bytes(index_codecs[0], np.dtype("<u8"))
            or not isinstance(index_codecs[1], Crc32cCodec)
        ):
            return None
        block = (int(sharding.chunk_shape[0]), int(sharding.chunk_shape[1]))
        if chunk[0] % block[0] or chunk[1] % block[1]:
            return None
        codecs = sharding.codecs
    checksum = len(codecs) == 3 and isinstance(codecs[2], Crc32cCodec)
    if len(codecs) != 2 + checksum or not isinstance(codecs[1], BloscCodec) or not dtype.isnative:
        return None
    if not _is_bytes(codecs[0], dtype):
        return None
    if divisor is None:
        return _Layout(chunk, block, sharded, checksum, dtype, metadata.fill_value, None)
    # In the array's dtype: float32 / float32(100) is the nearest float32 to k / 100
    # for every whole k up to 2^24, the same value a float64 division would round to.
    typed = dtype.type(divisor)
    return _Layout(chunk, block, sharded, checksum, dtype, metadata.fill_value / typed, typed)


def _is_bytes(codec: object, dtype: np.dtype[Any]) -> bool:
    """Whether ``codec`` stores ``dtype`` as its bytes in ``dtype``'s byte order."""
    if not isinstance(codec, BytesCodec):
        return False
    if dtype.itemsize == 1:
        return True
    order = (
        "little"
        if dtype.byteorder == "<" or (dtype.byteorder == "=" and np.little_endian)
        else "big"
    )
    return codec.endian is not None and _literal(codec.endian) == order


def _literal(value: object) -> object:
    """A codec setting as its JSON string: zarr < 3.2 holds enums (``Endian.little``,
    ``ShardingCodecIndexLocation.end``), later versions the strings themselves."""
    return getattr(value, "value", value)


def _pieces(
    name: str, path: str, chunk_shape: tuple[int, int], window: Window, metadata: Any
) -> Iterator[_Piece]:
    prefix = f"{path}/" if path else ""
    for i, j, chunk in window.cells(*chunk_shape):
        part = chunk.intersection(window)
        yield _Piece(
            name=name,
            key=prefix + metadata.encode_chunk_key((i, j)),
            index=(i, j),
            chunk=part.relative_to(chunk),
            out=part.relative_to(window),
        )


def _decoded_size(frame: np.ndarray) -> int:
    return int.from_bytes(frame[4:8].tobytes(), "little")
