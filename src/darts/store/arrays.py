"""Writing one array into a staging folder, read back and fingerprinted.

Nothing here knows about scenes or commits: it produces a complete, verified,
fsync'ed zarr array folder and its manifest, and the caller decides when it
becomes visible.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.abc.codec import BytesBytesCodec
from zarr.storage import LocalStore

from darts.store.atomic import fsync_tree
from darts.store.errors import StoreError
from darts.store.manifest import FileEntry, build_manifest

# Rows are written a few chunk-rows at a time: enough chunks per step for zarr to
# compress them in parallel, few enough that memory stays bounded and a failed
# write is detected (and stops) early.
CHUNKS_PER_STEP = 8


@dataclass(frozen=True)
class ArraySpec:
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    chunks: tuple[int, ...]
    fill_value: Any
    # Bytes-to-bytes codecs after the bytes serializer: (Blosc, CRC-32C) for bands,
    # (CRC-32C,) for coordinates, () for none.
    compressors: tuple[BytesBytesCodec, ...]
    attributes: dict[str, Any]
    dimension_names: tuple[str, ...]


def write_staged_array(
    path: Path,
    spec: ArraySpec,
    values: Any,
    *,
    verify: bool,
    fsync: bool,
    after_step: Callable[[], None] | None = None,
) -> dict[str, FileEntry]:
    """Write ``values`` (anything indexable by row slices, e.g. numpy or a lazy
    xarray array) to a new zarr array at ``path``; return its manifest.

    ``verify`` reads every written step back and compares it with the source, so
    a band is only published if what is on disk decodes to exactly what we were
    given. Chunks that are entirely ``fill_value`` are not written
    (``write_empty_chunks=False``): for a scene that is 40 % nodata this saves
    their compression and their files, and reading them back yields the fill
    value anyway.
    """
    array = zarr.create_array(
        store=LocalStore(path),
        shape=spec.shape,
        chunks=spec.chunks,
        dtype=spec.dtype,
        fill_value=spec.fill_value,
        compressors=list(spec.compressors) or None,
        attributes=spec.attributes,
        dimension_names=spec.dimension_names,
        config={"write_empty_chunks": False},
        overwrite=False,
    )
    for rows in _steps(spec):
        source = np.asarray(values[rows], dtype=spec.dtype)
        array[rows] = source
        if verify:
            _compare(path, rows, source, np.asarray(array[rows]))
        if after_step is not None:
            after_step()
    if fsync:
        fsync_tree(path)
    return build_manifest(path)


def _steps(spec: ArraySpec) -> list[Any]:
    if len(spec.shape) == 0:
        return [()]
    rows, chunk_rows = spec.shape[0], spec.chunks[0]
    chunks_per_row = math.prod(
        math.ceil(n / c) for n, c in zip(spec.shape[1:], spec.chunks[1:], strict=True)
    )
    step = chunk_rows * max(1, CHUNKS_PER_STEP // max(1, chunks_per_row))
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)]


def _compare(path: Path, rows: Any, source: np.ndarray, stored: np.ndarray) -> None:
    equal_nan = source.dtype.kind in "fc"
    if not np.array_equal(source, stored, equal_nan=equal_nan):
        where = f"rows {rows.start}:{rows.stop}" if isinstance(rows, slice) else "value"
        raise StoreError(
            f"read-back of {path.name} {where} differs from what was written; the disk or "
            "filesystem is not reliable, nothing was published"
        )
