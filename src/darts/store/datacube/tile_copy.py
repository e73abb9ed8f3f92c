"""Copying a staged tile into the cube arrays in bounded memory.

A tile buffer is a disk-backed memmap that can be far larger than memory (a 2 m
ArcticDEM tile is 25,000² float32). It is written in blocks cut at chunk boundaries:
one chunk row high and as many whole chunks wide as fit the budget, so each chunk is
encoded once per block and only one block's chunks are in memory at a time. Variables
stored scaled (:attr:`CubeVariable.scale`) are encoded block by block on the way.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import zarr

from darts.store.datacube.spec import CubeSpec, TileBuffer

# Tile pixels go into the cube in blocks of whole chunks of about this size, so a
# 25,000² tile never has to be in memory at once.
_WRITE_BLOCK_BYTES = 256 * 2**20


def copy_tile(cube: zarr.Group, buffer: TileBuffer, spec: CubeSpec) -> None:
    """Write the buffer into its window of the cube arrays, a block of whole chunks at a
    time (bounded memory; each chunk is encoded once per block)."""
    window = buffer.window
    chunk = spec.chunk
    itemsize = max(np.dtype(v.dtype).itemsize for v in spec.variables)
    block_cols = chunk * max(1, _WRITE_BLOCK_BYTES // (chunk * chunk * itemsize))
    targets = {v.name: cube[v.name] for v in spec.variables}
    for row0, row1 in _aligned_spans(window.row0, window.row1, chunk):
        for col0, col1 in _aligned_spans(window.col0, window.col1, block_cols):
            rows = slice(row0 - window.row0, row1 - window.row0)
            cols = slice(col0 - window.col0, col1 - window.col0)
            for variable in spec.variables:
                values = buffer.arrays[variable.name][rows, cols]
                if variable.scale is not None:
                    values = variable.encode(values)
                targets[variable.name][row0:row1, col0:col1] = values  # type: ignore[index]


def _aligned_spans(start: int, stop: int, step: int) -> Iterator[tuple[int, int]]:
    """[start, stop) cut at the multiples of ``step`` (chunk boundaries)."""
    position = start
    while position < stop:
        end = min(stop, (position // step + 1) * step)
        yield position, end
        position = end
