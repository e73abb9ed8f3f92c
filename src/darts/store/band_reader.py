"""Reading whole bands of a stored scene: chunk files straight from the commit record,
decoded by a small thread pool.

``SceneStore.open(load=True)`` through xarray and zarr costs about twice what reading
and decoding the chunk files does on 2 cores (zarr's async pipeline, per-chunk
dispatch, an extra copy). The commit record already lists every chunk file of a band
(chunks that are entirely nodata were never written and read as the fill value), so a
whole band needs no more than: read each file, Blosc-decode it (numcodecs' public
codec; it releases the GIL, so two threads decode at once) and copy it into place.

Every chunk's CRC-32C (the ``crc32c`` codec the store appends after Blosc) is checked
before it is decoded, and a chunk that fails it, or that does not decode to a whole
chunk (all a store written before the checksum can tell), raises the scene's
:class:`~darts.store.errors.CorruptChunkError`: never its pixels.

Only the layouts the store writes take this path: a 2-D regular chunk grid, default
chunk keys with "/", the codecs ``bytes`` (little endian), ``blosc`` and (since the
checksum was added) ``crc32c``. Any other array is read through zarr by the caller:
`read_bands` returns None for it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np

from darts.store.checksum import CODEC_NAME as CHECKSUM_NAME
from darts.store.checksum import ChecksumMismatch, has_checksum, payload
from darts.store.errors import CorruptChunkError
from darts.store.record import ArrayRecord

# Two decoders: the machines DARTS stages on have few cores, and Blosc spreads each
# decode over its own threads too.
READ_THREADS = 2
_POOL_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None
_SCRATCH = threading.local()


# A Blosc frame starts with 16 header bytes; bytes 4-8 hold the decoded size.
_BLOSC_HEADER = 16


@dataclass(frozen=True)
class _Chunk:
    key: str  # "c/<i>/<j>", for messages
    path: Path
    rows: slice
    cols: slice


@dataclass(frozen=True)
class _BandPlan:
    shape: tuple[int, int]
    dtype: np.dtype[Any]
    fill: Any
    chunks: tuple[int, int]
    checksum: bool  # whether each chunk file ends with its CRC-32C
    present: tuple[_Chunk, ...]
    # Chunks without a file (entirely nodata, never written) read as the fill value.
    absent: tuple[tuple[slice, slice], ...]


def read_bands(
    scene_dir: Path, records: Mapping[str, ArrayRecord], scene_id: str
) -> dict[str, np.ndarray] | None:
    """Every band of ``records`` as a numpy array, or None when any of them is not in
    the layout this reader handles (the caller then reads through zarr). A damaged
    chunk raises :class:`CorruptChunkError`; a lost one ``FileNotFoundError`` (the
    caller's stat check reports that first)."""
    plans = {}
    for name, record in records.items():
        plan = _plan(scene_dir / name, record)
        if plan is None:
            return None
        plans[name] = plan
    out = {name: np.empty(plan.shape, plan.dtype) for name, plan in plans.items()}
    tasks: list[tuple[str, _Chunk]] = []
    for name, plan in plans.items():
        for rows, cols in plan.absent:
            out[name][rows, cols] = plan.fill
        tasks += [(name, chunk) for chunk in plan.present]

    def decode(task: tuple[str, _Chunk]) -> None:
        name, chunk = task
        try:
            _decode(chunk, plans[name], out[name])
        except _Damaged as damaged:
            raise CorruptChunkError(scene_id, name, chunk.key, str(damaged), scene_dir) from None

    # list() re-raises the first failure (a missing or corrupt chunk file).
    list(_pool().map(decode, tasks))
    return out


def _plan(band_dir: Path, record: ArrayRecord) -> _BandPlan | None:
    try:
        meta = json.loads((band_dir / "zarr.json").read_text())
    except (OSError, ValueError):
        return None
    if not _handled(meta, record):
        return None
    dtype = np.dtype(record.dtype)
    rows, cols = (int(n) for n in record.shape)
    crow, ccol = (int(n) for n in record.chunks)
    stored_fill = meta.get("fill_value")
    fill = np.array(stored_fill, dtype=dtype) if stored_fill is not None else 0
    present: list[_Chunk] = []
    absent: list[tuple[slice, slice]] = []
    for i in range(-(-rows // crow)):
        for j in range(-(-cols // ccol)):
            r = slice(i * crow, min((i + 1) * crow, rows))
            c = slice(j * ccol, min((j + 1) * ccol, cols))
            key = f"c/{i}/{j}"
            if key in record.files:
                present.append(_Chunk(key, band_dir / key, r, c))
            else:
                absent.append((r, c))
    checksum = has_checksum(meta.get("codecs") or [])
    return _BandPlan(
        (rows, cols), dtype, fill, (crow, ccol), checksum, tuple(present), tuple(absent)
    )


def _handled(meta: Mapping[str, Any], record: ArrayRecord) -> bool:
    grid = meta.get("chunk_grid") or {}
    keys = meta.get("chunk_key_encoding") or {}
    codecs = [c.get("name") for c in meta.get("codecs") or []]
    bytes_codec = (meta.get("codecs") or [{}])[0]
    return (
        len(record.shape) == 2
        and grid.get("name") == "regular"
        and keys.get("name") == "default"
        and (keys.get("configuration") or {}).get("separator", "/") == "/"
        and codecs in (["bytes", "blosc"], ["bytes", "blosc", CHECKSUM_NAME])
        and (bytes_codec.get("configuration") or {}).get("endian", "little") == "little"
        and np.dtype(record.dtype).byteorder in ("<", "=", "|")
    )


class _Damaged(ValueError):
    """A chunk file's bytes fail their checksum or do not decode (why, in words)."""


def _decode(chunk: _Chunk, plan: _BandPlan, out: np.ndarray) -> None:
    # Decoding into one reused chunk-sized buffer per thread costs no fresh memory
    # (no page faults) per chunk; the copy into place then writes the result once.
    buffer = _buffer(plan.chunks, plan.dtype)
    frame = np.frombuffer(chunk.path.read_bytes(), np.uint8)
    if plan.checksum:
        try:
            frame = payload(frame)
        except ChecksumMismatch as mismatch:
            raise _Damaged(str(mismatch)) from None
    # A frame that would decode to another size is damaged too (the only check a
    # store written before the checksum gets); Blosc itself would refuse it anyway.
    if len(frame) < _BLOSC_HEADER or _decoded_size(frame) != buffer.nbytes:
        raise _Damaged(f"does not hold a Blosc frame of {plan.chunks} {plan.dtype}")
    codec = numcodecs.Blosc()  # the Blosc frame header says everything decoding needs
    try:
        codec.decode(frame, out=buffer)
    except (RuntimeError, ValueError) as error:
        raise _Damaged(f"does not decode ({error})") from None
    height = chunk.rows.stop - chunk.rows.start
    width = chunk.cols.stop - chunk.cols.start
    out[chunk.rows, chunk.cols] = buffer[:height, :width]


def _decoded_size(frame: np.ndarray) -> int:
    return int.from_bytes(frame[4:8].tobytes(), "little")


def _buffer(shape: tuple[int, int], dtype: np.dtype[Any]) -> np.ndarray:
    buffers: dict[tuple[Any, ...], np.ndarray] = getattr(_SCRATCH, "buffers", {})
    _SCRATCH.buffers = buffers
    key = (shape, dtype.str)
    if key not in buffers:
        buffers[key] = np.empty(shape, dtype)
    return buffers[key]


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(READ_THREADS, "darts-band-read")
        return _POOL
