"""How band arrays are chunked and compressed on disk.

The default was chosen with ``benchmarks/bench_store_encoding.py`` (see its
docstring for the numbers). In short: Blosc zstd level 3 with bit-shuffle keeps
the reference's on-disk size, and 3660² chunks divide a 10980² Sentinel-2 band
into exactly 3 × 3 chunks, so no chunk is padded at the edges (4096² chunks pad
10980 = 2·4096 + 2788, wasting compression and decompression work).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from zarr.codecs import BloscCodec

Shuffle = Literal["bitshuffle", "shuffle", "noshuffle"]
Compressor = Literal["zstd", "lz4", "lz4hc", "blosclz", "zlib"]


@dataclass(frozen=True)
class BandEncoding:
    """Chunking and compression for the 2-D band arrays of a scene.

    ``chunk`` is the side of a square chunk in pixels; arrays smaller than that get
    one chunk along that axis. Tests use small chunks (e.g. 256) to get several
    chunks from small arrays.
    """

    chunk: int = 3660
    cname: Compressor = "zstd"
    clevel: int = 3
    shuffle: Shuffle = "bitshuffle"

    def __post_init__(self) -> None:
        if self.chunk < 1:
            raise ValueError(f"chunk must be a positive pixel count, got {self.chunk}")
        if not 0 <= self.clevel <= 9:
            raise ValueError(f"Blosc clevel must be 0..9, got {self.clevel}")

    def chunks_for(self, shape: tuple[int, int]) -> tuple[int, int]:
        return (min(self.chunk, shape[0]) or 1, min(self.chunk, shape[1]) or 1)

    def codec(self, dtype: np.dtype[Any]) -> BloscCodec:
        # typesize must match the element size or (bit-)shuffle groups the wrong bytes.
        return BloscCodec(
            cname=self.cname, clevel=self.clevel, shuffle=self.shuffle, typesize=dtype.itemsize
        )

    def describe(self) -> dict[str, Any]:
        """What goes into the commit record (the array's zarr.json has the full codec)."""
        return {
            "codec": "blosc",
            "cname": self.cname,
            "clevel": self.clevel,
            "shuffle": self.shuffle,
            "chunk": self.chunk,
        }


DEFAULT_ENCODING = BandEncoding()
