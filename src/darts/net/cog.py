"""Remote COGs read through the retrying HTTP client and decoded by GDAL from memory.

GDAL can fetch a COG itself (``/vsicurl/``), but then its transfers follow GDAL's rules,
not ours: it retries some statuses yet not a truncated body or a reset connection (the
block just comes out short and the codec fails), knows nothing of our backoff and
``Retry-After`` cap, concurrency bound, transfer counters, unreachable-endpoint hold or
the socket guard of tests, and caches file contents per URL for the whole process.
Under 20 % injected faults the first staging of ArcticDEM failed that way.

Here every byte travels through `HttpClient.get_range`: one retry policy for every
transfer, and every answer's length checked against the range asked for. GDAL only
decodes. It opens a ``/vsisparse/`` file assembled in ``/vsimem/`` from the fetched
bytes, placed at their original offsets: the header and directories
(`darts.net.tiff_layout`), and the blocks a read needs. The pixels are therefore
exactly those a direct read of the file gives.

Requests: one for the header (the first ``HEADER_BYTES``, which hold a COG's
directories; a small file arrives whole), then per read the blocks it needs, adjacent
blocks in one request of at most ``MAX_REQUEST_BYTES``. A caller that reads a large
window in parts (row strips) announces it with `RemoteCog.plan`: the whole window's
blocks are then fetched in pieces of up to ``MAX_REQUEST_BYTES``, kept until used, so a
small COG read in ten strips still costs two requests, and a large one about one per
16 MiB.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from darts.net.errors import NetworkError
from darts.net.http import HttpClient
from darts.net.ranges import RangeBody
from darts.net.redact import redact_url
from darts.net.tiff_layout import (
    ByteRange,
    TiffLayout,
    TiffLayoutError,
    merge_ranges,
    parse_tiff_layout,
)

# The first request: a COG keeps all its directories in its first few tens of KiB
# (a 25,000² image of 512² tiles: ~50 KiB), so one request nearly always suffices.
HEADER_BYTES = 256 * 1024
# A directory or tag value outside what is held is fetched in at least this much.
_MIN_FETCH = 64 * 1024
# Bytes per request: large enough that a 2 GB COG is ~120 requests (what GDAL's
# 10 MiB chunks cost, a little less), small enough that a truncated answer re-fetches
# little and a planned read holds little.
MAX_REQUEST_BYTES = 16 * 1024 * 1024
# Blocks closer than this are fetched in one request, gap included: a request costs
# more than this many bytes' transfer time.
MERGE_GAP = 64 * 1024
# Planned pieces kept for reads to come, oldest dropped first (a dropped piece that is
# needed again is simply fetched again).
_PLAN_CACHE_BYTES = 2 * MAX_REQUEST_BYTES


class CogReadError(NetworkError):
    """A remote COG that cannot be read: not a TIFF, changed while read, or its bytes
    do not decode. A NetworkError: the remote data is at fault, like a failed fetch."""


class RemoteCog:
    """One remote COG (http/https), read window by window. Use as a context manager;
    one thread at a time (the `HttpClient` it uses may be shared)."""

    def __init__(self, http: HttpClient, url: str, *, purpose: str) -> None:
        self.http = http
        self.url = url
        self.purpose = purpose
        self.name = redact_url(url)
        self.size = 0
        self.layout: TiffLayout | None = None
        self._held: list[RangeBody] = []  # header pieces, kept while open
        self._plan: list[ByteRange] = []
        self._cache: OrderedDict[int, RangeBody] = OrderedDict()  # planned pieces
        self._dataset: Any = None
        self._stack = contextlib.ExitStack()
        # The view the last read used, and the byte ranges it holds: reads whose pieces
        # it holds reuse it (opening a view costs ~5 ms; a small COG is read in one).
        self._last_view: contextlib.ExitStack | None = None
        self._last_dataset: Any = None
        self._last_ranges: set[ByteRange] = set()

    # -- life cycle ---------------------------------------------------------------------

    @classmethod
    def open(cls, http: HttpClient, url: str, *, purpose: str) -> RemoteCog:
        """Fetch the header, parse the layout and open the metadata view."""
        cog = cls(http, url, purpose=purpose)
        try:
            cog._open()
        except BaseException:
            cog.close()
            raise
        return cog

    def _open(self) -> None:
        first = self.http.get_range(self.url, 0, HEADER_BYTES, purpose=self.purpose)
        if first.total_size is None:
            raise CogReadError(f"{self.name}: the server does not say the file's size")
        self.size = first.total_size
        self._held.append(first)
        try:
            self.layout = parse_tiff_layout(self._header_bytes, self.size)
        except TiffLayoutError as exc:
            raise CogReadError(f"{self.name} is not a readable GeoTIFF: {exc}") from None
        missing = _uncovered(self.layout.header_ranges, self._held)
        for start, stop in merge_ranges(missing, gap=MERGE_GAP, max_length=MAX_REQUEST_BYTES):
            self._held.append(self._fetch(start, stop))
        # GDAL opens the header alone for metadata; reads open their own views.
        self._dataset = self._stack.enter_context(self._view(self._held))

    def close(self) -> None:
        self._drop_last_view()
        self._stack.close()
        self._dataset = None
        self._cache.clear()
        self._held.clear()

    def __enter__(self) -> RemoteCog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- metadata -------------------------------------------------------------------------

    @property
    def dataset(self) -> Any:
        """A rasterio dataset for the metadata (transform, crs, dtypes, nodata, count,
        descriptions, block_shapes, width, height). Never read pixels from it: its
        view holds the header only (the rest reads as zeros); use `read`."""
        if self._dataset is None:
            raise ValueError(f"{self.name} is not open")
        return self._dataset

    # -- reading --------------------------------------------------------------------------

    def plan(self, window: Any, indexes: int | Sequence[int] | None = None) -> None:
        """Announce that ``window`` (a rasterio Window, whole pixels) will be read, in
        parts: its blocks are then fetched in large pieces as the parts need them."""
        needed = _uncovered(self._block_ranges(window, indexes), self._held)
        self._plan = merge_ranges(needed, gap=MERGE_GAP, max_length=MAX_REQUEST_BYTES)
        self._cache.clear()

    def read(
        self, indexes: int | Sequence[int], window: Any, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Pixels of ``window`` (a rasterio Window, whole pixels) of band(s) ``indexes``
        at full resolution, like ``rasterio.DatasetReader.read``."""
        import rasterio

        pieces = self._pieces_for(self._block_ranges(window, indexes))
        if self._last_dataset is None or not {_span(p) for p in pieces} <= self._last_ranges:
            self._drop_last_view()
            # Everything still cached goes in, so later strips of the same pieces
            # reuse this view.
            held = {_span(p): p for p in [*self._held, *self._cache.values(), *pieces]}
            stack = contextlib.ExitStack()
            try:
                self._last_dataset = stack.enter_context(self._view(list(held.values())))
            except BaseException:
                stack.close()
                raise
            self._last_view, self._last_ranges = stack, set(held)
        try:
            return self._last_dataset.read(indexes, window=window, out=out)
        except rasterio.errors.RasterioIOError as exc:
            raise CogReadError(f"decoding {self.name} failed: {exc}") from None

    def _drop_last_view(self) -> None:
        if self._last_view is not None:
            self._last_view.close()
        self._last_view, self._last_dataset, self._last_ranges = None, None, set()

    # -- internals ------------------------------------------------------------------------

    def _block_ranges(self, window: Any, indexes: int | Sequence[int] | None) -> list[ByteRange]:
        assert self.layout is not None
        row0, col0 = int(window.row_off), int(window.col_off)
        row1, col1 = row0 + int(window.height), col0 + int(window.width)
        bands = [indexes] if isinstance(indexes, int) else list(indexes or [])
        image = self.layout.image
        try:
            blocks = image.block_indexes(row0, row1, col0, col1, bands or None)
            return image.block_ranges(blocks, self.size)
        except (TiffLayoutError, ValueError) as exc:
            raise CogReadError(f"{self.name}: {exc}") from None

    def _pieces_for(self, ranges: list[ByteRange]) -> list[RangeBody]:
        """Fetched pieces covering ``ranges``: planned pieces (fetched once, cached)
        where a plan covers them, else direct requests."""
        needed = _uncovered(ranges, self._held)
        pieces: list[RangeBody] = []
        direct: list[ByteRange] = []
        for start, stop in needed:
            planned = [p for p in self._plan if p[0] < stop and start < p[1]]
            if planned and planned[0][0] <= start and planned[-1][1] >= stop:
                pieces.extend(self._planned(p) for p in planned)
            else:
                direct.append((start, stop))
        for start, stop in merge_ranges(direct, gap=MERGE_GAP, max_length=MAX_REQUEST_BYTES):
            pieces.append(self._fetch(start, stop))
        unique = {_span(p): p for p in pieces}
        return list(unique.values())

    def _planned(self, piece: ByteRange) -> RangeBody:
        body = self._cache.get(piece[0])
        if body is not None:
            self._cache.move_to_end(piece[0])
            return body
        body = self._fetch(*piece)
        self._cache[piece[0]] = body
        while sum(len(b.data) for b in self._cache.values()) > _PLAN_CACHE_BYTES:
            self._cache.popitem(last=False)
        return body

    def _fetch(self, start: int, stop: int) -> RangeBody:
        body = self.http.get_range(self.url, start, stop, purpose=self.purpose)
        if body.total_size is not None and body.total_size != self.size:
            raise CogReadError(
                f"{self.name} changed while being read (its size went from {self.size} "
                f"to {body.total_size} bytes); try again"
            )
        if body.stop < min(stop, self.size):
            raise CogReadError(f"{self.name}: bytes {start}-{stop - 1} came back short")
        return body

    def _header_bytes(self, start: int, stop: int) -> bytes:
        """Bytes for the layout parser: from what is held, else fetched (and held)."""
        stop = min(stop, self.size)
        if start >= stop:
            return b""
        for piece in self._held:
            if piece.start <= start and stop <= piece.stop:
                return piece.data[start - piece.start : stop - piece.start]
        body = self._fetch(start, min(max(stop, start + _MIN_FETCH), self.size))
        self._held.append(body)
        return body.data[: stop - start]

    @contextlib.contextmanager
    def _view(self, pieces: Sequence[RangeBody]) -> Iterator[Any]:
        """A rasterio dataset over a sparse in-memory copy of the file holding only
        ``pieces`` (everything else reads as zeros, and is never read)."""
        import rasterio
        from rasterio.io import MemoryFile

        with contextlib.ExitStack() as stack:
            regions = []
            for piece in pieces:
                memory = stack.enter_context(MemoryFile(piece.data, ext=".bin"))
                regions.append(
                    "<SubfileRegion>"
                    f'<Filename relative="0">{memory.name}</Filename>'
                    f"<DestinationOffset>{piece.start}</DestinationOffset>"
                    "<SourceOffset>0</SourceOffset>"
                    f"<RegionLength>{len(piece.data)}</RegionLength>"
                    "</SubfileRegion>"
                )
            description = (
                f"<VSISparseFile><Length>{self.size}</Length>{''.join(regions)}</VSISparseFile>"
            )
            index = stack.enter_context(MemoryFile(description.encode(), ext=".xml"))
            try:
                # No sibling files to look for (.ovr, .aux.xml, .msk): there are none.
                # The Env covers the opening only: views outlive one another in any
                # order, and rasterio's Envs must be left in the order entered.
                with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
                    dataset = rasterio.open(f"/vsisparse/{index.name}")
            except rasterio.errors.RasterioIOError as exc:
                raise CogReadError(f"GDAL cannot open {self.name}: {exc}") from None
            with dataset:
                yield dataset


def _span(piece: RangeBody) -> ByteRange:
    return (piece.start, piece.stop)


def _uncovered(ranges: Sequence[ByteRange], held: Sequence[RangeBody]) -> list[ByteRange]:
    """The parts of ``ranges`` that no held piece covers."""
    spans = sorted((piece.start, piece.stop) for piece in held)
    out: list[ByteRange] = []
    for start, stop in ranges:
        for span_start, span_stop in spans:
            if span_stop <= start or span_start >= stop:
                continue
            if span_start > start:
                out.append((start, span_start))
            start = max(start, span_stop)
            if start >= stop:
                break
        if start < stop:
            out.append((start, stop))
    return out
