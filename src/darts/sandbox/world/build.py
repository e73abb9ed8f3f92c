"""Build a named world once, atomically, under a file lock.

``build_world`` returns at once when ``world.json`` exists. Otherwise, holding
``<root>/<name>-seed<seed>.lock`` (so concurrent processes build a world once), it
builds into ``<root>/.<name>-seed<seed>.partial`` (left-overs of a crashed build are
removed first), writes ``world.json`` last and renames the folder into place.

Jobs (scenes, mosaics, DEM tiles, TCVIS periods) run in a small process pool; their
outputs depend only on the spec and seed, never on timing or job order.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from filelock import FileLock

from darts.sandbox.layout import WorldLayout
from darts.sandbox.world import dem, manifest, truth
from darts.sandbox.world.field import WorldField
from darts.sandbox.world.jobs import (
    DemJob,
    Job,
    JobResult,
    MosaicJob,
    SceneJob,
    TcvisJob,
    init_worker,
    run_job,
)
from darts.sandbox.world.objects import FileWriter
from darts.sandbox.world.optical import render_key
from darts.sandbox.world.regions import dem_2m_box, dem_box, make_field, tcvis_box
from darts.sandbox.world.spec import Acquisition, WorldSpec, world_spec

Progress = Callable[[str], None]


def _jobs(spec: WorldSpec) -> list[Job]:
    groups: dict[str, list[Acquisition]] = {}
    for acq in spec.acquisitions:
        groups.setdefault(render_key(acq), []).append(acq)
    scene_jobs = [SceneJob(tuple(g)) for g in groups.values()]
    area = dem_box(spec)
    dem_jobs: list[Job] = [DemJob(t, area) for res in (10, 32) for t in dem.tiles_for(area, res)]
    area_2m = dem_2m_box(spec)
    dem_jobs += [DemJob(t, area_2m) for t in dem.tiles_for(area_2m, 2)]
    west, south, _, _ = tcvis_box(spec)
    tag = f"{spec.name}_{south:.2f}N_{-west:.2f}W"  # the world is north and west
    tcvis_jobs: list[Job] = [TcvisJob(tcvis_box(spec), tag)]
    mosaic_jobs: list[Job] = [MosaicJob(m) for m in spec.mosaics]
    # Biggest first, so the pool does not end on one long job.
    big_scenes: list[Job] = [j for j in scene_jobs if len(j.group) == 1]
    shared_scenes: list[Job] = [j for j in scene_jobs if len(j.group) > 1]
    return big_scenes + dem_jobs + tcvis_jobs + shared_scenes + mosaic_jobs


def _run(
    jobs: list[Job], world: WorldField, root: Path, workers: int, progress: Progress | None
) -> list[JobResult]:
    if workers <= 1:
        init_worker(world, root)
        results = []
        for i, job in enumerate(jobs, start=1):
            results.append(run_job(job))
            if progress:
                progress(f"{i}/{len(jobs)} {type(job).__name__}")
        return results
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=init_worker,
        initargs=(world, root, True, os.getpid()),
    ) as pool:
        futures = [pool.submit(run_job, job) for job in jobs]
        results = []
        for i, future in enumerate(futures, start=1):
            results.append(future.result())
            if progress:
                progress(f"{i}/{len(jobs)} {type(jobs[i - 1]).__name__}")
    return results


def _workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def build_world(
    sandbox_root: Path,
    name: str = "small",
    seed: int = 0,
    progress: Progress | None = None,
) -> WorldLayout:
    """Build (or find) the world ``name`` for ``seed`` under ``sandbox_root``."""
    spec = world_spec(name, seed)  # validates the name before touching the disk
    sandbox_root = Path(sandbox_root)
    layout = WorldLayout.for_world(sandbox_root, name, seed)
    if layout.is_built():
        return layout
    sandbox_root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(sandbox_root / f"{name}-seed{seed}.lock")):
        if layout.is_built():
            return layout
        partial = WorldLayout(sandbox_root / f".{name}-seed{seed}.partial")
        if partial.root.exists():
            shutil.rmtree(partial.root)
        partial.root.mkdir(parents=True)
        build_spec_into(partial, spec, seed, progress)
        if layout.root.exists():  # a folder without world.json: an interrupted rename
            shutil.rmtree(layout.root)
        os.rename(partial.root, layout.root)
    return layout


def build_spec_into(
    layout: WorldLayout,
    spec: WorldSpec,
    seed: int,
    progress: Progress | None = None,
    workers: int | None = None,
) -> None:
    """Write the world described by ``spec`` into an empty folder (no lock, no rename).

    ``build_world`` is the public entry; this is for tests that build reduced specs.
    """
    if progress:
        progress(f"placing slumps for world {spec.name!r} (seed {seed})")
    world = make_field(spec, seed)
    results = _run(_jobs(spec), world, layout.root, workers or _workers(), progress)
    writer = FileWriter(layout.root)
    slump_count = truth.write_truth(layout, writer, world)
    dem.write_index(layout, writer, [r.value for r in results if isinstance(r.job, DemJob)])
    total = writer.total_bytes + sum(r.bytes_written for r in results)
    files = writer.count + sum(r.files_written for r in results)
    document = manifest.document(spec, seed, world, results, slump_count, total, files)
    FileWriter(layout.root).write_json(layout.manifest, document)
