"""What the Dask workers run: a scene's staging, then the scene itself.

Staging and the scene step are separate tasks, so the steps of different scenes
overlap across workers:

- `stage_task`: the network and the JPEG2000 decode of one scene's bands into the
  raw-data store; `aux_tiles_task`: ArcticDEM or TCVIS tiles into their cube, each
  tile once however many scenes need it. Online runs with a store only: offline everything is
  staged already, and without a store the bands exist only in the memory of the task
  that reads them. Any worker.
- `scene_task`: preprocess → segment → postprocess → export, the sequential
  pipeline's own step (`process_scene`), so its outputs are the sequential run's.
  Workers with a GPU resource only, when any worker declares one.

Tasks take only picklable values — the scene document and a `SceneJob` with the
`Runtime` — and build their clients from the runtime where they run, so an offline
run's workers build offline clients. The store's per-scene locks and the cubes'
commit locks are OS file locks: they hold across the workers' processes (and nodes, on
a shared file system). Each task catches its scene's errors and returns them, so one
failing scene never fails the run by itself; an error the sequential run may end on
(`sequential.scene_failure`: a full disk, refused credentials) comes back with it as
``ending``, for the client to judge as the sequential run does (`dask_run`). A task
whose worker dies is run again elsewhere by Dask, and since exports publish atomically
with the completion record written last, the scene's outputs (provenance included:
`process_scene` writes it) are those of one complete run.

Models are loaded once per worker process and kept (`models_for`), keyed by file,
checksum and device: a worker runs many scenes with the same ensemble.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from darts.errors import DartsError

if TYPE_CHECKING:
    from darts.pipelines.aux_data import CubeKey
    from darts.pipelines.events import Event
    from darts.pipelines.runtime import Runtime
    from darts.pipelines.sequential import InferenceRequest, SceneResult
    from darts.processing.models import LoadedModel


@dataclass(frozen=True)
class ModelRef:
    """A model by file and the SHA-256 the client read: a worker refuses a file that
    changed since, so every scene's record names the weights that made it."""

    path: Path
    sha256: str


@dataclass(frozen=True)
class SceneJob:
    """What every task of one run needs; small and picklable (sent with each task)."""

    request: InferenceRequest
    runtime: Runtime
    models: tuple[ModelRef, ...]
    device: str
    bands: tuple[str, ...]
    needs_dem: bool
    needs_tcvis: bool
    topic: str
    """The Dask event topic the tasks report progress on."""

    @property
    def stages_first(self) -> bool:
        """Whether a staging task precedes each scene: online, into a store."""
        return self.runtime.stages_scenes


@dataclass(frozen=True)
class Staged:
    """What `stage_task` did for one scene: its wall seconds and, if it failed, why
    (``ending``: the error itself, when it may end the run; see `judged`)."""

    scene_id: str
    seconds: float
    error: str | None = None
    ending: Exception | None = None


@dataclass
class SceneDone:
    """What `scene_task` returns: the scene's row of the results table and, when its
    error may end the run (`judged`), that error for the client to judge."""

    result: SceneResult
    ending: Exception | None = None


def judged(error: Exception, what: str) -> tuple[str, Exception | None]:
    """``error``'s line for the results table (`sequential.scene_failure`) and, when
    the sequential run would end on it, the error that would end it: a worker cannot
    know whether credentials have worked for another scene, so the client decides."""
    from darts.pipelines.sequential import scene_failure

    try:
        return scene_failure(error, what, keys_worked=False), None
    except Exception as ending:  # a full disk, or refused credentials
        return str(ending), ending


def stage_task(item: dict[str, Any], job: SceneJob) -> Staged:
    """Stage one scene's bands into the raw-data store; a failure comes back in
    `Staged`."""
    from darts.net.http import HttpClient
    from darts.pipelines.scene_sources import open_scene_source
    from darts.pipelines.staging import SceneStageError, stage_scene
    from darts.sources.scene_source import OPTICAL_KEYS
    from darts.store.scenes import SceneStore

    started = time.perf_counter()
    scene_id = str(item["id"])
    runtime = job.runtime
    error = ending = None
    try:
        with HttpClient(runtime.net) as http:
            source = open_scene_source(
                runtime, http, saved_scene_id_file=job.request.saved_scene_id_file
            )
            assert runtime.paths.raw_data_store is not None  # job.stages_first
            store = SceneStore(runtime.paths.raw_data_store, lock_wait_s=runtime.lock_wait_s)
            # The bands the scene step reads (`load_optical`): the quality band is added.
            staged = stage_scene(source, item, list(OPTICAL_KEYS), store)
            if not staged.ok:
                error = str(SceneStageError(staged))
    except Exception as failure:  # one scene's failure must not end the run
        error, ending = judged(failure, f"scene {scene_id}")
    return Staged(scene_id, round(time.perf_counter() - started, 3), error, ending)


@dataclass(frozen=True)
class TilesStaged:
    """What `aux_tiles_task` did for tiles of one cube: its wall seconds and, per tile
    that could not be staged, why."""

    key: CubeKey
    label: str
    seconds: float
    failed: Mapping[str, str] = field(default_factory=dict)
    ending: Exception | None = None


def aux_tiles_task(key: CubeKey, tile_ids: Sequence[str], job: SceneJob) -> TilesStaged:
    """Fill tiles of one auxiliary cube (the client gives each missing tile to one
    task: the first scene that needs it; the scenes after wait for that task). Fetches
    overlap within the task, as in prep-data; failures come back per tile."""
    from darts.net.http import HttpClient
    from darts.pipelines.aux_data import AuxCubes, CubeNeed

    started = time.perf_counter()
    tiles = list(tile_ids)
    label = key.label(job.request.arcticdem_resolution)
    ending = None
    try:
        with HttpClient(job.runtime.net) as http:
            cubes = AuxCubes(job.runtime, http, resolution_m=job.request.arcticdem_resolution)
            (outcome,) = cubes.stage([CubeNeed(key, label, tiles, tiles, {})])
            failed = dict(outcome.failed)
    except Exception as failure:  # these tiles' scenes fail, not the run
        why, ending = judged(failure, label)
        failed = dict.fromkeys(tiles, why)
    seconds = round(time.perf_counter() - started, 3)
    return TilesStaged(key, label, seconds, failed, ending)


def scene_task(
    item: dict[str, Any],
    job: SceneJob,
    staged: Staged | None,
    aux: Sequence[TilesStaged] = (),
    tiles: Sequence[tuple[CubeKey, str]] = (),
) -> SceneDone:
    """One scene from its staged inputs (``staged``: its bands; ``aux``: the tasks
    that staged ``tiles``, the cube tiles it needed that were missing) to its exported
    outputs, as the sequential pipeline processes it; the result says how it went."""
    from darts.net.http import HttpClient
    from darts.pipelines.aux_data import AuxCubes
    from darts.pipelines.scene_sources import open_scene_source
    from darts.pipelines.sequential import (
        SceneResult,
        bound_heap,
        process_scene,
        release_free_memory,
    )
    from darts.processing.export import scene_output_dir
    from darts.store.scenes import SceneStore

    scene_id = str(item["id"])
    out_dir = scene_output_dir(job.request.output_dir, scene_id)
    result = SceneResult(scene_id, "failed", output_dir=str(out_dir))
    emit = _Reporter(job.topic)
    emit.running(scene_id)
    if staged is not None:
        result.seconds["stage"] = staged.seconds
    errors = [staged.error] if staged is not None and staged.error else []
    endings = [staged.ending] if staged is not None and staged.ending else []
    needed = set(tiles)
    for done in aux:
        mine = [(tile, why) for tile, why in done.failed.items() if (done.key, tile) in needed]
        errors += [f"{done.label}: tile {tile} could not be staged: {why}" for tile, why in mine]
        if mine and done.ending is not None:
            endings.append(done.ending)
    if errors:
        result.error = "; ".join(errors)
        return SceneDone(result, endings[0] if endings else None)
    runtime = job.runtime
    ending = None
    bound_heap()
    try:
        models = models_for(job.models, job.device)
        root = runtime.paths.raw_data_store
        store = SceneStore(root, lock_wait_s=runtime.lock_wait_s) if root is not None else None
        with HttpClient(runtime.net) as http, _scene_lock(out_dir, runtime.lock_wait_s):
            source = open_scene_source(
                runtime, http, saved_scene_id_file=job.request.saved_scene_id_file
            )
            cubes = AuxCubes(runtime, http, resolution_m=job.request.arcticdem_resolution)
            process_scene(
                item, job.request, runtime, models, list(job.bands), store, source, cubes,
                job.needs_dem, job.needs_tcvis, out_dir, result, emit,
            )  # fmt: skip
        result.status = "done"
    except Exception as error:  # one scene's failure must not end the run
        result.error, ending = judged(error, f"scene {scene_id}")
    finally:
        release_free_memory()
    return SceneDone(result, ending)


def _scene_lock(out_dir: Path, wait_s: float) -> Any:
    """The scene's output folder has one writer: Dask may run a task again while a
    worker it gave up on (unreachable, not dead) still runs it, and two runs may share
    an output folder. A hidden lock file beside the folder, never inside it; waited
    for up to ``--lock-wait``, as the stores' locks are."""
    from darts.store.locks import hold_lock

    return hold_lock(out_dir.with_name(f".{out_dir.name}.lock"), wait_s, f"outputs {out_dir}")


# -- progress, sent to the client ----------------------------------------------------------


class _Reporter:
    """The scene step's event sink on a worker: events go to the client as Dask
    events on the run's topic (plain dicts: they cross the scheduler)."""

    def __init__(self, topic: str) -> None:
        from distributed import get_worker

        self.topic = topic
        self.worker = get_worker()

    def running(self, scene_id: str) -> None:
        self._send({"event": "running", "scene_id": scene_id, "pid": os.getpid()})

    def __call__(self, event: Event) -> None:
        from darts.pipelines.events import BatchDone

        if isinstance(event, BatchDone):
            self._send(
                {
                    "event": "batch",
                    "scene_id": event.scene_id,
                    "done": event.done,
                    "total": event.total,
                }
            )

    def _send(self, message: dict[str, Any]) -> None:
        self.worker.log_event(self.topic, {**message, "address": self.worker.address})


def client_event(message: Any) -> Event | None:
    """The pipeline event a worker's message stands for (the client's side of
    `_Reporter`); ``message`` is what Dask hands a topic's subscriber."""
    from darts.pipelines.events import BatchDone, SceneOnWorker

    _, body = message
    kind = body.get("event")
    if kind == "running":
        return SceneOnWorker(str(body["scene_id"]), str(body["address"]), int(body["pid"]))
    if kind == "batch":
        return BatchDone(str(body["scene_id"]), int(body["done"]), int(body["total"]))
    return None


# -- models, once per worker ---------------------------------------------------------------

_models: dict[tuple[str, str, str], LoadedModel] = {}
_models_lock = threading.Lock()
_loads = 0


def models_for(refs: Sequence[ModelRef], device: str) -> list[LoadedModel]:
    """The ensemble on this process's ``device``, loaded on first use and kept."""
    return [_model(ref, device) for ref in refs]


def _model(ref: ModelRef, device: str) -> LoadedModel:
    global _loads
    key = (str(ref.path), ref.sha256, device)
    with _models_lock:  # the worker's threads share one copy
        model = _models.get(key)
        if model is None:
            from darts.processing.devices import resolve_device
            from darts.processing.models import CheckpointError, load_model

            model = load_model(ref.path, resolve_device(device))
            if model.spec.sha256 != ref.sha256:
                raise CheckpointError(
                    f"model file {ref.path} changed since the run started (SHA-256 "
                    f"{model.spec.sha256[:12]}…, the run expects {ref.sha256[:12]}…); "
                    "keep the models unchanged while a run uses them"
                )
            _models[key] = model
            _loads += 1
        return model


def model_loads() -> int:
    """How many model files this process has loaded (each one once per device)."""
    return _loads


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot run models in this process (None: it can); run on each
    worker before any scene is submitted."""
    from darts.processing.devices import resolve_device

    try:
        resolve_device(device)
    except DartsError as error:
        return str(error)
    return None
