"""Fetch CDSE Sentinel-2 L2A band files whole, verify, decode: the ``cdse`` source's
fetch step (staging into the store is `darts.pipelines.staging`, for every source).

1. every band file is fetched **whole** from S3 and verified against the item's
   ``file:size`` / ``file:checksum`` (retried on mismatch) before anything decodes it:
   one GET per band, instead of the hundreds of range reads GDAL would make, each paying
   the round-trip time;
2. decoded in memory with all cores (`darts.sources.decode`), onto the 10 m grid;
3. handed to the caller's ``consume`` (the stager writes it, its own atomic commit).

JPEG2000 decoding dominates the cost, so the steps run as a pipeline around it: while
band k decodes, the next band files download and band k−1 is consumed (written).
Bands go through it coarsest first (see `_jobs`); the store keeps the requested order.
Memory stays bounded: at most `ENCODED_AHEAD` encoded files and `DECODED_AHEAD`
decoded bands exist at once.

Threads: fetches run in a small pool, decoding in one thread (GDAL spreads each decode
over all cores itself), and ``consume`` in the *calling* thread: the stager holds the
scene lock there, and the store's lock is re-entrant per thread only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import xarray as xr

from darts.errors import ConfigError
from darts.grid.scene import grid_of_item
from darts.net.checksum import UnsupportedChecksum
from darts.net.errors import CredentialsError, NetworkError, OfflineError
from darts.sources.decode import DecodeError, decode_band
from darts.sources.scene_source import BandConsumer, BandFailed, FetchedCallback, MissingAssetError
from darts.store.errors import StoreError

if TYPE_CHECKING:
    from darts.net.s3 import S3Client

log = logging.getLogger(__name__)

# Encoded band files held at once (downloading or waiting for / in decoding): enough
# for the next download to finish before the decoder needs it.
ENCODED_AHEAD = 2
# Decoded bands held at once (in decoding or waiting for / in writing): one being
# written while the next decodes.
DECODED_AHEAD = 2
# Concurrent downloads per scene; the S3 client bounds the total across scenes.
FETCH_WORKERS = 2

# Failures that belong to one scene: reported in the result, the batch goes on.
_SCENE_ERRORS: tuple[type[BaseException], ...] = (
    NetworkError,
    UnsupportedChecksum,
    DecodeError,
    MissingAssetError,
    StoreError,
)
# Failures that would hit every scene alike: raised.
_RUN_ERRORS: tuple[type[BaseException], ...] = (CredentialsError, OfflineError, ConfigError)


@dataclass
class _BandJob:
    """One band through the pipeline; the hand-off fields are emptied as it moves on,
    so no completed future keeps a 100 MB buffer alive."""

    key: str
    href: str
    size: int | None
    checksum: str | None
    asset: Mapping[str, Any]
    data: bytes | None = None
    array: xr.DataArray | None = None


def fetch_bands(
    item: Mapping[str, Any],
    keys: Sequence[str],
    s3: S3Client,
    consume: BandConsumer,
    *,
    on_fetched: FetchedCallback | None = None,
) -> None:
    """Fetch → decode → ``consume(key, band)`` for every asset key, overlapped, in
    bounded memory; ``consume`` runs in the calling thread. The first failure stops the
    pipeline: a per-scene failure is raised as `BandFailed` naming the band; credentials,
    offline and configuration errors as themselves."""
    _run_pipeline(item, keys, s3, on_fetched, consume)


def _jobs(item: Mapping[str, Any], keys: Sequence[str]) -> list[_BandJob]:
    assets = item.get("assets") or {}
    jobs = []
    for key in keys:
        asset = assets[key]  # resolve_bands checked it exists
        href = asset.get("href")
        if not isinstance(href, str) or not href.startswith("s3://"):
            # The https alternates need OIDC tokens; CDSE items always carry s3 hrefs.
            raise MissingAssetError(f"item {item.get('id')!r}: asset {key!r} has no s3:// href")
        size = asset.get("file:size")
        jobs.append(
            _BandJob(
                key,
                href,
                int(size) if size is not None else None,
                asset.get("file:checksum"),
                asset,
            )
        )
    # Coarse bands first. Decoding is the bottleneck, so a scene takes about
    # fetch(first) + Σ decode + whatever writing is left after the last decode. A
    # cheap band at the end leaves the previous big band's write *and* its own in
    # that tail; at the start its write hides behind the first big decode.
    return sorted(jobs, key=lambda job: _pixels(job.asset))


def _pixels(asset: Mapping[str, Any]) -> int:
    shape = asset.get("proj:shape") or (0, 0)
    return int(shape[0]) * int(shape[1])


def _run_pipeline(
    item: Mapping[str, Any],
    keys: Sequence[str],
    s3: S3Client,
    on_fetched: FetchedCallback | None,
    consume: BandConsumer,
) -> None:
    scene_id = str(item.get("id") or "")
    grid = grid_of_item(item)
    jobs = _jobs(item, keys)
    encoded = _Slots(ENCODED_AHEAD)
    decoded = _Slots(DECODED_AHEAD)

    def fetch(turn: int, job: _BandJob) -> None:
        encoded.acquire(turn)
        started = time.perf_counter()
        try:
            job.data = s3.get_object_bytes(
                job.href,
                purpose=f"band {job.key} of Sentinel-2 scene {scene_id}",
                expected_size=job.size,
                checksum=job.checksum,
            )
        except BaseException:
            encoded.release()
            raise
        log.debug("fetched %s in %.2f s", job.key, time.perf_counter() - started)
        if on_fetched is not None:
            on_fetched(job.key, len(job.data))

    def decode(turn: int, job: _BandJob, fetched: Future[None]) -> None:
        fetched.result()  # waits; re-raises the download's error
        try:
            decoded.acquire(turn)
            data, job.data = job.data, None
            assert data is not None
            started = time.perf_counter()
            job.array = decode_band(data, job.key, job.asset, grid)
            log.debug("decoded %s in %.2f s", job.key, time.perf_counter() - started)
        finally:
            # The encoded file is dropped as soon as it is decoded (or failed to).
            job.data = data = None
            encoded.release()

    pending: deque[tuple[_BandJob, Future[None]]] = deque()
    with (
        ThreadPoolExecutor(min(FETCH_WORKERS, len(jobs)) or 1, "darts-fetch") as fetchers,
        ThreadPoolExecutor(1, "darts-decode") as decoder,
    ):
        try:
            for turn, job in enumerate(jobs):
                fetched = fetchers.submit(fetch, turn, job)
                pending.append((job, decoder.submit(decode, turn, job, fetched)))
            while pending:
                job, decoding = pending.popleft()
                try:
                    _consume_next(job, decoding, consume, decoded)
                except _RUN_ERRORS:
                    raise
                except _SCENE_ERRORS as error:
                    raise BandFailed(job.key, error) from error
        finally:
            # Wake every thread still waiting for a slot, so the pools can shut down.
            encoded.close()
            decoded.close()
            for _, future in pending:
                future.cancel()
            for job, _ in pending:
                job.data = job.array = None


def _consume_next(
    job: _BandJob,
    decoding: Future[None],
    consume: BandConsumer,
    decoded: _Slots,
) -> None:
    decoding.result()  # waits; re-raises the download's or the decode's error
    array, job.array = job.array, None
    assert array is not None
    try:
        consume(job.key, array)
    finally:
        del array
        decoded.release()


class _PipelineStopped(Exception):
    """Raised in a worker waiting for a slot when the pipeline has stopped."""


class _Slots:
    """A counting semaphore granted in turn order, whose waiters can all be released.

    Turn order matters: if band k+2 could take the last buffer slot before band k+1,
    the decoder would wait for k+1's download, which would wait for a slot that only
    the decoder frees: a deadlock. Granting slots by band index rules that out.
    """

    def __init__(self, count: int) -> None:
        self._free = count
        self._turn = 0
        self._closed = False
        self._condition = threading.Condition()

    def acquire(self, turn: int) -> None:
        with self._condition:
            while not self._closed and (self._free <= 0 or turn != self._turn):
                self._condition.wait()
            if self._closed:
                raise _PipelineStopped
            self._free -= 1
            self._turn += 1
            self._condition.notify_all()  # the next turn may already have a slot

    def release(self) -> None:
        with self._condition:
            self._free += 1
            self._condition.notify_all()

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()
