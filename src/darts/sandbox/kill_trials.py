"""Kill trials: a staging run killed with SIGKILL at a chosen moment, then resumed.

The reliability suite (``tests/test_kill_trials.py``, ``benchmarks/bench_kill_trials.py``)
asks of every killed ``prep-data`` run: is anything it had committed damaged (``darts
cache verify`` finds no damaged scene, band, cube or tile), does a plain re-run complete,
is what the two wrote together identical to one uninterrupted run, is the cache clean
afterwards (no damage and no leftovers), and did the re-run fetch again anything that had
been committed before the kill? The last is read from the servers' own request logs for
scene bands (each S3 object names its scene and band) and from the re-run's report for
cube tiles (a cube tile is read from several COGs, so no request names one tile).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from darts.sandbox.fault_trials import cube_differences, scene_store_differences
from darts.sandbox.service import Sandbox

if TYPE_CHECKING:
    from darts.store.datacube.spec import CubeSpec

# The phases of a prep-data run in the order it works: aux cubes first, then scenes.
PHASES = ("start", "ArcticDEM", "TCVIS", "optical", "finish")
# `darts cache verify` reports a dead process's scratch as a leftover; that is what a
# kill leaves by design (the next writer removes it), not damage.
_LEFTOVER = "leftover"


@dataclass(frozen=True)
class CubeRef:
    """One cube (or one group of it) a staging run fills, relative to the data dir."""

    folder: str
    spec: CubeSpec
    group: str
    phase: str  # which of PHASES fills it

    @property
    def key(self) -> tuple[str, str]:
        return (self.folder, self.group)


@dataclass(frozen=True)
class StagingRun:
    """What every trial runs: ``darts`` arguments and the cubes they fill."""

    args: tuple[str, ...]
    cubes: tuple[CubeRef, ...]
    source: str = "cdse"

    def store_dir(self, data_dir: Path) -> Path:
        return data_dir / "sentinel2" / self.source


@dataclass(frozen=True)
class Work:
    """What a data dir holds committed: scene bands and cube tiles."""

    bands: frozenset[tuple[str, str]] = frozenset()  # (scene id, band key)
    tiles: frozenset[tuple[str, str, str]] = frozenset()  # (cube folder, group, tile)

    def tiles_of(self, cube: CubeRef) -> set[str]:
        return {tile for folder, group, tile in self.tiles if (folder, group) == cube.key}


def committed_work(data_dir: Path, run: StagingRun) -> Work:
    from darts.store.datacube import Datacube
    from darts.store.datacube.errors import CubeNotFoundError
    from darts.store.scenes import SceneStore

    bands: set[tuple[str, str]] = set()
    store_dir = run.store_dir(data_dir)
    if store_dir.is_dir():
        store = SceneStore(store_dir)
        for scene in store.scenes():
            bands |= {(scene, band) for band in store.stored_bands(scene)}
    tiles: set[tuple[str, str, str]] = set()
    for cube in run.cubes:
        try:
            opened = Datacube.open(
                data_dir / cube.folder, cube.spec, group=cube.group, create=False
            )
        except CubeNotFoundError:
            continue
        tiles |= {(cube.folder, cube.group, tile) for tile in opened.records()}
    return Work(frozenset(bands), frozenset(tiles))


def phase_of(done: Work, complete: Work, run: StagingRun) -> str:
    """The phase a run was in when it had committed ``done`` of ``complete``."""
    if not done.bands and not done.tiles:
        return PHASES[0]
    for phase in ("ArcticDEM", "TCVIS"):
        for cube in (c for c in run.cubes if c.phase == phase):
            if done.tiles_of(cube) != complete.tiles_of(cube):
                return phase
    return "optical" if done.bands != complete.bands else PHASES[-1]


# -- processes -------------------------------------------------------------------------------


def _env(data_dir: Path, config: Path) -> dict[str, str]:
    env = {**os.environ, "DARTS_DATA_DIR": str(data_dir), "DARTS_CONFIG_FILE": str(config)}
    for name in ("DARTS_OFFLINE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        env.pop(name, None)
    return env


def start_darts(args: Sequence[str], data_dir: Path, config: Path) -> subprocess.Popen[str]:
    """``darts args`` as its own process, as a user starts it (``python -m darts``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "darts", *args],
        env=_env(data_dir, config),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@dataclass
class Finished:
    code: int
    seconds: float
    output: str

    @property
    def tail(self) -> str:
        return "\n".join(self.output.strip().splitlines()[-6:])


def run_darts(args: Sequence[str], data_dir: Path, config: Path, timeout_s: float) -> Finished:
    started = time.perf_counter()
    process = start_darts(args, data_dir, config)
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        return Finished(-9, time.perf_counter() - started, output + "\n(timed out)")
    return Finished(process.returncode, time.perf_counter() - started, output)


def cache_problems(data_dir: Path, config: Path, *, leftovers: bool) -> list[str]:
    """What ``darts cache verify`` finds (every byte checked), one line each; leftovers
    of an interrupted write only when ``leftovers``."""
    done = run_darts(["cache", "verify", "--json"], data_dir, config, timeout_s=600)
    try:
        result = json.loads(done.output[done.output.index("{") :])
    except ValueError:
        return [f"darts cache verify: exit {done.code}, no JSON: {done.tail}"]
    problems = list(result["problems"])
    if not leftovers:
        problems = [p for p in problems if _LEFTOVER not in p]
    if done.code not in (0, 1) or (done.code == 1) != bool(result["problems"]):
        problems.append(f"darts cache verify: exit {done.code} with {result['problems']}")
    return problems


# -- what the re-run fetched again -------------------------------------------------------


def band_of_object(path: str) -> tuple[str, str] | None:
    """(scene id, band key) of a band file of a ``.SAFE`` product, else None: e.g.
    ``.../S2B_MSIL2A_..._T08WNB_2023....SAFE/GRANULE/.../T08WNB_..._B02_10m.jp2``."""
    parts = PurePosixPath(path).parts
    products = [p for p in parts if p.endswith(".SAFE")]
    if not products or not path.endswith(".jp2"):
        return None
    stem = PurePosixPath(path).stem
    return products[0].removesuffix(".SAFE"), "_".join(stem.split("_")[-2:])


def fetched_bands(sandbox: Sandbox) -> set[tuple[str, str]]:
    """(scene, band) of every band object fetched (GET) since the logs were cleared."""
    bands = set()
    for request in sandbox.injector("s3").requests():
        band = band_of_object(request["path"]) if request["method"] == "GET" else None
        if band is not None:
            bands.add(band)
    return bands


def fetched_tiles(report: dict, data_dir: Path, run: StagingRun) -> set[tuple[str, str, str]]:
    """(cube folder, group, tile) of every tile a prep-data report says it fetched."""
    where = {
        entry["cube"]: (Path(entry["location"]).absolute(), entry.get("group") or "")
        for entry in report.get("aux_plan", [])
    }
    by_place = {((data_dir / c.folder).absolute(), c.group): c for c in run.cubes}
    tiles = set()
    for outcome in report.get("aux_outcomes", []):
        place = where.get(outcome["cube"])
        cube = by_place.get(place) if place else None
        if cube is None:
            raise ValueError(f"{outcome['cube']} ({place}) is not a cube of this run")
        tiles |= {(cube.folder, cube.group, tile) for tile in outcome["fetched"]}
    return tiles


def newest_report(data_dir: Path) -> dict:
    reports = sorted((data_dir / "logs").glob("prep-data-*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(reports[-1].read_text()) if reports else {}


# -- one trial ----------------------------------------------------------------------------


@dataclass
class Trial:
    kill_after_s: float
    landed: bool = False  # the process was still running when killed
    phase: str = ""
    done_at_kill: Work = field(default_factory=Work)
    corrupt: list[str] = field(default_factory=list)  # damage found right after the kill
    resume: Finished | None = None
    differences: list[str] = field(default_factory=list)  # against the uninterrupted run
    unclean: list[str] = field(default_factory=list)  # damage or leftovers after the resume
    fetched: Work = field(default_factory=Work)  # what the resume fetched

    @property
    def ok(self) -> bool:
        return (
            self.landed
            and not self.corrupt
            and self.resume is not None
            and self.resume.code == 0
            and not self.differences
            and not self.unclean
            and not self.refetched
        )

    @property
    def refetched(self) -> list[str]:
        """Committed before the kill, fetched again by the resume."""
        bands = sorted(self.fetched.bands & self.done_at_kill.bands)
        tiles = sorted(self.fetched.tiles & self.done_at_kill.tiles)
        return [f"{scene} {band}: fetched again" for scene, band in bands] + [
            f"{folder}{f' {group}' if group else ''} tile {tile}: fetched again"
            for folder, group, tile in tiles
        ]

    def problems(self) -> list[str]:
        out = [] if self.landed else ["the run had ended before the kill"]
        out += [f"after the kill: {p}" for p in self.corrupt]
        if self.resume is not None and self.resume.code != 0:
            out.append(f"resume: exit {self.resume.code}: {self.resume.tail}")
        out += [f"differs: {p}" for p in self.differences]
        out += [f"after the resume: {p}" for p in self.unclean]
        return out + self.refetched


def differences(reference: Path, data_dir: Path, run: StagingRun) -> list[str]:
    """What ``data_dir`` holds that is not what the uninterrupted run wrote to ``reference``."""
    problems = scene_store_differences(run.store_dir(reference), run.store_dir(data_dir))
    for cube in run.cubes:
        problems += cube_differences(
            reference / cube.folder, data_dir / cube.folder, cube.spec, cube.group
        )
    return problems


def kill_trial(
    sandbox: Sandbox,
    run: StagingRun,
    data_dir: Path,
    config: Path,
    *,
    reference: Path,
    complete: Work,
    kill_after_s: float | None = None,
    kill_when: Callable[[Path], bool] | None = None,
    timeout_s: float = 600,
) -> Trial:
    """Start ``run`` into the empty ``data_dir``; kill it ``kill_after_s`` after its start
    (or as soon as ``kill_when(data_dir)`` is true); check, resume and compare."""
    trial = Trial(kill_after_s=kill_after_s or 0.0)
    started = time.perf_counter()
    process = start_darts(run.args, data_dir, config)
    deadline = started + timeout_s
    while time.perf_counter() < deadline and process.poll() is None:
        elapsed = time.perf_counter() - started
        if kill_after_s is not None and elapsed >= kill_after_s:
            break
        if kill_when is not None and kill_when(data_dir):
            break
        time.sleep(0.02)
    trial.kill_after_s = time.perf_counter() - started
    trial.landed = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.communicate()

    trial.done_at_kill = committed_work(data_dir, run)
    trial.phase = phase_of(trial.done_at_kill, complete, run)
    trial.corrupt = cache_problems(data_dir, config, leftovers=False)

    sandbox.clear_requests()
    trial.resume = run_darts(run.args, data_dir, config, timeout_s)
    if trial.resume.code != 0:
        return trial
    tiles = fetched_tiles(newest_report(data_dir), data_dir, run)
    trial.fetched = Work(frozenset(fetched_bands(sandbox)), frozenset(tiles))
    trial.differences = differences(reference, data_dir, run)
    trial.unclean = cache_problems(data_dir, config, leftovers=True)
    return trial
