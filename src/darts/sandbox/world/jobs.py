"""The world build split into independent jobs that may run in worker processes.

Each job writes its own files and returns plain data; nothing depends on the order in
which jobs finish, so a parallel build writes the same bytes as a sequential one.
Workers keep the sampled ground of small windows between jobs (every acquisition of a
window sees the same ground); large windows are sampled block by block instead.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from darts.sandbox.layout import WorldLayout
from darts.sandbox.world import dem, mosaics, sentinel2, tcvis
from darts.sandbox.world.field import WorldField
from darts.sandbox.world.objects import FileWriter
from darts.sandbox.world.optical import GroundSource, blockwise_ground, whole_window_ground
from darts.sandbox.world.regions import Box
from darts.sandbox.world.spec import Acquisition, MosaicSpec, TileWindow

_LARGE_WINDOW_PX = 2400 * 2400


@dataclass(frozen=True)
class SceneJob:
    group: tuple[Acquisition, ...]


@dataclass(frozen=True)
class MosaicJob:
    spec: MosaicSpec


@dataclass(frozen=True)
class DemJob:
    tile: dem.DemTile
    area: Box


@dataclass(frozen=True)
class TcvisJob:
    area: Box
    tag: str


Job = SceneJob | MosaicJob | DemJob | TcvisJob


@dataclass(frozen=True)
class JobResult:
    job: Job
    value: object
    bytes_written: int
    files_written: int


class _Context:
    """Per-process state: the world field and cached ground per small window."""

    def __init__(self, world: WorldField, root: Path) -> None:
        self.world = world
        self.layout = WorldLayout(root)
        self._small = whole_window_ground(world)
        self._large = blockwise_ground(world)

    def ground(self, window: TileWindow) -> GroundSource:
        return self._large if window.width * window.height > _LARGE_WINDOW_PX else self._small


_CONTEXT: _Context | None = None


def _keep_freed_memory() -> None:
    """Let glibc reuse freed heap memory instead of returning it to the kernel.

    The fields allocate and free many arrays of tens of MB; by default each comes from
    a fresh mmap whose pages fault in again (~2 s/GB here), which costs ~17 % of a
    scene. Only done in the pool's own worker processes, never in the caller's.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: nothing to tune
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 31)


def exit_with(owner_pid: int, interval_s: float = 1.0) -> threading.Thread:
    """End this process soon after process ``owner_pid`` is gone.

    Pool workers are children of the forkserver, not of the build that owns them, and
    the forkserver outlives a build killed by a signal: without this, a killed
    ``darts sandbox build`` leaves its workers writing a world nobody waits for, on
    every core, for tens of minutes."""

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            try:
                os.kill(owner_pid, 0)
            except ProcessLookupError:
                os._exit(3)
            except PermissionError:
                pass  # alive, only not ours to signal

    thread = threading.Thread(target=watch, name="exit-with-owner", daemon=True)
    thread.start()
    return thread


def init_worker(
    world: WorldField, root: Path, pool_worker: bool = False, owner_pid: int | None = None
) -> None:
    global _CONTEXT
    if pool_worker:
        _keep_freed_memory()
    if owner_pid is not None:
        exit_with(owner_pid)
    _CONTEXT = _Context(world, root)


def run_job(job: Job) -> JobResult:
    ctx = _CONTEXT
    if ctx is None:
        raise RuntimeError("init_worker() was not called in this process")
    writer = FileWriter(ctx.layout.root)
    value: object
    if isinstance(job, SceneJob):
        window = job.group[0].window
        value = sentinel2.write_group(
            ctx.layout, writer, ctx.world, list(job.group), ctx.ground(window)
        )
    elif isinstance(job, MosaicJob):
        value = mosaics.write_mosaic(
            ctx.layout, writer, ctx.world, job.spec, ctx.ground(job.spec.window)
        )
    elif isinstance(job, DemJob):
        dem.write_tile(ctx.layout, writer, ctx.world, job.tile, job.area)
        value = job.tile
    else:
        value = tcvis.write_periods(ctx.layout, writer, ctx.world, job.area, job.tag)
    return JobResult(job, value, writer.total_bytes, writer.count)
