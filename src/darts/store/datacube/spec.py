"""What a procedural datacube holds, and the interface of the sources that fill it.

A cube is filled one *source tile* at a time: an ArcticDEM mosaic tile, a block of the
TCVIS grid. A :class:`TileSource` names the tiles a pixel window needs (from the grid
alone, without the network) and fetches one tile into a :class:`TileBuffer`, a set
of arrays covering exactly that tile's window (disk-backed when large, so that even a
2 m ArcticDEM tile of 25,000² float32 is staged in bounded memory) before it is written
into the cube under the repository's commit lock.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from darts.grid.cube import CubeGrid, Window
from darts.store.scratch import buffer_prefix

TileStatus = Literal["filled", "empty"]

# Tile buffers up to this size (all variables) are kept in memory: a 10 m ArcticDEM
# tile (10,000² float32 + mask, 477 MiB) is then set to its fill values in ~0.2 s
# instead of ~2 s through the page faults of a file mapping
# (benchmarks/bench_aux_cube.py). Larger ones, such as a 2 m tile (25,000², 2.9 GiB),
# are disk-backed; a fill holds up to 3 buffers at once (2 fetching, 1 writing).
MEMORY_BUFFER_BYTES = 512 * 2**20


@dataclass(frozen=True)
class CubeVariable:
    name: str
    dtype: str  # numpy dtype name
    fill_value: float | int  # what unwritten pixels read as; never mistaken for data
    attrs: dict[str, Any] = field(default_factory=dict)
    # Stored as value × scale rounded to a whole number (a float dtype holds whole
    # numbers exactly up to 2^24 in float32), read back as stored / scale. For values
    # kept at a fixed decimal precision this loses nothing and about halves the
    # compressed bytes: the binary fractions of decimal values (1.37 m) are noise to a
    # compressor, whole numbers (137 cm) leave the low mantissa bits zero. Part of the
    # variable's identity: the same bytes mean other values with another scale.
    scale: int | None = None

    def __post_init__(self) -> None:
        if self.scale is not None and (self.scale < 1 or np.dtype(self.dtype).kind != "f"):
            raise ValueError(
                f"variable {self.name!r}: a scale must be a positive whole number on a "
                f"float variable, got {self.scale} on {self.dtype}"
            )

    @property
    def stored_fill(self) -> float | int:
        """The fill value as stored."""
        return self.fill_value if self.scale is None else self.fill_value * self.scale

    def encode(self, values: np.ndarray) -> np.ndarray:
        """``values`` (2-D) as stored: a new array of the variable's dtype."""
        dtype = np.dtype(self.dtype)
        if self.scale is None:
            return values.astype(dtype, copy=True)
        out = np.empty(values.shape, dtype)
        scale = float(self.scale)
        step = max(1, _ENCODE_STRIP // max(1, values.shape[-1]))
        for row in range(0, values.shape[0], step):
            part, stored = values[row : row + step], out[row : row + step]
            # In float32 while the products stay below 2^21: a float32 value and its
            # product are each within 1/8 of the whole number then (1.37 × 100 =
            # 137.0000004), so rounding finds it. Larger ones (beyond ±20 km at a 1 cm
            # scale) are redone in float64. A strip of rows at a time, cache-sized.
            if part.dtype == np.float32 and dtype == np.float32:
                np.multiply(part, np.float32(scale), out=stored)
                np.rint(stored, out=stored)
                if not stored.size or (
                    np.fmax.reduce(stored, axis=None) < _FLOAT32_EXACT
                    and np.fmin.reduce(stored, axis=None) > -_FLOAT32_EXACT
                ):
                    continue
            stored[...] = np.rint(np.multiply(part, scale, dtype=np.float64))
        return out


# Values encoded per step when a variable is stored scaled (1 Mi: 4 MiB of float32, in
# cache while it is multiplied, rounded and checked).
_ENCODE_STRIP = 2**20
# Scaled float32 values below this in magnitude are whole numbers found exactly by
# float32 arithmetic (see CubeVariable.encode).
_FLOAT32_EXACT = float(2**21)

# Arrays of a cube's CF georeferencing (darts.store.datacube.schema), beside its
# variables: no variable may take their names.
RESERVED_NAMES = ("x", "y", "spatial_ref")

BloscCodecName = Literal["zstd", "lz4", "lz4hc", "blosclz", "zlib"]
BloscShuffleName = Literal["auto", "shuffle", "bitshuffle", "noshuffle"]


@dataclass(frozen=True)
class CubeCompression:
    """How a cube's chunks are compressed (Blosc). Not part of a cube's identity:
    any compression reads back the same pixels, so a cube written with other settings
    is still opened; new chunks are written with the settings stored in the cube.

    ``shuffle="auto"`` picks bit-shuffle for 1-byte types (byte shuffle does nothing
    there) and byte shuffle for wider ones (floats compress better byte-shuffled).
    """

    # lz4hc decodes 3-4x faster than zstd at a ratio within ~5 % of zstd level 3
    # (cm-rounded float32 terrain, 2000² chunks: a 110 × 110 km read at 10 m took
    # 0.24-0.31 s against 0.44-0.74 s on 2 cores); reads are what every scene pays,
    # while the slower encode is paid once per tile.
    codec: BloscCodecName = "lz4hc"
    level: int = 5
    shuffle: BloscShuffleName = "auto"
    # Edge of the square blocks each chunk is compressed in, one Blosc frame each (a
    # zarr v3 sharded array: the cube's chunk is the shard, the block its inner chunk).
    # A read then decodes only the blocks it needs instead of whole chunks; None: a
    # chunk is one frame.
    block: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.level <= 9:
            raise ValueError(f"Blosc compression level must be 0..9, got {self.level}")
        if self.block is not None and self.block < 1:
            raise ValueError(f"block must be a positive number of pixels, got {self.block}")


@dataclass(frozen=True)
class CubeSpec:
    """Everything that must match between a cube on disk and the code opening it."""

    kind: str  # "arcticdem-10m", "tcvis"; a cube of another kind is refused
    grid: CubeGrid
    variables: tuple[CubeVariable, ...]
    chunk: int  # square chunk edge in pixels
    attrs: dict[str, Any] = field(default_factory=dict)
    compression: CubeCompression = field(default_factory=CubeCompression)

    def __post_init__(self) -> None:
        block = self.compression.block
        if block is not None and self.chunk % block:
            raise ValueError(f"the chunk edge {self.chunk} is not a multiple of the block {block}")
        taken = sorted({v.name for v in self.variables} & set(RESERVED_NAMES))
        if taken:
            raise ValueError(
                f"variable name(s) {', '.join(taken)} are taken by the cube's CF "
                "coordinates; choose others"
            )

    def variable(self, name: str) -> CubeVariable:
        for variable in self.variables:
            if variable.name == name:
                return variable
        raise KeyError(f"{self.kind} cube has no variable {name!r}")


@dataclass(frozen=True)
class TileFetch:
    """The outcome of fetching one tile.

    ``empty``: the source has no data for this tile (e.g. not in the ArcticDEM index,
    open ocean); recorded so that offline runs know it is complete, not missing.
    ``source``: what was read (item id, URLs, checksums), kept in the tile's record.
    """

    status: TileStatus
    source: dict[str, Any] = field(default_factory=dict)


class TileBuffer:
    """Arrays (one per variable) covering one tile's cube window: in memory up to
    ``MEMORY_BUFFER_BYTES`` in all, disk-backed (``directory``) beyond.

    Sources write with window-relative indices: ``buffer.arrays["dem"][r0:r1, c0:c1] = x``.
    Every array starts as the variable's fill value.
    """

    def __init__(self, spec: CubeSpec, window: Window, directory: Path) -> None:
        self.spec = spec
        self.window = window
        self.arrays: dict[str, np.ndarray] = {}
        pixels = window.height * window.width
        nbytes = sum(pixels * np.dtype(v.dtype).itemsize for v in spec.variables)
        for variable in spec.variables:
            dtype = np.dtype(variable.dtype)
            if nbytes <= MEMORY_BUFFER_BYTES:
                array = np.full(window.shape, variable.fill_value, dtype)
            else:
                path = directory / f"{variable.name}.npy"
                array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=window.shape)
                array[...] = variable.fill_value
            self.arrays[variable.name] = array

    def flush(self) -> None:
        for array in self.arrays.values():
            if isinstance(array, np.memmap):
                array.flush()


@contextmanager
def tile_buffer(spec: CubeSpec, window: Window, scratch_dir: Path) -> Iterator[TileBuffer]:
    """A :class:`TileBuffer` in a private temporary folder under ``scratch_dir``,
    removed afterwards (also after a failure)."""
    scratch_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=buffer_prefix(), dir=scratch_dir) as tmp:
        buffer = TileBuffer(spec, window, Path(tmp))
        try:
            yield buffer
        finally:
            buffer.arrays.clear()  # drop the memmaps before the folder goes


class TileSource(Protocol):
    """Where a cube's tiles come from. Network access happens only in ``fetch``."""

    description: str  # for messages: "ArcticDEM 10 m mosaic (PGC)"

    def tiles_for(self, window: Window) -> list[str]:
        """Ids of the source tiles overlapping ``window`` (cube pixels), sorted.
        Pure: from the grid alone, no network, no index."""
        ...

    def tile_window(self, tile_id: str) -> Window:
        """The cube pixels tile ``tile_id`` covers (clipped to the cube)."""
        ...

    def fetch(self, tile_id: str, into: TileBuffer) -> TileFetch:
        """Fetch the tile's data into ``into`` (window = ``tile_window(tile_id)``).

        Raises a :class:`darts.net.NetworkError` (or ``OfflineError``) when it cannot.
        """
        ...
