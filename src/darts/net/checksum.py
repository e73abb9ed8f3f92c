"""Verify downloads against STAC `file:size` and `file:checksum` (multihash hex strings).

A multihash is `<varint hash code><varint digest length><digest>`, written as hex in
STAC. CDSE uses `1620…` (SHA3-256, 32 bytes); `1220…` is SHA2-256. Verifying whole-file
downloads against these is what turns "the connection dropped at 97 %" or "a proxy
returned an HTML error page" into a retry instead of a silently corrupt band.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from darts.net.errors import ChecksumMismatch

# multicodec code -> (name, hashlib constructor). Only hashes that hashlib always has.
_ALGORITHMS: dict[int, tuple[str, Callable[..., Any]]] = {
    0x11: ("sha1", hashlib.sha1),
    0x12: ("sha2-256", hashlib.sha256),
    0x13: ("sha2-512", hashlib.sha512),
    0x14: ("sha3-512", hashlib.sha3_512),
    0x15: ("sha3-384", hashlib.sha3_384),
    0x16: ("sha3-256", hashlib.sha3_256),
    0x17: ("sha3-224", hashlib.sha3_224),
    0x20: ("sha2-384", hashlib.sha384),
    0xD5: ("md5", hashlib.md5),
}

_FILE_CHUNK = 1 << 20


class UnsupportedChecksum(ValueError):
    """The checksum string is not a multihash this module can verify."""


@dataclass(frozen=True)
class Multihash:
    code: int
    algorithm: str
    digest: bytes

    @property
    def hex(self) -> str:
        return self.digest.hex()

    def new_hasher(self) -> Any:
        return _ALGORITHMS[self.code][1]()


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise UnsupportedChecksum("truncated multihash varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise UnsupportedChecksum("multihash varint too long")


def parse_multihash(checksum_hex: str) -> Multihash:
    """Parse a STAC `file:checksum` value. Raises `UnsupportedChecksum` if not usable."""
    try:
        raw = bytes.fromhex(checksum_hex.strip())
    except ValueError:
        raise UnsupportedChecksum(f"not a hex string: {checksum_hex!r}") from None
    code, pos = _read_varint(raw, 0)
    length, pos = _read_varint(raw, pos)
    if code not in _ALGORITHMS:
        raise UnsupportedChecksum(f"unsupported multihash code 0x{code:x} in {checksum_hex!r}")
    digest = raw[pos:]
    if len(digest) != length:
        raise UnsupportedChecksum(
            f"multihash {checksum_hex!r} declares {length} digest bytes but has {len(digest)}"
        )
    name, ctor = _ALGORITHMS[code]
    if ctor().digest_size != length:
        raise UnsupportedChecksum(f"{name} digests are {ctor().digest_size} bytes, not {length}")
    return Multihash(code, name, digest)


def to_multihash(algorithm: str, data: bytes) -> str:
    """The multihash hex string of `data` (used by tests and the sandbox)."""
    for code, (name, ctor) in _ALGORITHMS.items():
        if name == algorithm:
            digest: bytes = ctor(data).digest()
            return (_varint(code) + _varint(len(digest)) + digest).hex()
    raise UnsupportedChecksum(f"unknown algorithm {algorithm!r}")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


class StreamingVerifier:
    """Hash and count bytes as they arrive, then check size and checksum once at the end.

    Either expectation may be None (not checked). `name` is what error messages call the
    object (a URL or s3:// href).
    """

    def __init__(
        self, name: str, checksum: str | None = None, expected_size: int | None = None
    ) -> None:
        self.name = name
        self.expected_size = expected_size
        self._multihash = parse_multihash(checksum) if checksum else None
        self._hasher = self._multihash.new_hasher() if self._multihash else None
        self.size = 0

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        self.size += len(chunk)
        if self._hasher is not None:
            self._hasher.update(chunk)

    def verify(self) -> None:
        """Raise `ChecksumMismatch` if size or digest differ from the expectations."""
        if self.expected_size is not None and self.size != self.expected_size:
            raise ChecksumMismatch(
                self.name, "size", f"{self.expected_size} bytes", f"{self.size} bytes"
            )
        if self._multihash is not None and self._hasher is not None:
            actual = self._hasher.digest()
            if actual != self._multihash.digest:
                raise ChecksumMismatch(
                    self.name, self._multihash.algorithm, self._multihash.hex, actual.hex()
                )


def verify(
    data_or_path: bytes | bytearray | memoryview | str | os.PathLike[str],
    checksum_hex: str | None,
    expected_size: int | None = None,
    *,
    name: str | None = None,
) -> None:
    """Check bytes in memory or a file on disk; raise `ChecksumMismatch` naming the object.

    A `str` is taken as a path (bytes are never passed as `str`).
    """
    if isinstance(data_or_path, bytes | bytearray | memoryview):
        verifier = StreamingVerifier(name or "<bytes>", checksum_hex, expected_size)
        verifier.update(data_or_path)
    else:
        path = Path(data_or_path)
        verifier = StreamingVerifier(name or str(path), checksum_hex, expected_size)
        with path.open("rb") as f:
            while chunk := f.read(_FILE_CHUNK):
                verifier.update(chunk)
    verifier.verify()
