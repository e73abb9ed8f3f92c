"""Staging scenes into the raw-data store, for every optical source alike.

`stage_scene` is the one way raw bands get into the scene store, whichever source
fetches them (`darts.sources.scene_source`):

1. a cheap check first: a fully staged scene takes no lock and creates no file;
2. under the scene's inter-process lock (two workers never fetch one scene twice), ask
   the store which of the requested bands are missing; only those are fetched;
3. the source fetches and decodes them and hands each band over in this thread;
4. each band is written with `SceneStore.write_bands`, its own atomic, verified commit,
   so a failure halfway keeps the bands already written ("partial") and a re-run
   fetches only the rest.

Errors that concern the whole run (credentials, offline mode, a bad option, a full or
read-only disk) are raised; everything specific to one scene (a missing object, a file
that does not decode, a refused request) is reported in the `StageResult`, so a batch
goes on.

`load_scene` is what a run reads: the store first, the source only for what is
missing. Offline, the source is the store itself (`darts.pipelines.staged_scenes`) and
refuses to fetch, naming the missing bands.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import xarray as xr

from darts.errors import ConfigError, DartsError
from darts.grid.errors import GridError
from darts.net.checksum import UnsupportedChecksum
from darts.net.errors import CredentialsError, NetworkError, OfflineError
from darts.sources.decode import DecodeError
from darts.sources.scene_source import (
    BandFailed,
    MissingAssetError,
    SceneFetchError,
    SceneSource,
)
from darts.store.disk import disk_problem, storage_error
from darts.store.errors import MissingBandsError, StoreError
from darts.store.scene_damage import clear, needed_damage

if TYPE_CHECKING:
    from darts.grid.scene import Grid
    from darts.store.scenes import SceneStore

log = logging.getLogger(__name__)

StageStatus = Literal["cached", "downloaded", "partial", "failed"]

# Failures that belong to one scene: reported in the result, the batch goes on.
SCENE_ERRORS: tuple[type[BaseException], ...] = (
    NetworkError,
    UnsupportedChecksum,
    DecodeError,
    GridError,
    MissingAssetError,
    StoreError,
    BandFailed,
    SceneFetchError,
)


@dataclass(frozen=True)
class StageProgress:
    """One step of staging a scene. ``event`` is "fetched" when data arrived (a band
    file, or a block of pixels), "stored" when a band is committed (or, without a
    store, decoded). Sent from worker threads: callbacks must be thread-safe."""

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
    bytes_downloaded: bytes received for this scene.
    dataset: the decoded bands, only when staging without a store.
    repaired: bands found damaged (a missing or truncated file, an unreadable record)
        and therefore dropped and staged again.
    """

    scene_id: str
    status: StageStatus
    bands_downloaded: tuple[str, ...] = ()
    bytes_downloaded: int = 0
    seconds: float = 0.0
    error: str | None = None
    dataset: xr.Dataset | None = field(default=None, repr=False, compare=False)
    repaired: tuple[str, ...] = ()

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


# Failures that would hit every scene alike, or that a caller must see as they are (an
# offline source's refusal names the bands): raised. Checked before SCENE_ERRORS
# (credentials and offline errors are network errors, a refusal a store error).
RUN_ERRORS: tuple[type[BaseException], ...] = (
    CredentialsError,
    OfflineError,
    ConfigError,
    SceneNotStagedError,
)


def stage_scene(
    source: SceneSource,
    scene: Mapping[str, Any],
    bands: Sequence[str] | str | None,
    store: SceneStore | None,
    *,
    progress: ProgressCallback | None = None,
) -> StageResult:
    """Make ``bands`` of ``scene`` available: in ``store``, or in memory if it is None.

    ``bands`` are user band names (``None`` = the source's defaults; the quality band is
    always added). With a store only the missing bands are fetched, and a second call
    fetches nothing. With ``store=None`` (``--no-raw-data-store``) nothing is written
    anywhere and ``result.dataset`` holds the decoded bands.

    Raises `CredentialsError`, `OfflineError` and `ConfigError`; other failures come
    back as a "failed"/"partial" result with ``error`` set.
    """
    started = time.perf_counter()
    document = scene_document(scene)
    scene_id = str(document.get("id") or "")
    state = _State(scene_id, progress)
    try:
        if not scene_id:
            raise SceneFetchError("the scene document has no id")
        keys = [str(key) for key in source.band_keys(_as_list(bands), document)]
        if store is None:
            description = source.describe(document, keys)
            state.plan(len(keys), description.download_bytes)
            arrays: dict[str, xr.DataArray] = {}

            def keep(key: str, array: xr.DataArray) -> None:
                arrays[key] = array
                state.stored(key)

            source.fetch(document, keys, keep, on_fetched=state.fetched)
            dataset = in_memory_dataset(document, keys, arrays, description.grid)
            return state.result("downloaded", started, dataset=dataset)
        if not needed_damage(store, scene_id, keys) and not store.missing_bands(scene_id, keys):
            return state.result("cached", started)
        # Bounded: a live holder that is stuck must not hang this run (a dead one's
        # lock is released by the kernel at once); the wait is logged meanwhile.
        with store.lock(scene_id, store.lock_wait_s):
            wanted = _repair(store, scene_id, keys, state)
            missing = store.missing_bands(scene_id, wanted)
            if not missing:
                return state.result("cached", started)
            state.plan(len(missing), source.describe(document, missing).download_bytes)

            def write(key: str, array: xr.DataArray) -> None:
                # This runs in the thread holding the scene lock: the store's lock is
                # re-entrant per thread only, and write_bands takes it again.
                begun = time.perf_counter()
                store.write_bands(scene_id, document, {key: array})
                log.debug("stored %s in %.2f s", key, time.perf_counter() - begun)
                state.stored(key)

            source.fetch(document, missing, write, on_fetched=state.fetched)
        return state.result("downloaded", started)
    except RUN_ERRORS:
        raise
    except Exception as error:
        # A full, read-only or unwritable store would fail every later scene the same
        # way: one error naming the store ends the run instead.
        local = store is not None and not isinstance(error, NetworkError)
        problem = disk_problem(error) if local else None
        if problem is not None:
            raise storage_error(
                problem, f"cannot store scene {scene_id} in the raw-data store {store.root}"
            ) from error
        if not isinstance(error, SCENE_ERRORS):
            raise
        # Without a store nothing outlives a failure, so it cannot be "partial".
        status: StageStatus = "partial" if state.bands and store is not None else "failed"
        log.warning("staging scene %s %s: %s", scene_id, status, error)
        return state.result(status, started, error=str(error))


def load_scene(
    source: SceneSource,
    scene: Mapping[str, Any],
    bands: Sequence[str] | str | None,
    store: SceneStore | None,
    *,
    progress: ProgressCallback | None = None,
) -> xr.Dataset:
    """Exactly the requested bands of a scene (the quality band included), as DN on
    the 10 m grid.

    From the store, staging missing bands first. Without a store the bands are
    fetched and decoded into memory. An offline source (`StagedScenes`) refuses to
    fetch with `SceneNotStagedError` naming the missing bands. Un-requested bands the
    store also holds are not returned (pitfall 3).
    """
    document = scene_document(scene)
    scene_id = str(document.get("id") or "")
    keys = [str(key) for key in source.band_keys(_as_list(bands), document)]
    if store is None:
        result = stage_scene(source, document, keys, None, progress=progress)
        if result.dataset is None:
            raise SceneStageError(result)
        return result.dataset
    # Damage the quick check sees (a missing or truncated file, an unreadable record)
    # is repaired here like a missing band; an offline run never gets this far with
    # damage, since its readiness check refuses it first.
    if needed_damage(store, scene_id, keys) or store.missing_bands(scene_id, keys):
        result = stage_scene(source, document, keys, store, progress=progress)
        if not result.ok:
            raise SceneStageError(result)
    return store.open(scene_id, keys)


def in_memory_dataset(
    scene: Mapping[str, Any],
    keys: Sequence[str],
    arrays: Mapping[str, xr.DataArray],
    grid: Grid,
) -> xr.Dataset:
    """The in-memory counterpart of `SceneStore.open`: same variables and attributes."""
    dataset = xr.Dataset({key: arrays[key] for key in keys})
    properties = scene.get("properties") or {}
    attrs = {
        "darts:scene_id": scene.get("id"),
        "darts:item_id": scene.get("id"),
        "datetime": properties.get("datetime"),
        "proj:code": grid.crs_code,
        "proj:shape": list(grid.shape),
        "proj:transform": list(grid.transform),
        "proj:wkt2": grid.crs_wkt,
        "GeoTransform": grid.geotransform(),
    }
    dataset.attrs = {k: v for k, v in attrs.items() if v is not None}
    return dataset


def scene_document(scene: Any) -> dict[str, Any]:
    """A plain dict of a scene document (pystac Items are accepted too)."""
    if hasattr(scene, "to_dict") and not isinstance(scene, Mapping):
        scene = scene.to_dict()
    if not isinstance(scene, Mapping):
        raise TypeError(f"a scene document must be a mapping, got {type(scene).__name__}")
    return dict(scene)


# -- internals ----------------------------------------------------------------------


def _repair(store: SceneStore, scene_id: str, keys: Sequence[str], state: _State) -> list[str]:
    """The bands to make present: ``keys``, and any other band a repair drops.

    Called under the scene's lock. If the quick check finds damage in what ``keys``
    need, the scene is checked in full and its damaged parts dropped (`clear`: the
    damaged bands, or the whole scene when its record or coordinates are damaged), so
    staging fetches them again instead of calling the scene cached."""
    problems = needed_damage(store, scene_id, keys).problems
    if not problems:
        return list(keys)
    damage = clear(store, scene_id)
    if damage.healthy:  # repaired by another process while this one waited for the lock
        return list(keys)
    state.repaired = damage.restage or tuple(keys)
    log.warning(
        "scene %s is damaged (%s): staging %s again",
        scene_id,
        "; ".join(problems),
        ", ".join(state.repaired),
    )
    return list(dict.fromkeys([*keys, *damage.restage]))


def _as_list(bands: Sequence[str] | str | None) -> list[str] | None:
    if bands is None:
        return None
    return [bands] if isinstance(bands, str) else list(bands)


class _State:
    """Counters of one staging call, shared by the source's threads."""

    def __init__(self, scene_id: str, callback: ProgressCallback | None) -> None:
        self.scene_id = scene_id
        self._callback = callback
        self._lock = threading.Lock()
        self.bands: list[str] = []
        self.repaired: tuple[str, ...] = ()
        self.bytes = 0
        self.bytes_total = 0
        self.bands_total = 0

    def plan(self, bands: int, download_bytes: int) -> None:
        self.bands_total = bands
        self.bytes_total = download_bytes

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
                self.repaired,
            )
