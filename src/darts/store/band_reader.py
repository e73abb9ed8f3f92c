"""Reading whole bands of a stored scene: chunk files straight from the commit record,
decoded by a small thread pool.

``SceneStore.open(load=True)`` through xarray and zarr costs about twice what reading
and decoding the chunk files does on 2 cores (zarr's async pipeline, per-chunk
dispatch, an extra copy). The commit record already lists every chunk file of a band
(chunks that are entirely nodata were never written and read as the fill value), so a
whole band needs no more than: read each file, Blosc-decode it (numcodecs' public
codec; it releases the GIL, so two threads decode at once) and copy it into place.

Only the layout the store writes takes this path: a 2-D regular chunk grid, default
chunk keys with "/", the codecs ``bytes`` (little endian) then ``blosc``. Any other
array (another codec chain, e.g. with a checksum codec) is read through zarr by the
caller: `read_band` returns None for it.
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

from darts.store.record import ArrayRecord

# Two decoders: the machines DARTS stages on have few cores, and Blosc spreads each
# decode over its own threads too.
READ_THREADS = 2
_POOL_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None
_SCRATCH = threading.local()


@dataclass(frozen=True)
class _Chunk:
    path: Path
    rows: slice
    cols: slice


@dataclass(frozen=True)
class _BandPlan:
    shape: tuple[int, int]
    dtype: np.dtype[Any]
    fill: Any
    chunks: tuple[int, int]
    present: tuple[_Chunk, ...]
    # Chunks without a file (entirely nodata, never written) read as the fill value.
    absent: tuple[tuple[slice, slice], ...]


def read_bands(scene_dir: Path, records: Mapping[str, ArrayRecord]) -> dict[str, np.ndarray] | None:
    """Every band of ``records`` as a numpy array, or None when any of them is not in
    the layout this reader handles (the caller then reads through zarr)."""
    plans = {}
    for name, record in records.items():
        plan = _plan(scene_dir / name, record)
        if plan is None:
            return None
        plans[name] = plan
    out = {name: np.empty(plan.shape, plan.dtype) for name, plan in plans.items()}
    tasks: list[tuple[str, _Chunk, np.dtype[Any], tuple[int, int]]] = []
    for name, plan in plans.items():
        for rows, cols in plan.absent:
            out[name][rows, cols] = plan.fill
        tasks += [(name, chunk, plan.dtype, plan.chunks) for chunk in plan.present]
    pool = _pool()
    # list() re-raises the first failure (a missing or corrupt chunk file).
    list(pool.map(lambda task: _decode(task[1], task[2], task[3], out[task[0]]), tasks))
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
                present.append(_Chunk(band_dir / key, r, c))
            else:
                absent.append((r, c))
    return _BandPlan((rows, cols), dtype, fill, (crow, ccol), tuple(present), tuple(absent))


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
        and codecs == ["bytes", "blosc"]
        and (bytes_codec.get("configuration") or {}).get("endian", "little") == "little"
        and np.dtype(record.dtype).byteorder in ("<", "=", "|")
    )


def _decode(chunk: _Chunk, dtype: np.dtype[Any], shape: tuple[int, int], out: np.ndarray) -> None:
    # Decoding into one reused chunk-sized buffer per thread costs no fresh memory
    # (no page faults) per chunk; the copy into place then writes the result once.
    buffer = _buffer(shape, dtype)
    codec = numcodecs.Blosc()  # the Blosc frame header says everything decoding needs
    codec.decode(chunk.path.read_bytes(), out=buffer)
    height = chunk.rows.stop - chunk.rows.start
    width = chunk.cols.stop - chunk.cols.start
    out[chunk.rows, chunk.cols] = buffer[:height, :width]


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
