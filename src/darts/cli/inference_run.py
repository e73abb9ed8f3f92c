"""``darts inference sentinel2-sequential``: parse, run the pipeline, print, exit code."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from darts.cli.inference import _filters, _selection, _table, with_notes
from darts.cli.parser import CommandContext
from darts.errors import ConfigError
from darts.settings.pipeline import SavedSceneIds
from darts.settings.processing import Export, Models, Postprocess, Terrain
from darts.settings.resolve import Resolved
from darts.settings.sections import Storage


def sentinel2_sequential(ctx: CommandContext) -> int:
    settings: Resolved = ctx.settings  # type: ignore[assignment]
    models = _load_models(settings)
    from darts.pipelines.runtime import runtime_from
    from darts.pipelines.sequential import run_sequential

    runtime = runtime_from(settings)
    request = inference_request(settings, runtime.paths.output_dir)
    bars = _Progress(enabled=sys.stderr.isatty())
    try:
        report = run_sequential(request, runtime, models, on_event=with_notes(bars.on_event))
    finally:
        bars.close()
    print_results(report)
    return 1 if report.failed else 0


def _load_models(settings: Resolved) -> list[Any]:
    """Models first: a bad checkpoint is reported before anything is downloaded."""
    from darts.processing.devices import resolve_device
    from darts.processing.models import load_model

    chosen = settings.get(Models)
    if not chosen.model_files:
        raise ConfigError(
            "no model given: pass --model-files FILE [FILE ...] (several form an ensemble)"
        )
    device = resolve_device(chosen.device)
    return [load_model(path, device) for path in chosen.model_files]


def inference_request(settings: Resolved, output_dir):
    from darts.pipelines.sequential import InferenceRequest
    from darts.processing.features import FeatureParams
    from darts.processing.inference import PatchParams
    from darts.processing.postprocess import PostprocessParams

    models = settings.get(Models)
    terrain = settings.get(Terrain)
    post = settings.get(Postprocess)
    export = settings.get(Export)
    if models.overlap >= models.patch_size:
        raise ConfigError(
            f"--overlap {models.overlap} must be smaller than --patch-size {models.patch_size}"
        )
    return InferenceRequest(
        selection=_selection(settings),
        filters=_filters(settings),
        model_files=list(models.model_files),
        patch=PatchParams(
            patch_size=models.patch_size,
            overlap=models.overlap,
            batch_size=models.batch_size,
            reflection_padding=models.reflection_padding,
        ),
        features=FeatureParams(
            tpi_outer_radius_m=terrain.tpi_outer_radius,
            tpi_inner_radius_m=terrain.tpi_inner_radius,
            terrain_convention=terrain.terrain_convention,
        ),
        post=PostprocessParams(
            binarization_threshold=post.binarization_threshold,
            mask_erosion_size=post.mask_erosion_size,
            edge_erosion_size=post.edge_erosion_size,
            min_object_size=post.min_object_size,
            quality_level=post.quality_level,
        ),
        exports=list(dict.fromkeys(export.export)),
        output_dir=output_dir,
        overwrite=export.overwrite,
        arcticdem_resolution=settings.get(Storage).arcticdem_resolution,
        aux_buffer_m=terrain.aux_buffer_m,
        saved_scene_id_file=settings.get(SavedSceneIds).prep_data_scene_id_file,
        resolved_config=settings.to_document(),
    )


def print_results(report) -> None:
    rows = [("scene", "status", "patches", "time", "output / error")]
    for r in report.results:
        rows.append(
            (
                r.scene_id,
                r.status,
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


class _Progress:
    """Scenes and patch batches as tqdm bars on stderr (only on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.scenes = None
        self.batches = None

    def on_event(self, kind: str, data: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if kind == "start":
            self.scenes = tqdm(total=data["scenes"], unit="scene", desc="scenes", position=0)
        elif kind == "batch":
            if self.batches is None or self.batches.total != data["total"]:
                if self.batches is not None:
                    self.batches.close()
                self.batches = tqdm(total=data["total"], unit="batch", desc="patches", position=1)
            self.batches.n = data["done"]
            self.batches.refresh()
        elif kind == "scene_done" and self.scenes is not None:
            self.scenes.update(1)

    def close(self) -> None:
        for bar in (self.batches, self.scenes):
            if bar is not None:
                bar.close()
