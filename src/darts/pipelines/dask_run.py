"""``sentinel2-dask``: the sequential pipeline's scenes, spread over a Dask cluster.

The client does what concerns the whole run, once, before any task is submitted:
models checked, scenes discovered, readiness proven (offline), finished scenes skipped
(`currency`, as the sequential run decides it), and, online, the auxiliary tiles the
scenes need planned. Then (`darts.pipelines.dask_tasks`) each scene's staging is a
task, the missing cube tiles are staged by tasks that take each tile once however many
scenes share it (the first scene to need a tile brings it), and each scene's step
(preprocess → export) is a task after those, so the network and decoding of
some scenes overlap the preprocessing and inference of others. Scene steps go first
when several tasks are ready, so finished scenes arrive steadily; with a GPU resource
declared on any worker, scene steps need one (``resources={"GPU": 1}``) and staging
runs anywhere.

The results table (the same files as the sequential run's: ``runs/<time>-<pid>/``) is
written by the client, after every scene that finishes, in the order they finish.
Which failures end the run is the sequential run's rule (`scene_failure`): a full disk
at once; refused credentials when no scene has got through, judged once every scene
has ended, since the scenes run side by side.
Ctrl-C cancels every task not yet finished, records those scenes as "cancelled" and
shuts down what the run started.
"""

from __future__ import annotations

import queue
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from darts.errors import ConfigError
from darts.net.errors import CredentialsError
from darts.net.http import HttpClient
from darts.pipelines import events
from darts.pipelines.aux_data import ARCTICDEM, TCVIS, AuxCubes, CubeKey
from darts.pipelines.aux_regions import regions_for_scenes
from darts.pipelines.dask_cluster import ClusterTarget, open_client
from darts.pipelines.dask_tasks import (
    ModelRef,
    SceneJob,
    aux_tiles_task,
    client_event,
    device_problem,
    scene_task,
    stage_task,
)
from darts.pipelines.events import EventSink
from darts.pipelines.runtime import Runtime
from darts.pipelines.sequential import (
    CURRENT,
    InferenceRequest,
    RunReport,
    SceneResult,
    currency,
    model_inputs,
    new_run_dir,
    run_identity_of,
    scene_items,
    write_json,
    write_results,
)
from darts.processing.export import scene_output_dir
from darts.processing.models import LoadedModel
from darts.store.disk import check_writable_dir

if TYPE_CHECKING:
    from distributed import Client, Future

GPU = "GPU"
# How often the client looks for finished scenes while it relays workers' progress.
_POLL_S = 0.2


def run_dask(
    request: InferenceRequest,
    runtime: Runtime,
    models: Sequence[LoadedModel],
    cluster: ClusterTarget,
    *,
    device: str = "auto",
    on_event: EventSink | None = None,
) -> RunReport:
    """Process every selected scene on ``cluster`` (a `ClusterChoice`, a scheduler
    address, a `distributed.Client` or a cluster object). ``models`` are the checked
    checkpoints (on any device: workers load their own copy on ``device``). Raises
    `DartsError` for problems of the whole run, as `run_sequential` does; per-scene
    failures land in the report."""
    emit = on_event or events.ignore
    bands, needs_dem, needs_tcvis = model_inputs(models)
    from darts.store.scenes import SceneStore

    # As the sequential run: only the results must be writable (the stores may be a
    # read-only copy), refused before any cluster starts.
    check_writable_dir(request.output_dir, "output folder", runtime.paths.set_by("output_dir"))
    root = runtime.paths.raw_data_store
    store = SceneStore(root, lock_wait_s=runtime.lock_wait_s) if root else None
    job = SceneJob(
        request=request,
        runtime=runtime,
        models=tuple(ModelRef(m.spec.path, m.spec.sha256) for m in models),
        device=device,
        bands=tuple(bands),
        needs_dem=needs_dem,
        needs_tcvis=needs_tcvis,
        topic=f"darts-run-{uuid.uuid4().hex}",
    )
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
        todo, notes = _unfinished(items, request, identity, report, emit)
        aux = _aux_tiles(todo, cubes, job) if job.stages_first else {}
    if todo:
        with open_client(cluster, emit) as client:
            _run_scenes(client, todo, job, notes, aux, report, emit)
    return report


def _unfinished(
    items: Sequence[dict[str, Any]],
    request: InferenceRequest,
    identity: Mapping[str, Any],
    report: RunReport,
    emit: EventSink,
) -> tuple[list[dict[str, Any]], dict[str, str | None]]:
    """The scenes to run, and why each is (re)done; those whose outputs are current
    are recorded as skipped here, as the sequential run skips them."""
    todo: list[dict[str, Any]] = []
    notes: dict[str, str | None] = {}
    for item in items:
        scene_id = str(item["id"])
        out_dir = scene_output_dir(request.output_dir, scene_id)
        note = currency(out_dir, identity, overwrite=request.overwrite)
        if note == CURRENT:
            emit(events.SceneStarted(scene_id))
            _finished(report, SceneResult(scene_id, "skipped", note=note, output_dir=str(out_dir)))
            emit(events.SceneFinished(report.results[-1]))
        else:
            todo.append(item)
            notes[scene_id] = note
    return todo, notes


def _aux_tiles(
    items: Sequence[dict[str, Any]], cubes: AuxCubes, job: SceneJob
) -> dict[str, list[tuple[CubeKey, str]]]:
    """Per scene id: the cube tiles its footprint needs that no cube holds yet (of the
    cubes its models read). Neighbouring scenes share tiles; each becomes one task."""
    if not items or not (job.needs_dem or job.needs_tcvis):
        return {}
    wanted = {ARCTICDEM: job.needs_dem, TCVIS: job.needs_tcvis}
    per_scene: dict[str, list[tuple[CubeKey, str]]] = {}
    for need in cubes.plan(regions_for_scenes(items), job.request.aux_buffer_m):
        missing = set(need.missing)
        if not (missing and wanted[need.key.dataset]):
            continue
        for scene_id, tiles in need.by_region.items():
            per_scene.setdefault(scene_id, []).extend(
                (need.key, tile) for tile in tiles if tile in missing
            )
    return per_scene


def _run_scenes(
    client: Client,
    items: Sequence[dict[str, Any]],
    job: SceneJob,
    notes: Mapping[str, str | None],
    aux: Mapping[str, Sequence[tuple[CubeKey, str]]],
    report: RunReport,
    emit: EventSink,
) -> None:
    resources = _scene_resources(client)
    _check_device(client, job.device, resources)
    relayed: queue.SimpleQueue[Any] = queue.SimpleQueue()
    # Dask calls the handler on the client's event-loop thread; the events reach the
    # caller's sink from this thread, like the sequential run's.
    client.subscribe_topic(job.topic, relayed.put)
    pending: dict[Future, dict[str, Any]] = {}  # scene step → its scene, until it ends
    submitted: list[Future] = []
    tiles: dict[tuple[CubeKey, str], Future] = {}
    # Credentials refused while no scene had got through: judged when every scene has
    # ended, since scenes run side by side (the sequential run judges in scene order).
    refused: list[CredentialsError] = []
    try:
        for item in items:
            scene_id = str(item["id"])
            staged = None
            if job.stages_first:
                staged = client.submit(
                    stage_task, item, job, key=f"stage-{scene_id}-{job.topic}", priority=0
                )
                submitted.append(staged)
            needs = list(aux.get(scene_id, ()))
            # The tiles no earlier scene asked for: one task per cube fills them.
            fresh: dict[CubeKey, list[str]] = {}
            for cube_key, tile in needs:
                if (cube_key, tile) not in tiles:
                    fresh.setdefault(cube_key, []).append(tile)
            for cube_key, new_tiles in fresh.items():
                name = f"aux-{cube_key.dataset}{cube_key.group}-{scene_id}-{job.topic}"
                filling = client.submit(aux_tiles_task, cube_key, new_tiles, job, key=name)
                tiles.update(dict.fromkeys(((cube_key, tile) for tile in new_tiles), filling))
                submitted.append(filling)
            waits = list({tiles[pair].key: tiles[pair] for pair in needs}.values())
            future = client.submit(
                scene_task, item, job, staged, waits, needs,
                key=f"scene-{scene_id}-{job.topic}", priority=1, resources=resources,
            )  # fmt: skip
            pending[future] = item
            submitted.append(future)
            emit(events.SceneStarted(scene_id))
        while pending:
            _relay(relayed, emit)
            for future in [f for f in pending if f.done()]:
                result, ending = _result_of(future, pending.pop(future), job)
                result.note = notes.get(result.scene_id)
                _finished(report, result)
                emit(events.SceneFinished(result))
                if isinstance(ending, CredentialsError):
                    refused.append(ending)
                elif ending is not None:
                    raise ending  # a full disk would fail every scene alike
        _relay(relayed, emit, wait=False)
        # As `scene_failure` rules: a refusal when no scene got through means the keys
        # are wrong or missing, which ends the run; once keys have worked, a refusal
        # concerns that scene's objects only (recorded above).
        if refused and not any(r.status == "done" for r in report.results):
            raise refused[0]
    except BaseException:
        # Ctrl-C (or a failure of the client itself): nothing unfinished goes on.
        client.cancel(submitted, force=True)
        ended = {result.scene_id for result in report.results}
        for scene_id in [str(item["id"]) for item in items if str(item["id"]) not in ended]:
            out_dir = scene_output_dir(job.request.output_dir, scene_id)
            note = notes.get(scene_id)
            report.results.append(
                SceneResult(scene_id, "cancelled", note=note, output_dir=str(out_dir))
            )
        write_results(report)
        raise
    finally:
        client.unsubscribe_topic(job.topic)


def _finished(report: RunReport, result: SceneResult) -> None:
    report.results.append(result)
    write_results(report)


def _relay(relayed: queue.SimpleQueue[Any], emit: EventSink, *, wait: bool = True) -> None:
    """Pass on the workers' progress: wait up to `_POLL_S` for the first message, then
    take what has arrived."""
    try:
        message = relayed.get(timeout=_POLL_S) if wait else relayed.get_nowait()
        while True:
            event = client_event(message)
            if event is not None:
                emit(event)
            message = relayed.get_nowait()
    except queue.Empty:
        return


def _result_of(
    future: Future, item: Mapping[str, Any], job: SceneJob
) -> tuple[SceneResult, Exception | None]:
    """The scene's result and the error that may end the run (`dask_tasks.SceneDone`);
    a task that did not return one (its workers kept dying, or the cluster lost it) is
    a failed scene too."""
    if future.status == "finished":
        done = future.result()
        return done.result, done.ending
    scene_id = str(item["id"])
    out_dir = scene_output_dir(job.request.output_dir, scene_id)
    error = future.exception() if future.status == "error" else None
    from distributed import KilledWorker

    if isinstance(error, KilledWorker):
        why = (
            "Dask gave up on the scene: every worker that ran it died (out of memory, or "
            "killed); see the workers' logs"
        )
    elif error is not None:
        why = f"{type(error).__name__}: {error}"
    else:
        why = f"the cluster lost the scene's task ({future.status})"
    return SceneResult(scene_id, "failed", error=why, output_dir=str(out_dir)), None


def _scene_resources(client: Client) -> dict[str, float] | None:
    """``{"GPU": 1}`` when any worker declares a GPU resource: scene tasks then run
    only there (one at a time per GPU), staging anywhere. None otherwise."""
    workers = client.scheduler_info()["workers"].values()
    if any(worker.get("resources", {}).get(GPU) for worker in workers):
        return {GPU: 1}
    return None


def _check_device(client: Client, device: str, resources: Mapping[str, float] | None) -> None:
    """Every worker that will run scenes can use ``device``, or the run stops here
    with one line per worker that cannot (before any scene is submitted)."""
    workers = client.scheduler_info()["workers"]
    chosen = [
        address
        for address, worker in workers.items()
        if resources is None or worker.get("resources", {}).get(GPU)
    ]
    problems = client.run(device_problem, device, workers=chosen)
    bad = {address: why for address, why in problems.items() if why}
    if bad:
        lines = "; ".join(f"worker {address}: {why}" for address, why in sorted(bad.items()))
        raise ConfigError(f"--device {device!r} is not usable on every worker: {lines}")
