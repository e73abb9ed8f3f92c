"""``sentinel2-sequential``: every scene through preprocess → segment → postprocess →
export, one after another, in bounded memory.

The run is honest about what happened (pitfalls 19, 20): a scene is skipped only when
its completion record (``darts_inference.json``, written last) is intact; each scene's
status, error and step times land in a results table rewritten after every scene; the
caller exits non-zero when any scene failed. Offline, a readiness check runs first and
lists everything missing before any work starts.

The Dask run (`darts.pipelines.dask_run`) shares all but the loop: the checks before
any work, one scene's step (`process_scene`, whose export writes the provenance), the
skip decision (`currency` against `run_identity_of`), which failures end the run
(`scene_failure`) and the run record.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from darts import __version__
from darts.errors import ConfigError, DartsError, StorageError
from darts.net.errors import CredentialsError, NetworkError
from darts.net.http import HttpClient
from darts.pipelines import events
from darts.pipelines.aux_data import AuxCubes
from darts.pipelines.events import EventSink
from darts.pipelines.runtime import Runtime
from darts.pipelines.scene_inputs import (
    TCVIS_FEATURES,
    TERRAIN_FEATURES,
    InputPlan,
    scene_inputs,
)
from darts.pipelines.scene_provenance import model_entries, scene_provenance
from darts.pipelines.step_clock import StepClock
from darts.processing.export import export_scene, is_complete, scene_output_dir
from darts.processing.features import (
    ALL_FEATURES,
    DEM_BAND,
    TCVIS_VALID,
    FeatureParams,
    feature_window,
    release_caches,
    valid_window,
)
from darts.processing.inference import PatchParams, predict_scene
from darts.processing.models import LoadedModel, check_bands
from darts.processing.postprocess import PostprocessParams, postprocess
from darts.processing.provenance import Provenance
from darts.sources.query import SceneFilters, SceneSelection
from darts.sources.scene_source import OPTICAL_KEYS, SceneSource
from darts.store.disk import check_writable_dir, disk_problem, storage_error
from darts.store.errors import StoreError


@dataclass(frozen=True)
class InferenceRequest:
    selection: SceneSelection
    filters: SceneFilters
    model_files: Sequence[Path]
    patch: PatchParams
    features: FeatureParams
    post: PostprocessParams
    exports: Sequence[str]
    output_dir: Path
    overwrite: bool = False
    arcticdem_resolution: int = 10
    aux_buffer_m: float = 120.0
    saved_scene_id_file: Path | None = None
    resolved_config: Mapping[str, Any] = field(default_factory=dict)
    # Also each model's own probabilities (``--write-model-outputs``).
    write_model_outputs: bool = False

    @property
    def recorded_exports(self) -> list[str]:
        """The exports as the completion record names them: per-model probabilities
        are one more, so switching them on redoes finished scenes."""
        extra = [MODEL_OUTPUTS] if self.write_model_outputs else []
        return [*self.exports, *extra]


# The record's name for ``--write-model-outputs``' files.
MODEL_OUTPUTS = "model_probabilities"


@dataclass
class SceneResult:
    scene_id: str
    status: str  # done | skipped | failed
    error: str | None = None
    # Why a scene was skipped or redone ("outputs current", "redone: models ... → ...").
    note: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    output_dir: str = ""
    patches: int = 0
    patches_skipped: int = 0
    objects: int | None = None


@dataclass
class RunReport:
    run_dir: Path
    results: list[SceneResult] = field(default_factory=list)

    @property
    def failed(self) -> list[SceneResult]:
        return [r for r in self.results if r.status == "failed"]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for result in self.results:
            counts[result.status] = counts.get(result.status, 0) + 1
        return counts


def run_sequential(
    request: InferenceRequest,
    runtime: Runtime,
    models: Sequence[LoadedModel],
    *,
    on_event: EventSink | None = None,
) -> RunReport:
    """Process every selected scene. Raises `DartsError` for problems of the whole run
    (bad selection, offline gaps, models that need bands no scene can provide);
    per-scene failures land in the report."""
    emit = on_event or events.ignore
    bound_heap()
    bands, needs_dem, needs_tcvis = model_inputs(models)
    from darts.store.scenes import SceneStore

    # Only the results must be writable: the stores may be a read-only copy, and an
    # online run writes to them only what is missing (a refusal then names the store).
    check_writable_dir(request.output_dir, "output folder", runtime.paths.set_by("output_dir"))
    root = runtime.paths.raw_data_store
    store = SceneStore(root, lock_wait_s=runtime.lock_wait_s) if root else None
    run_dir = new_run_dir(request.output_dir)
    report = RunReport(run_dir)
    write_json(run_dir / "config.json", dict(request.resolved_config))

    with HttpClient(runtime.net) as http:
        from darts.pipelines.scene_sources import open_scene_source

        source = open_scene_source(runtime, http, saved_scene_id_file=request.saved_scene_id_file)
        cubes = AuxCubes(runtime, http, resolution_m=request.arcticdem_resolution)
        items = scene_items(request, runtime, source, store, cubes, needs_dem, needs_tcvis)
        # After the search: a search that fails ends in its one error line alone.
        for note in source.notes(request.filters):
            emit(events.Note(note))
        emit(events.RunStarted(len(items), str(run_dir)))
        identity = run_identity_of(request, models, source.name)
        for item in items:
            scene_id = str(item["id"])
            out_dir = scene_output_dir(request.output_dir, scene_id)
            result = SceneResult(scene_id, "failed", output_dir=str(out_dir))
            emit(events.SceneStarted(scene_id))
            result.note = currency(out_dir, identity, overwrite=request.overwrite)
            if result.note == CURRENT:
                result.status = "skipped"
            else:
                try:
                    process_scene(
                        item, request, runtime, models, bands, store, source, cubes,
                        needs_dem, needs_tcvis, out_dir, result, emit,
                    )  # fmt: skip
                    result.status = "done"
                except Exception as error:  # one scene's bug must not end the run
                    keys_worked = any(r.status == "done" for r in report.results)
                    result.error = scene_failure(
                        error, f"scene {scene_id}", keys_worked=keys_worked
                    )
            release_free_memory()
            report.results.append(result)
            write_results(report)
            emit(events.SceneFinished(result))
    return report


def scene_failure(error: Exception, what: str, *, keys_worked: bool) -> str:
    """The results table's line for ``what`` ("scene <id>") that raised ``error``;
    raises instead when the error would fail every scene alike, so it ends the whole
    run. Shared by the sequential and the Dask run (whose tasks raise what this raises,
    and whose client calls it again with a task's error)."""
    if isinstance(error, StorageError):
        raise error  # a full disk would fail every scene alike
    if isinstance(error, CredentialsError):
        # Wrong or missing keys fail every request alike: a refusal before any scene
        # got through ends the run. Once keys have worked, a refusal concerns that
        # scene's objects only.
        if not keys_worked:
            raise error
        return str(error)
    if isinstance(error, (DartsError, NetworkError, StoreError)):
        return str(error)
    problem = disk_problem(error)
    if problem is not None:
        raise storage_error(problem, what) from error
    return f"{type(error).__name__}: {error}"


def model_inputs(models: Sequence[LoadedModel]) -> tuple[list[str], bool, bool]:
    """The bands the ensemble reads (each model's, in first-seen order) and whether
    they need ArcticDEM and TCVIS; raises when there is no model or a model wants a
    band no scene can provide."""
    if not models:
        raise ConfigError("no model given: pass one or more --model-files")
    for model in models:
        check_bands(model.spec, ALL_FEATURES)
    bands = _union_bands(models)
    return bands, bool(TERRAIN_FEATURES & set(bands)), bool(TCVIS_FEATURES & set(bands))


def scene_items(
    request: InferenceRequest,
    runtime: Runtime,
    source: SceneSource,
    store: Any,
    cubes: AuxCubes,
    needs_dem: bool,
    needs_tcvis: bool,
) -> list[dict[str, Any]]:
    """The scene documents to process: what the source discovers (offline, the staged
    scenes: see `StagedScenes`), then the readiness check, which lists every gap of an
    offline run before any work starts."""
    from darts.pipelines.readiness import require_ready
    from darts.sources.scene_docs import discover_scenes, no_scenes_message

    items = discover_scenes(source, request.selection, request.filters)
    if not items:
        raise DartsError(no_scenes_message(request.selection, request.filters, source))
    keys = [*OPTICAL_KEYS, source.quality_band]
    aux = cubes if needs_dem or needs_tcvis else None
    require_ready(
        runtime, items, store, keys, aux, request.aux_buffer_m,
        needs_dem=needs_dem, needs_tcvis=needs_tcvis,
    )  # fmt: skip
    return [dict(item) for item in items]


def process_scene(
    item: dict[str, Any],
    request: InferenceRequest,
    runtime: Runtime,
    models: Sequence[LoadedModel],
    bands: list[str],
    store: Any,
    source: SceneSource,
    cubes: AuxCubes,
    needs_dem: bool,
    needs_tcvis: bool,
    out_dir: Path,
    result: SceneResult,
    emit: EventSink,
) -> None:
    clock = StepClock(result.seconds)
    plan = InputPlan(request.features, request.aux_buffer_m, needs_dem, needs_tcvis)
    inputs, params = scene_inputs(item, source, store, cubes, plan, clock=clock)
    quality_level = request.post.quality_level
    shape = (inputs.sizes["y"], inputs.sizes["x"])
    with clock("segment"):
        prediction = predict_scene(
            models,
            shape,
            read_patch=lambda window, names: feature_window(inputs, window, names, params),
            valid=lambda window: valid_window(inputs, window, quality_level),
            params=request.patch,
            on_batch=lambda done, total: emit(events.BatchDone(str(item["id"]), done, total)),
            each_model=request.write_model_outputs,
        )
    result.patches = prediction.n_patches
    result.patches_skipped = prediction.n_skipped
    # Auxiliary layers no export needs are done with (the DEM: 482 MB for a 10980²
    # scene), and so are the chunks and tiles the lazy layers keep for the patches.
    inputs = inputs.drop_vars(_unexported_inputs(inputs, request.exports))
    release_caches(inputs)
    release_free_memory()
    with clock("postprocess"):
        coords = {
            name: inputs.coords[name] for name in ("y", "x", "spatial_ref") if name in inputs.coords
        }
        probabilities = xr.DataArray(prediction.probabilities, dims=("y", "x"), coords=coords)
        each_model = prediction.model_probabilities
        del prediction
        post = postprocess(
            probabilities, inputs["quality_data_mask"], request.post, take_probabilities=True
        )
        del probabilities
    with clock("export"):
        scene = _export_dataset(post, inputs, request.exports, params)
        # Each model's own probabilities (only with --write-model-outputs).
        model_layers: dict[str, str] = {}
        labels = model_labels(models) if each_model else []
        for index, (label, array) in enumerate(zip(labels, each_model, strict=True)):
            model_layers[label] = f"probabilities_model_{index}"
            scene = scene.assign({model_layers[label]: (("y", "x"), array)})
        del each_model
        provenance = scene_provenance(
            item, source.name, models, _parameters(run_identity_of(request, models, source.name))
        )
        metadata = _metadata(item, request, models, params, result, runtime, provenance)
        written = export_scene(
            scene,
            out_dir,
            exports=request.exports,
            metadata=metadata,
            provenance=provenance,
            model_layers=model_layers,
        )
    result.objects = _object_count(written.get("polygonized", []))


CURRENT = "outputs current"


def currency(out_dir: Path, identity: Mapping[str, Any], *, overwrite: bool) -> str | None:
    """`CURRENT` when the scene's finished outputs answer this run (skip it); else why
    it is redone, or None when there is nothing finished to replace."""
    from darts.processing.run_identity import differences
    from darts.processing.run_metadata import read_record

    record = read_record(out_dir) if is_complete(out_dir) else None
    if record is None:
        return None
    if overwrite:
        return "redone: --overwrite"
    changed = differences(record, identity)
    return "redone: " + "; ".join(changed) if changed else CURRENT


def run_identity_of(
    request: InferenceRequest, models: Sequence[LoadedModel], source_name: str
) -> dict[str, Any]:
    from darts.processing.run_identity import run_identity

    return run_identity(
        source=source_name,
        model_checksums=[m.spec.sha256 for m in models],
        patch=asdict(request.patch),
        postprocess=asdict(request.post),
        preprocessing={
            **asdict(request.features),
            "preprocessing_version": _preprocessing_version(request.features),
        },
        aux=_aux_parameters(request),
        exports=request.recorded_exports,
    )


def _parameters(identity: Mapping[str, Any]) -> dict[str, Any]:
    """The run's parameters that shape the outputs' values, as the outputs carry them
    (with their digest): the identity's, less the source, models and export set,
    which the outputs name on their own."""
    return {key: identity[key] for key in ("patch", "postprocess", "preprocessing", "aux")}


def _aux_parameters(request: InferenceRequest) -> dict[str, Any]:
    return {
        "buffer_m": request.aux_buffer_m,
        "arcticdem_resolution": request.arcticdem_resolution,
    }


def _exported_features(exports: Sequence[str]) -> list[str]:
    """The physical input layers the exports draw: the RGB reflectance for the
    thumbnail (and the optical export), the others only when their export is asked."""
    wanted = ["red", "green", "blue"] if {"thumbnail", "optical"} & set(exports) else []
    if "optical" in exports:
        wanted.append("nir")
    if "dem" in exports:
        wanted += ["relative_elevation", "slope"]
    if "tcvis" in exports:
        wanted += ["tc_brightness", "tc_greenness", "tc_wetness"]
    return wanted


def _unexported_inputs(inputs: xr.Dataset, exports: Sequence[str]) -> list[str]:
    """Auxiliary input variables that no export reads (the optical bands are lazy
    and the quality mask is postprocessing's, so those stay)."""
    wanted = set(_exported_features(exports))
    drop = []
    if not wanted & set(TERRAIN_FEATURES):
        drop.append(DEM_BAND)
    if not wanted & set(TCVIS_FEATURES):
        drop += [*TCVIS_FEATURES, TCVIS_VALID]
    return [name for name in drop if name in inputs.data_vars]


def _export_dataset(
    post: xr.Dataset, inputs: xr.Dataset, exports: Sequence[str], params: FeatureParams
) -> xr.Dataset:
    """What the export step needs: the postprocessed layers plus the input layers of
    `_exported_features`, computed lazily: each writer reads them a strip at a time,
    so no full-scene float32 copy of them is ever made."""
    from darts.processing.features import feature_dataset

    wanted = _exported_features(exports)
    if not wanted:
        return post
    extra = feature_dataset(inputs, wanted, params, lazy=True)
    return post.assign({name: extra[name] for name in wanted})


def _metadata(
    item: Mapping[str, Any],
    request: InferenceRequest,
    models: Sequence[LoadedModel],
    params: FeatureParams,
    result: SceneResult,
    runtime: Runtime,
    provenance: Provenance,
) -> dict[str, Any]:
    return {
        "scene_id": item["id"],
        "scene_datetime": (item.get("properties") or {}).get("datetime"),
        "tile_id": provenance.tile_id,
        "source": provenance.source,
        "source_item": provenance.source_href or provenance.scene_id,
        "parameters_sha256": provenance.parameters_sha256,
        "created": _now(),
        "darts_version": __version__,
        "software": _versions(),
        "preprocessing": {
            **asdict(params),
            "preprocessing_version": _preprocessing_version(params),
        },
        "patch": asdict(request.patch),
        "postprocess": asdict(request.post),
        "aux": _aux_parameters(request),
        "exports": sorted(set(request.recorded_exports)),
        "models": model_entries(models, runtime.paths),
        "patches": {"total": result.patches, "skipped": result.patches_skipped},
        "seconds": dict(result.seconds),
    }


def _preprocessing_version(params: FeatureParams) -> str:
    from darts.processing.terrain import preprocessing_version

    return preprocessing_version(params.terrain_convention)


def _versions() -> dict[str, str]:
    import rasterio
    import segmentation_models_pytorch
    import torch

    return {
        "darts": __version__,
        "numpy": np.__version__,
        "xarray": xr.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "torch": torch.__version__,
        "segmentation_models_pytorch": segmentation_models_pytorch.__version__,
    }


def _object_count(polygon_files: Sequence[Path]) -> int | None:
    """How many objects the polygon layer holds (None when it was not exported)."""
    if not polygon_files:
        return None
    import pyogrio

    return int(pyogrio.read_info(polygon_files[0])["features"])


def model_labels(models: Sequence[LoadedModel]) -> list[str]:
    """A short, file-name-safe label per model: its checkpoint's file name without the
    suffix (``probabilities-<label>.tif``), numbered when two share one."""
    labels: list[str] = []
    for model in models:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model.spec.path).stem).strip("._") or "model"
        label, number = stem, 2
        while label in labels:
            label, number = f"{stem}-{number}", number + 1
        labels.append(label)
    return labels


def _union_bands(models: Sequence[LoadedModel]) -> list[str]:
    bands: list[str] = []
    for model in models:
        bands += [b for b in model.spec.bands if b not in bands]
    return bands


# Allocations at least this big get their own memory mapping (glibc malloc).
_MMAP_THRESHOLD = 16 << 20


def bound_heap() -> None:
    """Keep freed scene-sized arrays from lingering in the process (glibc only).

    glibc's malloc raises its mmap threshold as large blocks are freed (up to 32 MB),
    after which blocks of up to that size come from the heap, and the heap of a run
    that allocates and frees many tiles and patches ends up holding freed memory it
    cannot return: ~0.6 GB more resident memory at the segment step of a 10980² scene.
    A fixed threshold keeps every block above it in its own mapping, returned on
    free; per-patch temporaries (a few MB) still reuse heap memory."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(-3, _MMAP_THRESHOLD)  # M_MMAP_THRESHOLD


def release_free_memory() -> None:
    """Hand the heap's free pages back to the system (glibc only; cheap)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def _libc() -> Any:
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def new_run_dir(output_dir: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_dir = output_dir / "runs" / f"{stamp}-{os.getpid()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def write_results(report: RunReport) -> None:
    rows = [asdict(r) for r in report.results]
    write_json(report.run_dir / "results.json", {"results": rows, "counts": report.counts()})
    # One column per step, in the order the steps first ran, so the table reads the same
    # whichever scene failed early.
    steps = list(dict.fromkeys(step for r in report.results for step in r.seconds))
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(
        ["scene_id", "status", "error", "note", "output_dir", "patches", "patches_skipped",
         "seconds_total", *(f"seconds_{step}" for step in steps)]
    )  # fmt: skip
    for r in report.results:
        writer.writerow(
            [r.scene_id, r.status, (r.error or "").replace("\n", " "), r.note or "",
             r.output_dir, r.patches, r.patches_skipped, f"{sum(r.seconds.values()):.1f}",
             *(f"{r.seconds[step]:.2f}" if step in r.seconds else "" for step in steps)]
        )  # fmt: skip
    _write_text(report.run_dir / "results.csv", table.getvalue())


def write_json(path: Path, document: Any) -> None:
    _write_text(path, json.dumps(document, indent=2, default=str) + "\n")


def _write_text(path: Path, text: str) -> None:
    from darts.store.atomic import atomic_write_text

    atomic_write_text(path, text)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
