"""Where a TIFF keeps what: the bytes GDAL needs to open it and each block's bytes.

Remote COGs are read by fetching their bytes through our own retrying client and
handing GDAL only those bytes, from memory (`darts.net.cog`). For that we must know,
before GDAL sees the file, which byte ranges it will read:

- to open it: the header, GDAL's "ghost" structural-metadata area right after it, and
  every image file directory (IFD) of the chain with its out-of-line tag values;
- to read a window of the full-resolution image: the blocks (tiles, or strips) the
  window touches, each with the 4 bytes either side that GDAL's COG layout may use as
  a block leader (the block's size) and trailer (its last 4 bytes repeated).

This module parses exactly that, from classic TIFF and BigTIFF in either byte order.
It is pure: bytes come from a ``read(start, stop)`` callable.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

ByteRange = tuple[int, int]
# read(start, stop) -> the bytes [start, stop) of the file (fewer only at its end).
ReadBytes = Callable[[int, int], bytes]

# Tag type -> bytes per value (TIFF 6.0 and BigTIFF). Unknown types are skipped, as
# libtiff skips them.
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_TYPE_SIZE.update({16: 8, 17: 8, 18: 8})
_UNSIGNED = {1: "B", 3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q"}

IMAGE_WIDTH, IMAGE_LENGTH = 256, 257
STRIP_OFFSETS, SAMPLES_PER_PIXEL, ROWS_PER_STRIP, STRIP_BYTE_COUNTS = 273, 277, 278, 279
PLANAR_CONFIGURATION = 284
TILE_WIDTH, TILE_LENGTH, TILE_OFFSETS, TILE_BYTE_COUNTS = 322, 323, 324, 325

_GHOST_KEY = b"GDAL_STRUCTURAL_METADATA_SIZE="
# The ghost area's first line: the key, six digits, " bytes\n".
_GHOST_LINE = len(_GHOST_KEY) + len(b"000000 bytes\n")
# Bytes GDAL's COG layout keeps before (leader: the block size) and after (trailer:
# the block's last 4 bytes) each block; fetched with the block so GDAL finds them.
BLOCK_MARGIN = 4
# A chain longer than this is a broken or hostile file, not a pyramid.
_MAX_IFDS = 1000


class TiffLayoutError(ValueError):
    """The bytes are not a TIFF this reader understands."""


@dataclass(frozen=True)
class ImageBlocks:
    """The blocks of one image (the full-resolution one): their grid and bytes."""

    width: int
    height: int
    block_width: int
    block_height: int
    samples: int
    planar_separate: bool
    offsets: np.ndarray  # uint64, one per block, row-major per plane
    byte_counts: np.ndarray

    @property
    def blocks_across(self) -> int:
        return math.ceil(self.width / self.block_width)

    @property
    def blocks_down(self) -> int:
        return math.ceil(self.height / self.block_height)

    def block_indexes(
        self, row0: int, row1: int, col0: int, col1: int, bands: Sequence[int] | None = None
    ) -> list[int]:
        """Indexes of the blocks holding pixel rows [row0, row1) and columns [col0, col1)
        of ``bands`` (1-based; all when None)."""
        if not (0 <= row0 < row1 <= self.height and 0 <= col0 < col1 <= self.width):
            raise ValueError(
                f"window rows {row0}:{row1}, cols {col0}:{col1} is outside the "
                f"{self.height} × {self.width} image"
            )
        if bands and not all(1 <= b <= self.samples for b in bands):
            raise ValueError(f"bands {list(bands)} are not among the image's {self.samples}")
        rows = range(row0 // self.block_height, (row1 - 1) // self.block_height + 1)
        cols = range(col0 // self.block_width, (col1 - 1) // self.block_width + 1)
        per_plane = self.blocks_across * self.blocks_down
        if self.planar_separate:
            planes = [b - 1 for b in bands] if bands else list(range(self.samples))
        else:
            planes = [0]
        return [
            p * per_plane + r * self.blocks_across + c for p in planes for r in rows for c in cols
        ]

    def block_ranges(self, indexes: Iterable[int], file_size: int) -> list[ByteRange]:
        """The byte ranges of these blocks, with their leader and trailer margins;
        empty (sparse) blocks have none."""
        ranges = []
        for index in indexes:
            offset, count = int(self.offsets[index]), int(self.byte_counts[index])
            if offset == 0 or count == 0:
                continue  # GDAL reads a sparse block as nodata without touching the file
            start = max(offset - BLOCK_MARGIN, 0)
            stop = min(offset + count + BLOCK_MARGIN, file_size)
            if offset + count > file_size:
                raise TiffLayoutError(
                    f"block {index} ends at byte {offset + count}, past the end of the "
                    f"{file_size}-byte file"
                )
            ranges.append((start, stop))
        return ranges


@dataclass(frozen=True)
class TiffLayout:
    big: bool
    header_ranges: tuple[ByteRange, ...]  # merged, sorted
    image: ImageBlocks


@dataclass(frozen=True)
class _Entry:
    tag: int
    type: int
    count: int
    field: bytes  # the raw value field: the value itself when it fits, else its offset


class _Parser:
    def __init__(self, read: ReadBytes) -> None:
        self._read = read
        header = self._read(0, 16)
        if len(header) < 8:
            raise TiffLayoutError("not a TIFF file (shorter than a TIFF header)")
        order = header[:2]
        if order not in (b"II", b"MM"):
            raise TiffLayoutError("not a TIFF file (no II/MM byte-order mark)")
        self.bo = "<" if order == b"II" else ">"
        magic = self._unpack("H", header[2:4])
        if magic == 42:
            self.big = False
            self.header_size, self.entry_size, self.field_size = 8, 12, 4
            self.first_ifd = self._unpack("I", header[4:8])
        elif magic == 43:
            self.big = True
            self.header_size, self.entry_size, self.field_size = 16, 20, 8
            if len(header) < 16 or self._unpack("H", header[4:6]) != 8:
                raise TiffLayoutError("BigTIFF with an offset size other than 8")
            self.first_ifd = self._unpack("Q", header[8:16])
        else:
            raise TiffLayoutError(f"not a TIFF file (magic number {magic})")
        self.ranges: list[ByteRange] = [(0, self.header_size)]

    def _unpack(self, fmt: str, data: bytes) -> int:
        return int(struct.unpack(self.bo + fmt, data)[0])

    def _exact(self, start: int, stop: int, what: str) -> bytes:
        data = self._read(start, stop)
        if len(data) != stop - start:
            raise TiffLayoutError(
                f"{what} (bytes {start}-{stop - 1}) lies past the end of the file"
            )
        return data

    def ghost_area(self) -> None:
        """GDAL reads its structural metadata right after the header; keep it."""
        start = self.header_size
        line = self._read(start, start + _GHOST_LINE)
        if not line.startswith(_GHOST_KEY):
            return
        digits = line[len(_GHOST_KEY) : len(_GHOST_KEY) + 6]
        if not digits.isdigit():
            return
        self.ranges.append((start, start + _GHOST_LINE + int(digits)))

    def directories(self) -> list[list[_Entry]]:
        ifds: list[list[_Entry]] = []
        seen: set[int] = set()
        offset = self.first_ifd
        while offset:
            if offset in seen or len(ifds) >= _MAX_IFDS:
                raise TiffLayoutError(f"the IFD chain loops or is too long (at byte {offset})")
            seen.add(offset)
            entries, offset = self._directory(offset)
            ifds.append(entries)
        if not ifds:
            raise TiffLayoutError("the TIFF has no image")
        return ifds

    def _directory(self, offset: int) -> tuple[list[_Entry], int]:
        count_size = 8 if self.big else 2
        count = self._unpack(
            "Q" if self.big else "H", self._exact(offset, offset + count_size, "an IFD")
        )
        body_start = offset + count_size
        end = body_start + count * self.entry_size + self.field_size
        body = self._exact(body_start, end, "an IFD")
        self.ranges.append((offset, end))
        entries = []
        count_fmt = "Q" if self.big else "I"
        for i in range(count):
            raw = body[i * self.entry_size : (i + 1) * self.entry_size]
            tag, type_ = struct.unpack(self.bo + "HH", raw[:4])
            value_count = self._unpack(count_fmt, raw[4 : 4 + (8 if self.big else 4)])
            field = raw[self.entry_size - self.field_size :]
            entries.append(_Entry(tag, type_, value_count, field))
            size = _TYPE_SIZE.get(type_)
            if size is not None and size * value_count > self.field_size:
                start = self._unpack("Q" if self.big else "I", field)
                self.ranges.append((start, start + size * value_count))
        next_offset = self._unpack("Q" if self.big else "I", body[-self.field_size :])
        return entries, next_offset

    def values(self, entry: _Entry) -> np.ndarray:
        """An unsigned integer tag's values as uint64."""
        code = _UNSIGNED.get(entry.type)
        if code is None:
            raise TiffLayoutError(f"tag {entry.tag} has type {entry.type}, not an unsigned integer")
        size = _TYPE_SIZE[entry.type] * entry.count
        if size <= self.field_size:
            data = entry.field[:size]
        else:
            start = self._unpack("Q" if self.big else "I", entry.field)
            data = self._exact(start, start + size, f"the values of tag {entry.tag}")
        dtype = np.dtype(self.bo + code)
        return np.frombuffer(data, dtype=dtype, count=entry.count).astype(np.uint64)


def parse_tiff_layout(read: ReadBytes, file_size: int) -> TiffLayout:
    """The layout of the TIFF whose bytes ``read`` returns; `TiffLayoutError` if the
    bytes are not a TIFF, or its first image has no usable block layout."""
    parser = _Parser(read)
    parser.ghost_area()
    ifds = parser.directories()
    image = _image_blocks(parser, ifds[0])
    ranges = [(start, min(stop, file_size)) for start, stop in parser.ranges if start < file_size]
    return TiffLayout(parser.big, tuple(merge_ranges(ranges, gap=0)), image)


def _image_blocks(parser: _Parser, entries: list[_Entry]) -> ImageBlocks:
    tags = {entry.tag: entry for entry in entries}

    def scalar(tag: int, default: int | None = None) -> int:
        entry = tags.get(tag)
        if entry is None:
            if default is None:
                raise TiffLayoutError(f"the first image lacks tag {tag}")
            return default
        return int(parser.values(entry)[0])

    width, height = scalar(IMAGE_WIDTH), scalar(IMAGE_LENGTH)
    samples = scalar(SAMPLES_PER_PIXEL, 1)
    planar_separate = scalar(PLANAR_CONFIGURATION, 1) == 2
    if TILE_OFFSETS in tags:
        block_width, block_height = scalar(TILE_WIDTH), scalar(TILE_LENGTH)
        offsets_tag, counts_tag = TILE_OFFSETS, TILE_BYTE_COUNTS
    else:
        block_width = width
        block_height = min(scalar(ROWS_PER_STRIP, height), height)
        offsets_tag, counts_tag = STRIP_OFFSETS, STRIP_BYTE_COUNTS
    if min(width, height, block_width, block_height, samples) < 1:
        raise TiffLayoutError("the first image has an empty size, block size or band count")
    if offsets_tag not in tags or counts_tag not in tags:
        raise TiffLayoutError("the first image has no block offsets or byte counts")
    offsets = parser.values(tags[offsets_tag])
    counts = parser.values(tags[counts_tag])
    blocks = math.ceil(width / block_width) * math.ceil(height / block_height)
    expected = blocks * (samples if planar_separate else 1)
    if len(offsets) != expected or len(counts) != expected:
        raise TiffLayoutError(
            f"the first image lists {len(offsets)} block offsets and {len(counts)} byte "
            f"counts for {expected} blocks"
        )
    return ImageBlocks(
        width, height, block_width, block_height, samples, planar_separate, offsets, counts
    )


def merge_ranges(
    ranges: Iterable[ByteRange], *, gap: int, max_length: int | None = None
) -> list[ByteRange]:
    """Sorted, overlapping ranges and those at most ``gap`` bytes apart merged, as long
    as a merged range stays within ``max_length`` bytes (a single longer range stays
    whole)."""
    merged: list[ByteRange] = []
    for start, stop in sorted(r for r in ranges if r[1] > r[0]):
        if merged:
            last_start, last_stop = merged[-1]
            if stop <= last_stop:
                continue  # already covered
            fits = max_length is None or stop - last_start <= max_length
            if start <= last_stop + gap and fits:
                merged[-1] = (last_start, stop)
                continue
            start = max(start, last_stop)  # only the part not covered yet
        merged.append((start, stop))
    return merged
