"""How band arrays are chunked and compressed on disk.

Default: Blosc zstd level 3 with bit-shuffle, 2196² chunks, 1 MiB Blosc blocks. Chosen with
``benchmarks/bench_store_encoding.py`` on a realistic 10980² uint16 band (40 %
nodata), candidates interleaved, CPU seconds (medians, 2 shared cores) relative to
the reference encoding (same codec, 4096² chunks):

=================  =====  ===========  ==========  ==================
chunks             size   write (cpu)  read (cpu)  1024² window read
=================  =====  ===========  ==========  ==================
4096² (reference)  1.00   1.00         1.00        1.00
3660²              1.00   0.67–0.68    0.77–0.92   0.51–0.58
2196²              1.00   0.57–0.62    0.63–0.96   0.23–0.25
2048²              1.00   0.68–0.69    0.85–0.88   0.22–0.36
=================  =====  ===========  ==========  ==================

Both 3660 and 2196 divide 10980 (3 × 3 and 5 × 5 chunks), so no chunk is padded
at the edges; 4096² pads 10980 = 2·4096 + 2788 and 2048² pads 5·2048 + 740, which
is wasted compression work. 2196² wins on writing and is 2–4× cheaper when a
reader takes a patch-sized window (a 1024² window decodes at most four 9.6 MB
chunks instead of four 26.8 MB ones), and its finer grid skips more all-nodata
chunks (7 of 25 versus 2 of 9 at 40 % nodata). zstd 3 keeps the reference's size;
lz4 writes ~3× cheaper but is 7–9 % larger, zstd 5 saves 4 % for 15 % more write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from zarr.abc.codec import BytesBytesCodec
from zarr.codecs import BloscCodec

from darts.store.checksum import CODEC_NAME as CHECKSUM_NAME
from darts.store.checksum import codec as checksum_codec

Shuffle = Literal["bitshuffle", "shuffle", "noshuffle"]
Compressor = Literal["zstd", "lz4", "lz4hc", "blosclz", "zlib"]


@dataclass(frozen=True)
class BandEncoding:
    """Chunking and compression for the 2-D band arrays of a scene.

    ``chunk`` is the side of a square chunk in pixels; arrays smaller than that get
    one chunk along that axis. Tests use small chunks (e.g. 256) to get several
    chunks from small arrays.
    """

    chunk: int = 2196
    cname: Compressor = "zstd"
    clevel: int = 3
    shuffle: Shuffle = "bitshuffle"
    # Bytes per Blosc block inside a chunk. Blosc's automatic choice for zstd is a few
    # hundred KiB; 1 MiB blocks give zstd more context per block and make a full scene
    # ~3 % smaller than the reference encoding (4096² chunks) at equal decode speed,
    # measured on a full-world scene with benchmarks/bench_scene_read.py. 0 = automatic.
    blocksize: int = 1 << 20
    # Each chunk ends with its CRC-32C (Zarr v3's ``crc32c`` codec after Blosc), which
    # every read checks (darts.store.checksum): 4 bytes per chunk, and a few ms per
    # scene read (benchmarks/bench_scene_read.py prints the overhead).
    checksum: bool = True

    def __post_init__(self) -> None:
        if self.chunk < 1:
            raise ValueError(f"chunk must be a positive pixel count, got {self.chunk}")
        if not 0 <= self.clevel <= 9:
            raise ValueError(f"Blosc clevel must be 0..9, got {self.clevel}")
        if self.blocksize < 0:
            raise ValueError(f"Blosc blocksize must be >= 0 bytes, got {self.blocksize}")

    def chunks_for(self, shape: tuple[int, int]) -> tuple[int, int]:
        return (min(self.chunk, shape[0]) or 1, min(self.chunk, shape[1]) or 1)

    def codec(self, dtype: np.dtype[Any]) -> BloscCodec:
        # typesize must match the element size or (bit-)shuffle groups the wrong bytes.
        return BloscCodec(
            cname=self.cname,
            clevel=self.clevel,
            shuffle=self.shuffle,
            typesize=dtype.itemsize,
            blocksize=self.blocksize,
        )

    def compressors(self, dtype: np.dtype[Any]) -> tuple[BytesBytesCodec, ...]:
        """The bytes-to-bytes codecs of a band array: Blosc, then the checksum."""
        return (self.codec(dtype), checksum_codec()) if self.checksum else (self.codec(dtype),)

    def describe(self) -> dict[str, Any]:
        """What goes into the commit record (the array's zarr.json has the full codec)."""
        described: dict[str, Any] = {
            "codec": "blosc",
            "cname": self.cname,
            "clevel": self.clevel,
            "shuffle": self.shuffle,
            "blocksize": self.blocksize,
            "chunk": self.chunk,
        }
        if self.checksum:
            described["checksum"] = CHECKSUM_NAME
        return described


DEFAULT_ENCODING = BandEncoding()
