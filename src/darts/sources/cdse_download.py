"""Stage CDSE Sentinel-2 L2A scenes: fetch band files whole, verify, decode, store.

`stage_scene` is the one way raw bands get into the scene store:

1. under the scene's inter-process lock (two workers never download one scene twice),
   ask the store which of the requested bands are missing; only those are fetched;
2. every band file is fetched **whole** from S3 and verified against the item's
   ``file:size`` / ``file:checksum`` (retried on mismatch) before anything decodes it:
   one GET per band, instead of the hundreds of range reads GDAL would make, each paying
   the round-trip time;
3. decoded in memory with all cores (`darts.sources.decode`), onto the 10 m grid;
4. written band by band with `SceneStore.write_bands`, each band its own atomic commit,
   so a failure halfway keeps the bands already written ("partial").

JPEG2000 decoding dominates the cost, so the steps run as a pipeline around it: while
band k decodes, the next band files download and band k−1 is compressed and written.
Bands go through it coarsest first (see `_jobs`); the store and the returned Dataset
keep the requested order.
Memory stays bounded: at most `ENCODED_AHEAD` encoded files and `DECODED_AHEAD`
decoded bands exist at once.

Threads: fetches run in a small pool, decoding in one thread (GDAL spreads each decode
over all cores itself), and writes in the *calling* thread. Writes must stay in the
thread that holds the scene lock: the store's lock is re-entrant per thread only, and
`write_bands` takes it again.

Errors that concern the whole run (bad credentials, offline mode, a bad band name)
are raised; everything specific to one scene (a corrupt or missing object, a file that
does not decode) is reported in the `StageResult`, so a batch can go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import xarray as xr

from darts.errors import ConfigError, DartsError
from darts.net.checksum import UnsupportedChecksum
from darts.net.errors import CredentialsError, NetworkError, OfflineError
from darts.net.guard import get_gate
from darts.sources.cdse_bands import MissingAssetError, resolve_bands
from darts.sources.decode import DecodeError, decode_band, scene_grid
from darts.store.errors import MissingBandsError, StoreError
from darts.store.georef import Grid

if TYPE_CHECKING:
    from darts.net.s3 import S3Client
    from darts.store.scenes import SceneStore

log = logging.getLogger(__name__)

StageStatus = Literal["cached", "downloaded", "partial", "failed"]

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


@dataclass(frozen=True)
class StageProgress:
    """One step of staging a scene. ``event`` is "fetched" when a band file has been
    downloaded and verified, "stored" when a band is committed (or, without a store,
    decoded). Sent from worker threads: callbacks must be thread-safe."""

    scene_id: str
    band: str
    event: Literal["fetched", "stored"]
    bytes_done: int
    bytes_total: int
    bands_done: int
    bands_total: int


ProgressCallback = Callable[[StageProgress], object]


@dataclass(frozen=True)
class StageResult:
    """What `stage_scene` did for one scene.

    status: "cached" (nothing was missing), "downloaded" (everything missing was
        fetched and stored), "partial" (some bands stored, then a failure),
        "failed" (nothing new stored).
    bands_downloaded: bands fetched and stored (or, without a store, decoded) here.
    bytes_downloaded: verified bytes received for this scene.
    dataset: the decoded bands, only when staging without a store.
    """

    scene_id: str
    status: StageStatus
    bands_downloaded: tuple[str, ...] = ()
    bytes_downloaded: int = 0
    seconds: float = 0.0
    error: str | None = None
    dataset: xr.Dataset | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status in ("cached", "downloaded")


class SceneStageError(DartsError):
    """A scene needed by `load_scene` could not be staged."""

    def __init__(self, result: StageResult) -> None:
        self.result = result
        super().__init__(f"staging scene {result.scene_id!r} {result.status}: {result.error}")


class SceneNotStagedError(MissingBandsError, DartsError):
    """Offline, and the store lacks bands a run needs. Lists them."""

    def __init__(self, scene_id: str, missing: Iterable[str], stored: Iterable[str] = ()) -> None:
        super().__init__(scene_id, missing, stored)
        have = f"it has {', '.join(self.stored)}" if self.stored else "it is not in the store"
        self.args = (
            f"offline: scene {scene_id!r} is missing band(s) {', '.join(self.missing)} "
            f"({have}); stage them first (prep-data, online) or run without --offline",
        )


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


def stage_scene(
    item: Mapping[str, Any],
    bands: Sequence[str] | str | None,
    store: SceneStore | None,
    s3: S3Client,
    *,
    progress: ProgressCallback | None = None,
) -> StageResult:
    """Make ``bands`` of ``item`` available: in ``store``, or in memory if it is None.

    ``bands`` are user band names (see `darts.sources.cdse_bands`; ``None`` = the
    defaults; SCL is always added). With a store only the missing bands are fetched,
    and a second call downloads nothing. With ``store=None`` (``--no-raw-data-store``)
    nothing is written anywhere and ``result.dataset`` holds the decoded bands.

    Raises `CredentialsError`, `OfflineError` and `ConfigError`; other failures come
    back as a "failed"/"partial" result with ``error`` set.
    """
    started = time.perf_counter()
    document = _item_document(item)
    scene_id = str(document.get("id") or "")
    state = _State(scene_id, progress)
    try:
        if not scene_id:
            raise MissingAssetError("the STAC item has no id")
        keys = resolve_bands(bands, document)
        if store is None:
            arrays = _stage_in_memory(document, keys, s3, state)
            dataset = _dataset(document, keys, arrays)
            return state.result("downloaded", started, dataset=dataset)
        # Cheap check first: a fully cached scene takes no lock (and creates no file).
        if not store.missing_bands(scene_id, keys):
            return state.result("cached", started)
        with store.lock(scene_id):
            missing = store.missing_bands(scene_id, keys)
            if not missing:
                return state.result("cached", started)
            _stage_into_store(document, missing, store, s3, state)
        return state.result("downloaded", started)
    except _RUN_ERRORS:
        raise
    except (*_SCENE_ERRORS, _BandFailed) as error:
        # Without a store nothing outlives a failure, so it cannot be "partial".
        status: StageStatus = "partial" if state.bands and store is not None else "failed"
        log.warning("staging scene %s %s: %s", scene_id, status, error)
        return state.result(status, started, error=str(error))


def load_scene(
    item: Mapping[str, Any],
    bands: Sequence[str] | str | None,
    store: SceneStore | None,
    s3: S3Client | None,
    *,
    offline: bool,
    progress: ProgressCallback | None = None,
) -> xr.Dataset:
    """Exactly the requested bands of a scene (SCL included), as DN on the 10 m grid.

    From the store, staging missing bands first when online. Offline (``offline`` or
    the process gate is offline), missing bands raise `SceneNotStagedError` naming
    them, and no connection is attempted. Without a store the bands are fetched and
    decoded into memory (never offline). Un-requested bands the store also holds are
    not returned (pitfall 3).
    """
    document = _item_document(item)
    scene_id = str(document.get("id") or "")
    keys = resolve_bands(bands, document)
    offline = offline or get_gate().offline
    if store is None:
        if offline:
            raise SceneNotStagedError(scene_id, keys)
        result = stage_scene(document, keys, None, _require(s3), progress=progress)
        if result.dataset is None:
            raise SceneStageError(result)
        return result.dataset
    missing = store.missing_bands(scene_id, keys)
    if missing:
        if offline:
            raise SceneNotStagedError(scene_id, missing, store.stored_bands(scene_id))
        result = stage_scene(document, keys, store, _require(s3), progress=progress)
        if not result.ok:
            raise SceneStageError(result)
    return store.open(scene_id, keys)


# -- internals ----------------------------------------------------------------------


class _State:
    """Counters of one staging call, shared by the pipeline's threads."""

    def __init__(self, scene_id: str, callback: ProgressCallback | None) -> None:
        self.scene_id = scene_id
        self._callback = callback
        self._lock = threading.Lock()
        self.bands: list[str] = []
        self.bytes = 0
        self.bytes_total = 0
        self.bands_total = 0

    def plan(self, jobs: Sequence[_BandJob]) -> None:
        self.bands_total = len(jobs)
        self.bytes_total = sum(job.size or 0 for job in jobs)

    def fetched(self, key: str, nbytes: int) -> None:
        with self._lock:
            self.bytes += nbytes
        self._report(key, "fetched")

    def stored(self, key: str) -> None:
        with self._lock:
            self.bands.append(key)
        self._report(key, "stored")

    def _report(self, key: str, event: Literal["fetched", "stored"]) -> None:
        if self._callback is None:
            return
        with self._lock:
            update = StageProgress(
                self.scene_id,
                key,
                event,
                self.bytes,
                self.bytes_total,
                len(self.bands),
                self.bands_total,
            )
        try:
            self._callback(update)
        except Exception:
            # A broken progress display must not fail a download.
            log.debug("progress callback failed", exc_info=True)

    def result(
        self,
        status: StageStatus,
        started: float,
        *,
        error: str | None = None,
        dataset: xr.Dataset | None = None,
    ) -> StageResult:
        with self._lock:
            return StageResult(
                self.scene_id,
                status,
                tuple(self.bands),
                self.bytes,
                time.perf_counter() - started,
                error,
                dataset,
            )


def _stage_into_store(
    item: dict[str, Any], keys: Sequence[str], store: SceneStore, s3: S3Client, state: _State
) -> None:
    def write(job: _BandJob, array: xr.DataArray) -> None:
        # This runs in the thread holding the scene lock (see the module docstring).
        started = time.perf_counter()
        store.write_bands(state.scene_id, item, {job.key: array})
        log.debug("stored %s in %.2f s", job.key, time.perf_counter() - started)
        state.stored(job.key)

    _run_pipeline(item, keys, s3, state, write)


def _stage_in_memory(
    item: dict[str, Any], keys: Sequence[str], s3: S3Client, state: _State
) -> dict[str, xr.DataArray]:
    arrays: dict[str, xr.DataArray] = {}

    def keep(job: _BandJob, array: xr.DataArray) -> None:
        arrays[job.key] = array
        state.stored(job.key)

    _run_pipeline(item, keys, s3, state, keep)
    return arrays


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
    state: _State,
    consume: Callable[[_BandJob, xr.DataArray], None],
) -> None:
    """Fetch → decode → ``consume`` every band, overlapped, in order, in bounded memory.

    ``consume`` runs in the calling thread, in band order. The first failure stops the
    pipeline: nothing after it is consumed, and its exception is raised here.
    """
    grid = scene_grid(item)
    jobs = _jobs(item, keys)
    state.plan(jobs)
    encoded = _Slots(ENCODED_AHEAD)
    decoded = _Slots(DECODED_AHEAD)

    def fetch(turn: int, job: _BandJob) -> None:
        encoded.acquire(turn)
        started = time.perf_counter()
        try:
            job.data = s3.get_object_bytes(
                job.href,
                purpose=f"band {job.key} of Sentinel-2 scene {state.scene_id}",
                expected_size=job.size,
                checksum=job.checksum,
            )
        except BaseException:
            encoded.release()
            raise
        log.debug("fetched %s in %.2f s", job.key, time.perf_counter() - started)
        state.fetched(job.key, len(job.data))

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
                    raise _BandFailed(job.key, error) from error
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
    consume: Callable[[_BandJob, xr.DataArray], None],
    decoded: _Slots,
) -> None:
    decoding.result()  # waits; re-raises the download's or the decode's error
    array, job.array = job.array, None
    assert array is not None
    try:
        consume(job, array)
    finally:
        del array
        decoded.release()


class _BandFailed(Exception):
    """A scene error, with the band it happened to (for the result's message)."""

    def __init__(self, key: str, error: BaseException) -> None:
        message = str(error)
        prefix = f"band {key}: "
        super().__init__(message if message.startswith(prefix) else prefix + message)
        self.key = key


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


def _dataset(
    item: Mapping[str, Any], keys: Sequence[str], arrays: Mapping[str, xr.DataArray]
) -> xr.Dataset:
    """The in-memory counterpart of `SceneStore.open`: same variables and attributes."""
    dataset = xr.Dataset({key: arrays[key] for key in keys})
    grid: Grid = scene_grid(item)
    properties = item.get("properties") or {}
    attrs = {
        "darts:scene_id": item.get("id"),
        "darts:item_id": item.get("id"),
        "datetime": properties.get("datetime"),
        "proj:code": grid.crs_code,
        "proj:shape": list(grid.shape),
        "proj:transform": list(grid.transform),
        "proj:wkt2": grid.crs_wkt,
        "GeoTransform": grid.geotransform(),
    }
    dataset.attrs = {k: v for k, v in attrs.items() if v is not None}
    return dataset


def _item_document(item: Any) -> dict[str, Any]:
    """A plain dict of the item (pystac Items are accepted too)."""
    if hasattr(item, "to_dict") and not isinstance(item, Mapping):
        item = item.to_dict()
    if not isinstance(item, Mapping):
        raise TypeError(f"a STAC item must be a mapping, got {type(item).__name__}")
    return dict(item)


def _require(s3: S3Client | None) -> S3Client:
    if s3 is None:
        raise ValueError("bands are missing and no S3 client was given to fetch them")
    return s3
