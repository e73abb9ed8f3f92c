"""Multihash parsing and verification for STAC `file:checksum` values."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from darts.net import ChecksumMismatch, StreamingVerifier, parse_multihash, to_multihash, verify
from darts.net.checksum import UnsupportedChecksum

# SHA3-256 of the empty string, as CDSE would write it for an empty file.
SHA3_EMPTY = "1620a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"


@pytest.mark.parametrize(
    ("prefix", "algorithm", "digest"),
    [
        ("1220", "sha2-256", hashlib.sha256(b"abc").hexdigest()),
        ("1620", "sha3-256", hashlib.sha3_256(b"abc").hexdigest()),
        ("1340", "sha2-512", hashlib.sha512(b"abc").hexdigest()),
        ("1440", "sha3-512", hashlib.sha3_512(b"abc").hexdigest()),
        ("d50110", "md5", hashlib.md5(b"abc").hexdigest()),
    ],
)
def test_parse_and_verify_known_prefixes(prefix: str, algorithm: str, digest: str) -> None:
    checksum = prefix + digest
    parsed = parse_multihash(checksum)
    assert parsed.algorithm == algorithm and parsed.hex == digest
    assert to_multihash(algorithm, b"abc") == checksum
    verify(b"abc", checksum, expected_size=3)
    with pytest.raises(ChecksumMismatch, match=algorithm):
        verify(b"abd", checksum, name="s3://eodata/x.jp2")


def test_known_sha3_vector() -> None:
    verify(b"", SHA3_EMPTY, expected_size=0)


def test_verify_file_streams_and_names_the_object(tmp_path: Path) -> None:
    data = b"0123456789" * 300_000  # 3 MB, more than one read chunk
    path = tmp_path / "B02_10m.jp2"
    path.write_bytes(data)
    verify(path, to_multihash("sha3-256", data), expected_size=len(data))
    verify(str(path), to_multihash("sha2-256", data))
    with pytest.raises(ChecksumMismatch) as info:
        verify(path, to_multihash("sha3-256", data[:-1]))
    assert "B02_10m.jp2" in str(info.value)
    with pytest.raises(ChecksumMismatch, match="size mismatch"):
        verify(path, None, expected_size=len(data) - 1)


def test_streaming_verifier_in_chunks() -> None:
    data = bytes(range(256)) * 100
    v = StreamingVerifier("obj", to_multihash("sha3-256", data), len(data))
    for i in range(0, len(data), 777):
        v.update(data[i : i + 777])
    v.verify()
    assert v.size == len(data)


@pytest.mark.parametrize(
    "bad",
    [
        "zz",  # not hex
        "1620abcd",  # declares 32 bytes, has 2
        "9920" + "00" * 32,  # unknown code 0x99
        "1210" + "00" * 16,  # sha2-256 with a 16-byte digest
        "16",  # truncated
    ],
)
def test_unusable_checksums_are_rejected(bad: str) -> None:
    with pytest.raises(UnsupportedChecksum):
        parse_multihash(bad)
