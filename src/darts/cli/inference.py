"""``darts inference prep-data sentinel2`` and ``darts inference readiness sentinel2``."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from darts.cli.parser import CommandContext
from darts.cli.progress_lines import human_size as _size
from darts.errors import ConfigError
from darts.pipelines.events import Event, EventSink
from darts.settings.pipeline import Bands, Connectivity, Report, SavedSceneIds, Staging
from darts.settings.processing import Terrain
from darts.settings.readiness import ReadinessCheck
from darts.settings.resolve import Resolved
from darts.settings.sections import Storage
from darts.store.disk import check_writable_dir, check_writable_file


def _selection(settings: Resolved, *, saved_is_selection: bool = False):
    from darts.pipelines.requests import selection_of

    return selection_of(settings, saved_is_selection=saved_is_selection)


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
    if Connectivity in settings.sections and settings.get(Connectivity).offline:
        raise ConfigError(
            "prep-data downloads data and cannot run with --offline; to check what is "
            "staged on an offline machine use `darts inference readiness sentinel2`"
        )
    staging = settings.get(Staging)
    if not staging.optical and not staging.aux:
        raise ConfigError(
            "say what to stage: --optical (Sentinel-2 scenes), --aux (ArcticDEM and TCVIS), or both"
        )
    runtime = runtime_of(settings)
    request = prep_data_request(settings, _selection(settings), _filters(settings))
    report_file = settings.get(Report).report_file
    report_path = report_file or (runtime.paths.log_dir / f"prep-data-{run_started_stamp()}.json")
    # Checked now: finding out after hours of staging that the report has no place to
    # go would end a good run with an error.
    if report_file:
        check_writable_file(report_file, "report file", "set by --report-file")
    elif not staging.dry_run:
        check_writable_dir(runtime.paths.log_dir, "log folder", runtime.paths.set_by("log_dir"))
    # Bars only on a terminal: in a job log they are noise, and stderr is for errors.
    bars = _ProgressBars(enabled=not staging.dry_run and progress_wanted(settings))
    progress = progress_sink(settings, bars.on_event) if not staging.dry_run else bars.on_event
    try:
        report = run_prep_data(request, runtime, on_event=with_notes(progress))
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
    if not report.dry_run or report_file:
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


def progress_wanted(settings: Resolved) -> bool:
    """Progress bars: on a terminal, unless --log-plain asks for log lines only (or
    --no-progress for none)."""
    from darts.settings.sections import Logging

    logging_ = settings.get(Logging)
    return sys.stderr.isatty() and not logging_.log_plain and not logging_.no_progress


def progress_sink(settings: Resolved, bars: Callable[[Event], None]) -> Callable[[Event], None]:
    """Where a command's progress goes: ``bars`` on a terminal, else plain lines
    (`darts.cli.progress_lines`), or nowhere with --no-progress."""
    from darts.cli.progress_lines import ProgressLines
    from darts.settings.sections import Logging

    if settings.get(Logging).no_progress:
        return lambda event: None
    if progress_wanted(settings):
        return bars
    return ProgressLines().on_event


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
        if outcome.repaired:
            print(f"  {outcome.scene_id}: was damaged; staged again: {', '.join(outcome.repaired)}")
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
    from darts.pipelines.aux_data import AuxCubes
    from darts.pipelines.readiness import staged_readiness
    from darts.pipelines.runtime import offline_runtime, runtime_of
    from darts.pipelines.scene_sources import open_scene_source
    from darts.sources.query import SceneFilters

    settings: Resolved = ctx.settings  # type: ignore[assignment]
    runtime = runtime_of(settings)
    if runtime.paths.raw_data_store is None:
        raise ConfigError(
            "--no-raw-data-store keeps no scenes, so nothing can be staged for an offline "
            "run: drop --no-raw-data-store"
        )
    report_file = settings.get(Report).report_file
    if report_file:
        check_writable_file(report_file, "report file", "set by --report-file")
    # This check never needs the network, whatever is set: its clients are offline.
    runtime = offline_runtime(runtime)
    saved = settings.get(SavedSceneIds).prep_data_scene_id_file
    with HttpClient(runtime.net) as http:
        source = open_scene_source(runtime, http, saved_scene_id_file=saved)
        selection = _selection(settings, saved_is_selection=True)
        documents = source.discover(selection, SceneFilters())
        bands = source.band_keys(settings.get(Bands).bands, None)
        cubes = AuxCubes(runtime, http, resolution_m=settings.get(Storage).arcticdem_resolution)
        readiness = staged_readiness(
            documents,
            source.store,  # type: ignore[attr-defined]
            bands,
            cubes,
            settings.get(Terrain).aux_buffer_m,
            verify=settings.get(ReadinessCheck).verify,
        )
    print(f"raw-data source: {source.name}")
    print(f"raw-data store: {runtime.paths.raw_data_store}")
    print(f"ArcticDEM cube: {runtime.paths.arcticdem_dir}")
    print(f"TCVIS cube: {runtime.paths.tcvis_dir}")
    print(f"bands: {', '.join(bands)}")
    print(readiness.summary())
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
