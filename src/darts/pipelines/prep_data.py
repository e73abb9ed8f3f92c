"""``prep-data``: stage everything a later (offline) run needs.

discover → (write the scene-id file) → plan → stage each scene → report.

Each scene is staged on its own: one failure is recorded and the others go on, the
report says which scenes are ready, and the caller turns any failure into a non-zero
exit (pitfall 9: the reference only logged failures). A re-run skips what is complete,
because staging asks the store which bands are missing first.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from darts.errors import ConfigError, DartsError
from darts.net.http import HttpClient
from darts.pipelines import events
from darts.pipelines.events import EventSink
from darts.pipelines.runtime import Runtime
from darts.pipelines.scene_sources import open_scene_source
from darts.pipelines.staging import stage_scene
from darts.sources.query import SceneFilters, SceneSelection
from darts.sources.scene_docs import describe_query, discover_scenes, no_scenes_message
from darts.sources.scene_ids import write_scene_id_file
from darts.sources.scene_source import SceneSource
from darts.store.atomic import atomic_write_text
from darts.store.disk import check_writable_dir, check_writable_file
from darts.store.scene_damage import needed_damage
from darts.store.scenes import SceneStore

# Bytes on disk per 10 m pixel of a stored band, measured with the store's encoding
# on realistic scenes (benchmarks/bench_store_encoding.py): the dry run's estimate.
STORE_BYTES_PER_PIXEL = {"uint16": 0.7, "int16": 0.7, "uint8": 0.1}


@dataclass(frozen=True)
class PrepDataRequest:
    selection: SceneSelection
    filters: SceneFilters
    bands: Sequence[str]
    optical: bool
    dry_run: bool = False
    scene_id_file_out: Path | None = None
    aux: bool = False
    aux_buffer_m: float = 120.0
    arcticdem_resolution: int = 10


@dataclass(frozen=True)
class ScenePlan:
    scene_id: str
    bands: list[str]
    cached_bands: list[str]
    missing_bands: list[str]
    download_bytes: int
    store_bytes_estimate: int
    download_exact: bool = True


@dataclass
class SceneOutcome:
    scene_id: str
    status: str  # cached | downloaded | partial | failed | planned
    bands: list[str] = field(default_factory=list)
    bytes_downloaded: int = 0
    seconds: float = 0.0
    error: str | None = None
    # Bands found damaged (missing/truncated files, an unreadable record) and staged again.
    repaired: list[str] = field(default_factory=list)


@dataclass
class PrepDataReport:
    started: str
    query: str
    scene_ids: list[str]
    plans: list[ScenePlan] = field(default_factory=list)
    outcomes: list[SceneOutcome] = field(default_factory=list)
    scene_id_file: str | None = None
    dry_run: bool = False
    finished: str | None = None
    source: str = "cdse"
    notes: list[str] = field(default_factory=list)
    aux_plan: list[dict[str, Any]] = field(default_factory=list)
    aux_outcomes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> list[SceneOutcome]:
        return [o for o in self.outcomes if o.status in ("failed", "partial")]

    @property
    def aux_failed(self) -> dict[str, dict[str, str]]:
        """Cube label -> {tile: reason} for every auxiliary tile that failed."""
        return {o["cube"]: o["failed"] for o in self.aux_outcomes if o["failed"]}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed_count"] = len(self.failed)
        data["aux_failed_count"] = sum(len(f) for f in self.aux_failed.values())
        data["ready"] = [o.scene_id for o in self.outcomes if o.status in ("cached", "downloaded")]
        return data


def run_prep_data(
    request: PrepDataRequest,
    runtime: Runtime,
    *,
    on_event: EventSink | None = None,
) -> PrepDataReport:
    """Discover, plan and stage. Raises `DartsError` for problems of the whole run
    (bad input, offline, credentials); per-scene failures land in the report."""
    return stage_scenes(request, runtime, None, on_event=on_event)


def stage_scenes(
    request: PrepDataRequest,
    runtime: Runtime,
    scenes: Sequence[Mapping[str, Any]] | None,
    *,
    on_event: EventSink | None = None,
) -> PrepDataReport:
    """Plan and stage ``scenes`` (scene documents a discovery returned), or, when None,
    the scenes ``request.selection`` finds. See `run_prep_data`."""
    if request.optical and runtime.paths.raw_data_store is None:
        raise ConfigError(
            "prep-data --optical stages scenes into the raw-data store, but "
            "--no-raw-data-store keeps nothing on disk: drop one of the two"
        )
    _check_writable(request, runtime)
    emit = on_event or events.ignore
    report = PrepDataReport(
        started=_now(),
        query=describe_query(request.selection, request.filters),
        scene_ids=[],
        dry_run=request.dry_run,
    )
    with HttpClient(runtime.net) as http:
        source = open_scene_source(runtime, http)
        report.source = source.name
        report.notes = source.notes(request.filters)
        if scenes is None:
            items = discover_scenes(source, request.selection, request.filters)
        else:
            items = [dict(scene) for scene in scenes]
        # After the search: a search that fails ends in its one error line alone.
        for note in report.notes:
            emit(events.Note(note))
        if not items:
            raise DartsError(no_scenes_message(request.selection, request.filters, source))
        report.scene_ids = [item["id"] for item in items]
        emit(events.ScenesFound(len(items)))
        if request.scene_id_file_out is not None:
            write_scene_id_file(request.scene_id_file_out, report.scene_ids, items)
            report.scene_id_file = str(request.scene_id_file_out)

        if request.aux:
            _stage_aux(request, runtime, items, report, emit)
        root = runtime.paths.raw_data_store
        store = SceneStore(root, lock_wait_s=runtime.lock_wait_s) if root else None
        if store is None or not request.optical:
            return _finish(report)
        report.plans = [plan_scene(source, item, request.bands, store) for item in items]
        if request.dry_run:
            report.outcomes = [
                SceneOutcome(p.scene_id, "cached" if not p.missing_bands else "planned", p.bands)
                for p in report.plans
            ]
            return _finish(report)
        _stage_optical(source, items, store, report, emit)
    return _finish(report)


def _check_writable(request: PrepDataRequest, runtime: Runtime) -> None:
    """Refuse, before any download, places prep-data could not write: a store that
    is a file or sits on a read-only disk would otherwise fail every scene or tile."""
    paths = runtime.paths
    dirs: list[tuple[Path | None, str, str]] = []
    if request.optical and not request.dry_run:
        dirs.append((paths.raw_data_store, "raw-data store", "raw_data_store"))
    if request.aux:
        # The tile index is fetched (once) even by a dry run: it says which tiles exist.
        dirs.append((paths.arcticdem_index_dir, "ArcticDEM index folder", "arcticdem_index_dir"))
        if not request.dry_run:
            dirs.append((paths.arcticdem_dir, "ArcticDEM datacube", "arcticdem_dir"))
            dirs.append((paths.tcvis_dir, "TCVIS datacube", "tcvis_dir"))
    for path, what, name in dirs:
        if path is not None:
            check_writable_dir(path, what, paths.set_by(name))
    if request.scene_id_file_out is not None:
        check_writable_file(
            request.scene_id_file_out, "scene-id file", "set by --prep-data-scene-id-file"
        )


def _stage_optical(
    source: SceneSource,
    items: Sequence[Mapping[str, Any]],
    store: SceneStore,
    report: PrepDataReport,
    emit: EventSink,
) -> None:
    total_bytes = sum(p.download_bytes for p in report.plans)
    emit(events.StagingStarted(len(items), total_bytes))
    for item, plan in zip(items, report.plans, strict=True):
        emit(events.SceneStarted(plan.scene_id, plan.download_bytes))

        result = stage_scene(source, item, plan.bands, store, progress=emit)
        outcome = SceneOutcome(
            scene_id=result.scene_id,
            status=result.status,
            bands=list(result.bands_downloaded),
            bytes_downloaded=result.bytes_downloaded,
            seconds=round(result.seconds, 3),
            error=result.error,
            repaired=list(result.repaired),
        )
        report.outcomes.append(outcome)
        emit(events.SceneStaged(outcome))


def _stage_aux(
    request: PrepDataRequest,
    runtime: Runtime,
    items: Sequence[Mapping[str, Any]],
    report: PrepDataReport,
    emit: EventSink,
) -> None:
    """Plan (and unless dry-run, fill) both cubes for the regions the run will read:
    MGRS tile footprints for a tile selection, else the discovered scenes' footprints
    (for an AOI too: the scenes reach beyond the AOI and are processed whole)."""
    from darts.pipelines.aux_data import AuxCubes
    from darts.pipelines.aux_regions import regions_for_scenes, regions_for_tiles

    if request.selection.tile_ids:
        regions = regions_for_tiles(list(request.selection.tile_ids), items)
    else:
        regions = regions_for_scenes(items)
    with HttpClient(runtime.net) as http:
        cubes = AuxCubes(runtime, http, resolution_m=request.arcticdem_resolution)
        needs = cubes.plan(regions, request.aux_buffer_m)
        report.aux_plan = [
            {
                "cube": need.label,
                "location": cubes.location(need.key),
                "group": need.key.group,
                "tiles": need.tiles,
                "missing": need.missing,
                "bytes_estimate": need.bytes_estimate,
            }
            for need in needs
        ]
        emit(events.AuxPlanned(report.aux_plan))
        if request.dry_run:
            return
        outcomes = cubes.stage(
            needs, on_tile=lambda cube, tile: emit(events.AuxTileDone(cube, tile))
        )
        report.aux_outcomes = [outcome.to_json() for outcome in outcomes]


def plan_scene(
    source: SceneSource, item: Mapping[str, Any], bands: Sequence[str], store: SceneStore
) -> ScenePlan:
    """What staging this scene would fetch, from the scene document alone (no network)."""
    keys = source.band_keys(list(bands), item)
    scene_id = str(item["id"])
    damage = needed_damage(store, scene_id, keys)
    # Damaged bands are staged again (a damaged record or coordinates: all of them).
    unusable = damage.unusable(keys)
    missing = unusable + ([] if damage.whole else store.missing_bands(scene_id, keys))
    missing = list(dict.fromkeys(missing))
    description = source.describe(item, missing)
    rows, cols = description.grid.shape
    assets = item.get("assets", {})
    estimate = 0
    for key in missing:
        dtype = str((assets.get(key) or {}).get("data_type") or "uint16")
        estimate += int(rows * cols * STORE_BYTES_PER_PIXEL.get(dtype, 0.7))
    return ScenePlan(
        scene_id=scene_id,
        bands=keys,
        cached_bands=[k for k in keys if k not in missing],
        missing_bands=missing,
        download_bytes=description.download_bytes if missing else 0,
        store_bytes_estimate=estimate,
        download_exact=description.bytes_exact,
    )


def write_report(report: PrepDataReport, path: Path) -> Path:
    """Write the machine-readable report atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(report.to_json(), indent=2) + "\n")
    return path


def _finish(report: PrepDataReport) -> PrepDataReport:
    report.finished = _now()
    return report


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def run_started_stamp() -> str:
    """The run's start time and process id: concurrent runs (one per job of an array)
    start within the same second, and each must keep its own report."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}"
