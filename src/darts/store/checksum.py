"""CRC-32C checksums on stored chunks: Zarr v3's ``crc32c`` codec, checked by our readers.

Every chunk DARTS writes (scene bands and coordinates, cube variables) ends with the
CRC-32C of the bytes before it: the standard ``crc32c`` bytes-to-bytes codec, last in
the array's codec chain (after Blosc), so any Zarr v3 reader checks it too. SHA-256s in
a scene's commit record catch every change as well, but only when something reads the
whole file back against them (``SceneStore.verify``); a flipped byte inside a
compressed chunk otherwise decodes into wrong pixels without any error. The checksum is
checked on every read instead: the ``crc32c`` package computes it at ~9.5 GB/s here (the
CPU's CRC instruction, interleaved; google-crc32c, which zarr uses, reached ~5 GB/s on
the same machine), a few milliseconds per scene next to the Blosc decoding.

Arrays written before the checksum was added have no ``crc32c`` codec; they are read
as they are (:func:`has_checksum` says which), and only a full ``verify`` against the
commit record can find a changed byte in them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import crc32c
import numpy as np
from numpy.typing import NDArray
from zarr.codecs import Crc32cCodec

CODEC_NAME = "crc32c"
# The checksum follows the data: 4 bytes, little-endian (the codec's layout).
CRC_BYTES = 4


class ChecksumMismatch(ValueError):
    """A chunk's bytes do not match the CRC-32C stored with them. The callers turn it
    into an error that names the scene or cube, the array and the chunk."""


def codec() -> Crc32cCodec:
    """The codec to append after the compressor of a new array."""
    return Crc32cCodec()


def has_checksum(codecs: Sequence[Mapping[str, Any]]) -> bool:
    """Whether an array's codec chain (the ``codecs`` of its zarr.json) ends with the
    ``crc32c`` codec, i.e. every chunk file ends with its checksum."""
    return bool(codecs) and codecs[-1].get("name") == CODEC_NAME


def payload(chunk: bytes | NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The bytes of ``chunk`` before its checksum (a view, no copy), once the checksum
    matches; raises :class:`ChecksumMismatch` saying how it does not (a truncated file
    fails too)."""
    view = np.frombuffer(chunk, np.uint8) if isinstance(chunk, bytes) else chunk.reshape(-1)
    if len(view) < CRC_BYTES:
        raise ChecksumMismatch(
            f"{len(view)} byte(s), too short to hold its {CRC_BYTES}-byte CRC-32C"
        )
    # The CRC of data followed by its own CRC (little-endian) is a constant, so the
    # whole chunk is checked in one call, without slicing off (copying) the data. crc32c
    # reads any buffer and releases the GIL over large ones, so other threads decode
    # meanwhile.
    if crc32c.crc32c(view) != _RESIDUE:
        data = view[:-CRC_BYTES]
        stored = int.from_bytes(view[-CRC_BYTES:].tobytes(), "little")
        raise ChecksumMismatch(
            f"CRC-32C mismatch: stored {stored:08x}, computed "
            f"{crc32c.crc32c(data):08x} over {len(data)} bytes"
        )
    return view[:-CRC_BYTES]


# CRC-32C of any data followed by its CRC-32C in little-endian order.
_RESIDUE = 0x48674BC7
