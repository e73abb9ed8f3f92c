"""``darts inference sentinel2-sequential``: parse, run the pipeline, print, exit code."""

from __future__ import annotations

import sys
from typing import Any

from darts.cli.inference import (
    _filters,
    _selection,
    _table,
    progress_sink,
    progress_wanted,
    with_notes,
)
from darts.cli.parser import CommandContext
from darts.pipelines.events import Event
from darts.settings.processing import Models
from darts.settings.resolve import Resolved


def sentinel2_sequential(ctx: CommandContext) -> int:
    settings: Resolved = ctx.settings  # type: ignore[assignment]
    models = load_models(settings)
    from darts.pipelines.runtime import runtime_of
    from darts.pipelines.sequential import run_sequential

    runtime = runtime_of(settings)
    request = inference_request(settings, runtime.paths.output_dir)
    bars = Progress(enabled=progress_wanted(settings))
    try:
        progress = progress_sink(settings, bars.on_event)
        report = run_sequential(request, runtime, models, on_event=with_notes(progress))
    finally:
        bars.close()
    print_results(report)
    return 1 if report.failed else 0


def load_models(settings: Resolved, device: Any = None) -> list[Any]:
    """Models first: a bad checkpoint is reported before anything is downloaded.
    On ``--device``, unless ``device`` is given."""
    from darts.pipelines.requests import model_files_of
    from darts.processing.devices import resolve_device
    from darts.processing.models import load_model

    files = model_files_of(settings)
    device = device if device is not None else resolve_device(settings.get(Models).device)
    return [load_model(path, device) for path in files]


def inference_request(settings: Resolved, output_dir):
    from darts.pipelines.requests import inference_request as request_of

    selection = _selection(settings, saved_is_selection=True)
    return request_of(settings, output_dir, selection, _filters(settings))


def print_results(report) -> None:
    rows = [("scene", "status", "patches", "time", "output / error")]
    for r in report.results:
        status = r.status
        if r.note and r.status != "failed":
            # Why it was skipped or redone: old outputs of other models must not pass
            # silently for this run's.
            status = f"{r.status} ({r.note})"
        rows.append(
            (
                r.scene_id,
                status,
                f"{r.patches - r.patches_skipped}/{r.patches}" if r.patches else "-",
                f"{sum(r.seconds.values()):.1f} s",
                r.output_dir if r.status != "failed" else (r.error or "").splitlines()[0],
            )
        )
    _table(rows)
    counts = report.counts()
    print("summary: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    print(f"run record: {report.run_dir} (config.json, results.csv, results.json)")
    if report.failed:
        print(f"{len(report.failed)} scene(s) failed", file=sys.stderr)


class Progress:
    """Scenes and patch batches as tqdm bars on stderr (only on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.scenes = None
        self.batches = None

    def on_event(self, event: Event) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        from darts.pipelines.events import BatchDone, RunStarted, SceneFinished

        if isinstance(event, RunStarted):
            self.scenes = tqdm(total=event.scenes, unit="scene", desc="scenes", position=0)
        elif isinstance(event, BatchDone):
            if self.batches is None or self.batches.total != event.total:
                if self.batches is not None:
                    self.batches.close()
                self.batches = tqdm(total=event.total, unit="batch", desc="patches", position=1)
            self.batches.n = event.done
            self.batches.refresh()
        elif isinstance(event, SceneFinished) and self.scenes is not None:
            self.scenes.update(1)

    def close(self) -> None:
        for bar in (self.batches, self.scenes):
            if bar is not None:
                bar.close()
