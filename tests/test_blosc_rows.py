"""Partial decoding of Blosc frames (``darts.store.blosc_rows``): the rows decoded
must be exactly those a full decode gives, for ranges inside one block, across
blocks and at the frame's ends; damaged frames are refused, not read past."""

from __future__ import annotations

import numcodecs
import numpy as np
import pytest

from darts.store import blosc_rows

pytestmark = pytest.mark.skipif(
    not blosc_rows.available(), reason="this numcodecs build does not export blosc_getitem"
)

# 300 rows of 64 float32 in Blosc blocks of 4 KiB (16 rows): 19 blocks, the last short.
ROWS, COLS = 300, 64
VALUES = np.random.default_rng(5).normal(100, 30, (ROWS, COLS)).round(2).astype(np.float32)
VALUES[40:50] = np.nan


def _frame(cname: str = "lz4", shuffle: int = numcodecs.Blosc.SHUFFLE) -> np.ndarray:
    codec = numcodecs.Blosc(cname, 5, shuffle, blocksize=4096)
    return np.frombuffer(codec.encode(VALUES), np.uint8)


@pytest.mark.parametrize(
    "rows", [(0, 300), (3, 9), (15, 17), (16, 32), (100, 263), (290, 300), (299, 300)]
)
@pytest.mark.parametrize(("cname", "shuffle"), [("lz4", 1), ("zstd", 2), ("blosclz", 0)])
def test_rows_equal_a_full_decode(rows: tuple[int, int], cname: str, shuffle: int) -> None:
    out = np.full((ROWS, COLS), -1.0, np.float32)
    assert blosc_rows.decode_rows(_frame(cname, shuffle), rows, out)
    n = rows[1] - rows[0]
    np.testing.assert_array_equal(out[:n], VALUES[rows[0] : rows[1]])
    assert (out[n:] == -1.0).all()  # nothing written beyond the rows asked for


def test_a_truncated_frame_is_refused() -> None:
    frame = _frame()
    out = np.empty((ROWS, COLS), np.float32)
    with pytest.raises(ValueError, match="header does not match its length"):
        blosc_rows.decode_rows(frame[: len(frame) // 2], (200, 210), out)


def test_rows_must_fit_the_buffer() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        blosc_rows.decode_rows(_frame(), (0, 20), np.empty((10, COLS), np.float32))
    with pytest.raises(ValueError, match="do not fit"):
        blosc_rows.decode_rows(_frame(), (0, 5), np.empty((COLS, 20), np.float32).T)
