"""``darts inference prep-data sentinel2`` and ``darts inference readiness sentinel2``."""

from __future__ import annotations

import sys
import threading

from darts.cli.parser import CommandContext
from darts.errors import ConfigError
from darts.pipelines.events import Event, EventSink
from darts.settings.pipeline import SavedSceneIds, Staging
from darts.settings.processing import Terrain
from darts.settings.resolve import Resolved
from darts.settings.sections import Storage


def _selection(settings: Resolved):
    from darts.pipelines.requests import selection_of

    return selection_of(settings)


def _filters(settings: Resolved):
    from darts.pipelines.requests import filters_of

    return filters_of(settings)


def prep_data_sentinel2(ctx: CommandContext) -> int:
    from darts.pipelines.prep_data import (
        run_prep_data,
        run_started_stamp,
        write_report,
    )
    from darts.pipelines.requests import prep_data_request
    from darts.pipelines.runtime import runtime_of

    settings: Resolved = ctx.settings  # type: ignore[assignment]
    staging = settings.get(Staging)
    if not staging.optical and not staging.aux:
        raise ConfigError(
            "say what to stage: --optical (Sentinel-2 scenes), --aux (ArcticDEM and TCVIS), or both"
        )
    runtime = runtime_of(settings)
    request = prep_data_request(settings, _selection(settings), _filters(settings))
    bars = _ProgressBars(enabled=not staging.dry_run)
    try:
        report = run_prep_data(request, runtime, on_event=with_notes(bars.on_event))
    finally:
        bars.close()

    if report.scene_id_file:
        print(f"scene ids ({len(report.scene_ids)}) written to {report.scene_id_file}")
    if report.dry_run:
        if request.optical:
            _print_plan(report)
        _print_aux_plan(report)
    else:
        if request.optical:
            _print_outcomes(report)
        _print_aux_outcomes(report)
    report_path = staging.report_file or (
        runtime.paths.log_dir / f"prep-data-{run_started_stamp()}.json"
    )
    if not report.dry_run or staging.report_file:
        written = write_report(report, report_path)
        print(f"report: {written}")
    failed = False
    if report.failed:
        print(f"{len(report.failed)} scene(s) failed", file=sys.stderr)
        failed = True
    if report.aux_failed:
        tiles = sum(len(t) for t in report.aux_failed.values())
        print(f"{tiles} auxiliary tile(s) failed", file=sys.stderr)
        failed = True
    return 1 if failed else 0


def with_notes(on_event: EventSink) -> EventSink:
    """``on_event`` plus: a source's notes for the run (filters that do not apply, data
    caveats) printed once, on stderr, whatever the progress display does."""
    from darts.pipelines.events import Note

    def handle(event: Event) -> None:
        if isinstance(event, Note):
            print(f"note: {event.text}", file=sys.stderr)
        on_event(event)

    return handle


def _print_aux_plan(report) -> None:
    if not report.aux_plan:
        return
    rows = [("cube", "tiles", "staged", "to fetch", "cube growth (est.)")]
    for need in report.aux_plan:
        rows.append(
            (
                need["cube"],
                str(len(need["tiles"])),
                str(len(need["tiles"]) - len(need["missing"])),
                " ".join(need["missing"]) or "-",
                _size(need["bytes_estimate"]),
            )
        )
    _table(rows)


def _print_aux_outcomes(report) -> None:
    if not report.aux_outcomes:
        return
    rows = [("cube", "fetched", "cached", "failed", "time")]
    for outcome in report.aux_outcomes:
        rows.append(
            (
                outcome["cube"],
                str(len(outcome["fetched"])),
                str(len(outcome["cached"])),
                str(len(outcome["failed"])),
                f"{outcome['seconds']:.1f} s",
            )
        )
    _table(rows)
    for outcome in report.aux_outcomes:
        for tile, reason in outcome["failed"].items():
            print(f"  {outcome['cube']} tile {tile}: {reason}")


def _print_plan(report) -> None:
    rows = [("scene", "cached", "to download", "download", "store (est.)")]
    total_download = total_store = 0
    for plan in report.plans:
        rows.append(
            (
                plan.scene_id,
                ",".join(plan.cached_bands) or "-",
                ",".join(plan.missing_bands) or "-",
                ("" if plan.download_exact else "~") + _size(plan.download_bytes),
                _size(plan.store_bytes_estimate),
            )
        )
        total_download += plan.download_bytes
        total_store += plan.store_bytes_estimate
    _table(rows)
    todo = sum(1 for p in report.plans if p.missing_bands)
    # Earth Engine answers are sized by their pixels, not listed: an estimate ("~").
    approx = "" if all(p.download_exact for p in report.plans) else "~"
    print(
        f"dry run: {len(report.plans)} scene(s), {len(report.plans) - todo} complete in the "
        f"store, {todo} to stage; {approx}{_size(total_download)} to download, about "
        f"{_size(total_store)} more in the store"
    )


def _print_outcomes(report) -> None:
    rows = [("scene", "status", "bands", "bytes", "time")]
    for outcome in report.outcomes:
        rows.append(
            (
                outcome.scene_id,
                outcome.status,
                ",".join(outcome.bands) or "-",
                _size(outcome.bytes_downloaded),
                f"{outcome.seconds:.1f} s",
            )
        )
    _table(rows)
    for outcome in report.outcomes:
        if outcome.error:
            print(f"  {outcome.scene_id}: {outcome.error}")
    counts: dict[str, int] = {}
    for outcome in report.outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    print("summary: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * w for w in widths))


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


class _ProgressBars:
    """Scenes and bytes as two tqdm bars on stderr (silent when not a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.scenes = None
        self.bytes = None
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def on_event(self, event: Event) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        from darts.pipelines.events import SceneStaged, StageProgress, StagingStarted

        if isinstance(event, StagingStarted):
            self.scenes = tqdm(total=event.scenes, unit="scene", desc="scenes", position=0)
            self.bytes = tqdm(
                total=event.bytes, unit="B", unit_scale=True, desc="download", position=1
            )
        elif (
            isinstance(event, StageProgress) and self.bytes is not None and event.event == "fetched"
        ):
            # Fetch threads report here: one lock keeps the bar's arithmetic whole.
            with self._lock:
                self.bytes.update(event.bytes_done - self._last.get(event.scene_id, 0))
                self._last[event.scene_id] = event.bytes_done
        elif isinstance(event, SceneStaged) and self.scenes is not None:
            self.scenes.update(1)

    def close(self) -> None:
        for bar in (self.bytes, self.scenes):
            if bar is not None:
                bar.close()


def readiness_sentinel2(ctx: CommandContext) -> int:
    """Check, with the network switched off, that a run's scenes are staged."""
    import json

    from darts.net.http import HttpClient
    from darts.pipelines.runtime import offline_runtime, runtime_of
    from darts.pipelines.scene_sources import open_scene_source
    from darts.store.readiness import optical_readiness
    from darts.store.scenes import SceneStore

    settings: Resolved = ctx.settings  # type: ignore[assignment]
    # This check never needs the network, whatever is set: its clients are offline.
    runtime = offline_runtime(runtime_of(settings))
    if runtime.paths.raw_data_store is None:
        raise ConfigError(
            "--no-raw-data-store keeps no scenes, so nothing can be staged for an offline "
            "run: drop --no-raw-data-store"
        )
    with HttpClient(runtime.net) as http:
        source = open_scene_source(runtime, http)
    scene_ids = _offline_scene_ids(settings, source.offline_ids)
    bands = source.band_keys(settings.get(Staging).bands, None)
    store = SceneStore(runtime.paths.raw_data_store)
    readiness = optical_readiness(store, scene_ids, bands)
    _add_aux_gaps(readiness, settings, runtime, store, scene_ids)
    print(f"raw-data source: {source.name}")
    print(f"raw-data store: {runtime.paths.raw_data_store}")
    print(f"ArcticDEM cube: {runtime.paths.arcticdem_dir}")
    print(f"TCVIS cube: {runtime.paths.tcvis_dir}")
    print(f"bands: {', '.join(bands)}")
    print(readiness.summary())
    report_file = settings.get(Staging).report_file
    if report_file:
        report_file.write_text(json.dumps(readiness.to_json(), indent=2) + "\n")
    if not readiness.ok:
        print(
            "not ready: stage the missing items with `darts inference prep-data "
            "sentinel2 ... --optical --aux` on a machine with internet",
            file=sys.stderr,
        )
        return 1
    print("ready for an offline run")
    return 0


def _add_aux_gaps(readiness, settings: Resolved, runtime, store, scene_ids) -> None:
    """Add every auxiliary tile the scenes need that the cubes lack (per scene), and
    move scenes with such gaps out of the ready list."""
    from darts.net.http import HttpClient
    from darts.pipelines.aux_data import AuxCubes, aux_gaps
    from darts.pipelines.aux_regions import regions_for_scenes

    items = [item for item in (store.item(s) for s in scene_ids) if item is not None]
    if not items:
        return
    with HttpClient(runtime.net) as http:
        cubes = AuxCubes(runtime, http, resolution_m=settings.get(Storage).arcticdem_resolution)
        gaps = aux_gaps(cubes, regions_for_scenes(items), settings.get(Terrain).aux_buffer_m)
    readiness.gaps.extend(gaps)
    not_ready = {gap.scene_id for gap in gaps}
    readiness.ready = [s for s in readiness.ready if s not in not_ready]


def _offline_scene_ids(settings: Resolved, discover_offline) -> list[str]:
    """Scene ids without any search: given ids, an id file, or — for a tile/AOI
    selection — the id file prep-data wrote (``--prep-data-scene-id-file``)."""
    from darts.sources.query import SceneSelection

    selection = _selection(settings)
    saved = settings.get(SavedSceneIds).prep_data_scene_id_file
    if selection.needs_search and saved is not None:
        selection = SceneSelection(scene_id_file=saved)
    return discover_offline(selection)
