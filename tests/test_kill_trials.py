"""Kill -9 trials, the fast cases (the 30-trial figure is `benchmarks/bench_kill_trials.py`):
a `prep-data --optical --aux` process killed while it fills a cube and while it stages
scene bands leaves nothing damaged; a plain re-run completes, fetches nothing that had
been committed, and together they hold exactly what one uninterrupted run holds."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from darts.sandbox.kill_trials import (
    CubeRef,
    StagingRun,
    Work,
    band_of_object,
    committed_work,
    kill_trial,
    phase_of,
    run_darts,
)
from darts.sandbox.layout import WorldLayout
from darts.sandbox.servers.faults import FaultConfig
from darts.sandbox.service import Sandbox
from darts.sources.arcticdem import arcticdem_spec
from darts.sources.tcvis import tcvis_period, tcvis_spec

SLOW = FaultConfig(latency_ms=150)


def staging_run(world: WorldLayout) -> StagingRun:
    """Two clear scenes of the main tile, optical and aux, ArcticDEM at 10 m."""
    manifest = json.loads(world.manifest.read_text())
    tile = manifest["main_tile"]
    scenes = sorted(
        (s for s in manifest["scenes"] if s["tile"] == tile and s["eo:cloud_cover"] <= 10),
        key=lambda s: s["id"],
    )[:2]
    periods = sorted({tcvis_period(int(s["datetime"][:4])) for s in scenes})
    cubes = (CubeRef("auxiliary/arcticdem_10m.icechunk", arcticdem_spec(10), "", "ArcticDEM"),)
    cubes += tuple(CubeRef("auxiliary/tcvis.icechunk", tcvis_spec(), p, "TCVIS") for p in periods)
    args = ("inference", "prep-data", "sentinel2", "--scene-ids", *[s["id"] for s in scenes])
    return StagingRun((*args, "--optical", "--aux", "--arcticdem-resolution", "10"), cubes)


@pytest.fixture(scope="module")
def uninterrupted(
    sandbox: Sandbox, sandbox_world: WorldLayout, sandbox_config: Path, tmp_path_factory
) -> tuple[StagingRun, Path, Work]:
    run = staging_run(sandbox_world)
    reference = tmp_path_factory.mktemp("kill-reference") / "darts"
    done = run_darts(run.args, reference, sandbox_config, timeout_s=600)
    assert done.code == 0, done.output
    complete = committed_work(reference, run)
    assert len({scene for scene, _ in complete.bands}) == 2
    assert all(complete.tiles_of(cube) for cube in run.cubes)
    return run, reference, complete


def _slowed(sandbox: Sandbox, name: str, trial: Callable[[], object]):
    sandbox.set_faults(name, SLOW)
    try:
        return trial()
    finally:
        sandbox.set_faults(name, FaultConfig())


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["ArcticDEM", "optical"])
def test_a_killed_prep_data_leaves_no_damage_and_its_rerun_completes_it(
    sandbox: Sandbox,
    sandbox_config: Path,
    uninterrupted: tuple[StagingRun, Path, Work],
    tmp_path: Path,
    phase: str,
) -> None:
    run, reference, complete = uninterrupted
    dem = run.cubes[0]
    data_dir = tmp_path / "darts"
    if phase == "ArcticDEM":
        # Killed once the first DEM tile is committed, before the last one is.
        server = "pgc-data"

        def kill_when(d: Path) -> bool:
            return bool(committed_work(d, run).tiles_of(dem))
    else:
        server = "s3"

        def kill_when(d: Path) -> bool:
            return bool(committed_work(d, run).bands)

    def trial_run():
        return kill_trial(
            sandbox,
            run,
            data_dir,
            sandbox_config,
            reference=reference,
            complete=complete,
            kill_when=kill_when,
        )

    trial = _slowed(sandbox, server, trial_run)
    assert trial.landed, "the run had ended before the kill"
    assert trial.phase == phase, (trial.phase, trial.done_at_kill)
    # Something was committed and something was not: the kill fell inside the work.
    assert trial.done_at_kill != complete and (trial.done_at_kill.tiles or trial.done_at_kill.bands)
    assert trial.problems() == []
    assert trial.ok
    # The resume fetched exactly what the killed run had not committed.
    assert trial.fetched.bands == complete.bands - trial.done_at_kill.bands
    assert trial.fetched.tiles == complete.tiles - trial.done_at_kill.tiles


def test_band_objects_name_their_scene_and_band() -> None:
    path = (
        "/eodata/Sentinel-2/MSI/L2A/2023/07/01/"
        "S2B_MSIL2A_20230701T194909_N0509_R085_T08WNB_20230701T220456.SAFE/GRANULE/"
        "L2A_T08WNB_A033000_20230701T195350/IMG_DATA/R10m/T08WNB_20230701T194909_B02_10m.jp2"
    )
    assert band_of_object(path) == (
        "S2B_MSIL2A_20230701T194909_N0509_R085_T08WNB_20230701T220456",
        "B02_10m",
    )
    assert band_of_object(path.replace("B02_10m.jp2", "MTD_TL.xml")) is None
    assert band_of_object("/eodata/other/file.jp2") is None


def test_phases_follow_the_order_prep_data_works_in() -> None:
    dem = CubeRef("dem", arcticdem_spec(10), "", "ArcticDEM")
    tcvis = CubeRef("tcvis", tcvis_spec(), "2000-2019", "TCVIS")
    run = StagingRun(("x",), (dem, tcvis))
    complete = Work(
        frozenset({("s", "B02_10m"), ("s", "B03_10m")}),
        frozenset({("dem", "", "a"), ("dem", "", "b"), ("tcvis", "2000-2019", "a")}),
    )
    dem_done = frozenset({("dem", "", "a"), ("dem", "", "b")})
    assert phase_of(Work(), complete, run) == "start"
    assert phase_of(Work(tiles=frozenset({("dem", "", "a")})), complete, run) == "ArcticDEM"
    assert phase_of(Work(tiles=dem_done), complete, run) == "TCVIS"
    all_tiles = complete.tiles
    assert phase_of(Work(frozenset({("s", "B02_10m")}), all_tiles), complete, run) == "optical"
    assert phase_of(complete, complete, run) == "finish"
