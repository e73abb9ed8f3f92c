"""Datacube across processes and threads: concurrent writers of neighbouring and
disjoint tiles, concurrent creators, a writer killed in the middle of a commit, and
claims: overlapping fills fetch every tile once, a waiter reuses what another process
fetched, and a killed claimant's tile is taken over.

Children are started with multiprocessing's "spawn" (a fresh interpreter, as separate
`darts` runs would be) and released together by an Event, so their writes overlap.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.synchronize import Event
from pathlib import Path

import numpy as np
import pytest

from darts.grid.cube import CubeGrid, Window
from darts.store.claims import Claimant
from darts.store.datacube import Datacube
from darts.store.datacube.errors import CubeFillError, TileClaimTimeout
from darts.store.datacube.spec import (
    CubeCompression,
    CubeSpec,
    CubeVariable,
    TileFetch,
    tile_buffer,
)
from darts.store.datacube.testing import PatternTileSource

GRID = CubeGrid("EPSG:3413", -50_000.0, 60_000.0, 10.0, 1000, 1000)
SPEC = CubeSpec(
    kind="test-aux",
    grid=GRID,
    variables=(CubeVariable("dem", "float32", math.nan), CubeVariable("cls", "uint8", 0)),
    chunk=64,
)
# The same cube stored in shards of 64² with inner chunks of 16² (tiles of 100 share
# inner chunks too).
SHARDED_SPEC = dataclasses.replace(SPEC, compression=CubeCompression("lz4", 5, block=16))
SPECS = {"whole chunks": SPEC, "sharded": SHARDED_SPEC}
TILE = 100
CTX = multiprocessing.get_context("spawn")
TIMEOUT_S = 120


def _fill_child(location: str, tiles: list[str], delay_s: float, go: Event) -> None:
    _fill_child_with(location, tiles, delay_s, "whole chunks", go)


def _logged_fill_child(
    location: str, tiles: list[str], delay_s: float, fetch_log: str, go: Event
) -> None:
    cube = Datacube.open(location, SPEC)
    go.wait(TIMEOUT_S)
    cube.fill(tiles, PatternTileSource(SPEC, TILE, delay_s=delay_s, fetch_log=Path(fetch_log)))


def _slow_claimant_child(location: str, tile: str) -> None:
    # Claims the tile, makes its buffer, then sleeps in the fetch (killed there).
    Datacube.open(location, SPEC).fill([tile], PatternTileSource(SPEC, TILE, delay_s=600))


def _fill_child_with(
    location: str, tiles: list[str], delay_s: float, spec_name: str, go: Event
) -> None:
    spec = SPECS[spec_name]
    cube = Datacube.open(location, spec)
    go.wait(TIMEOUT_S)
    cube.fill(tiles, PatternTileSource(spec, TILE, delay_s=delay_s))


def _create_child(location: str, go: Event) -> None:
    go.wait(TIMEOUT_S)
    Datacube.open(location, SPEC)


def _killed_child(location: str, tile: str, flag: str) -> None:
    import darts.store.datacube.cube as datacube

    def stop_before_commit(tile_id: str) -> None:
        Path(flag).write_text(tile_id)
        time.sleep(600)  # the parent SIGKILLs us here, holding the lock

    datacube._before_commit = stop_before_commit
    Datacube.open(location, SPEC).fill([tile], PatternTileSource(SPEC, TILE))


def _run_together(targets: list[tuple[object, tuple[object, ...]]]) -> None:
    go = CTX.Event()
    procs = [CTX.Process(target=fn, args=(*args, go)) for fn, args in targets]  # type: ignore[arg-type]
    for proc in procs:
        proc.start()
    go.set()
    for proc in procs:
        proc.join(TIMEOUT_S)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join()
    assert [p.exitcode for p in procs] == [0] * len(procs)


def assert_tiles(cube: Datacube, tiles: list[str]) -> None:
    source = PatternTileSource(SPEC, TILE)
    records = cube.records()
    assert set(records) == set(tiles)
    window = Window(0, 400, 0, 400)
    ds = cube.read(window)
    for name in ("dem", "cls"):
        np.testing.assert_array_equal(ds[name].values, source.expected(name, window, tiles))


@pytest.mark.parametrize("spec_name", SPECS)
def test_two_processes_write_neighbours_sharing_chunks(tmp_path: Path, spec_name: str) -> None:
    location = str(tmp_path / "cube")
    Datacube.open(location, SPECS[spec_name])
    # 0_0 and 0_1 share chunk columns 64..128, 0_0 and 1_0 chunk rows 64..128.
    _run_together(
        [
            (_fill_child_with, (location, ["0_0", "1_1"], 0.0, spec_name)),
            (_fill_child_with, (location, ["0_1", "1_0"], 0.0, spec_name)),
        ]
    )
    assert_tiles(Datacube.open(location, SPECS[spec_name]), ["0_0", "0_1", "1_0", "1_1"])


@pytest.mark.slow
def test_four_processes_write_disjoint_tiles(tmp_path: Path) -> None:
    location = str(tmp_path / "cube")
    Datacube.open(location, SPEC)
    groups = [[f"{r}_{c}" for c in range(4)] for r in range(4)]  # one tile row each
    _run_together([(_fill_child, (location, tiles, 0.01)) for tiles in groups])
    cube = Datacube.open(location, SPEC)
    assert_tiles(cube, [t for tiles in groups for t in tiles])
    # Every tile is its own commit, none lost (pitfall 13): 1 create + 16 tiles + root.
    commits = list(cube._repo.ancestry(branch="main"))
    assert len(commits) == 18


@pytest.mark.slow
def test_four_processes_fill_overlapping_regions_once(tmp_path: Path) -> None:
    location = str(tmp_path / "cube")
    Datacube.open(location, SPEC)
    # 3×3 tile blocks at four offsets: every inner tile is wanted by all four writers.
    blocks = [
        [f"{r + dr}_{c + dc}" for r in range(3) for c in range(3)]
        for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1))
    ]
    fetch_log = tmp_path / "fetched.txt"
    _run_together(
        [(_logged_fill_child, (location, tiles, 0.2, str(fetch_log))) for tiles in blocks]
    )
    cube = Datacube.open(location, SPEC)
    everything = sorted({t for tiles in blocks for t in tiles})
    assert len(everything) == 16
    assert_tiles(cube, everything)
    messages = [c.message for c in cube._repo.ancestry(branch="main")]
    written = [m.split()[2] for m in messages if m.startswith("darts: tile ")]
    assert sorted(written) == everything, "every tile exactly once, none lost"
    # ...and fetched exactly once: the others waited for it and reused it.
    assert sorted(fetch_log.read_text().split()) == everything
    # Nothing is left in the hidden folder: claims released, buffers removed.
    assert list(cube.claims().root.iterdir()) == []
    assert list(cube.scratch_dir().iterdir()) == []


def test_a_waiter_reuses_the_tile_another_fill_is_fetching(tmp_path: Path) -> None:
    cube = Datacube.open(tmp_path / "cube", SPEC)
    first = PatternTileSource(SPEC, TILE, delay_s=1.0)
    second = PatternTileSource(SPEC, TILE)
    reused: list[str] = []
    results: dict[str, object] = {}

    def fill(name: str, source: PatternTileSource, tiles: list[str]) -> None:
        results[name] = cube.fill(tiles, source, on_reused=lambda t, _r: reused.append(t))

    fetching = threading.Thread(target=fill, args=("first", first, ["0_0"]))
    fetching.start()
    deadline = time.monotonic() + TIMEOUT_S
    while not cube.claims().path("0_0").exists():  # claimed: now fetching
        assert time.monotonic() < deadline
        time.sleep(0.01)
    fill("second", second, ["0_0", "0_1"])
    fetching.join(TIMEOUT_S)
    assert first.fetched == ["0_0"] and second.fetched == ["0_1"]
    assert reused == ["0_0"]
    assert [r.tile_id for r in results["second"]] == ["0_1"]  # type: ignore[attr-defined]
    assert_tiles(cube, ["0_0", "0_1"])


def test_a_tile_whose_claimant_failed_is_fetched_by_the_waiter(tmp_path: Path) -> None:
    cube = Datacube.open(tmp_path / "cube", SPEC)
    failing = PatternTileSource(SPEC, TILE, failing=frozenset({"0_0"}), delay_s=0.5)
    good = PatternTileSource(SPEC, TILE)
    errors: list[BaseException] = []

    def fail() -> None:
        try:
            cube.fill(["0_0"], failing)
        except CubeFillError as error:
            errors.append(error)

    thread = threading.Thread(target=fail)
    thread.start()
    deadline = time.monotonic() + TIMEOUT_S
    while not cube.claims().path("0_0").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    cube.fill(["0_0"], good)  # waits, finds the claim gone without a record, fetches
    thread.join(TIMEOUT_S)
    assert len(errors) == 1 and good.fetched == ["0_0"]
    assert_tiles(cube, ["0_0"])


def test_a_live_claimant_is_waited_for_then_a_killed_one_is_taken_over(
    tmp_path: Path,
) -> None:
    location = str(tmp_path / "cube")
    Datacube.open(location, SPEC)
    child = CTX.Process(target=_slow_claimant_child, args=(location, "0_1"))
    child.start()
    try:
        impatient = Datacube.open(location, SPEC, lock_timeout_s=1.0)
        deadline = time.monotonic() + TIMEOUT_S
        while not impatient.claims().path("0_1").exists():
            assert child.is_alive() and time.monotonic() < deadline
            time.sleep(0.02)
        # Alive and slow: a bounded wait, then an error naming the claimant.
        source = PatternTileSource(SPEC, TILE)
        with pytest.raises(CubeFillError) as caught:
            impatient.fill(["0_0", "0_1"], source)
        assert source.fetched == ["0_0"]
        failure = caught.value.failures["0_1"]
        assert isinstance(failure, TileClaimTimeout)
        assert f"process {child.pid} on " in str(failure) and "--lock-wait" in str(failure)
        assert [p.name.startswith(".tile-") for p in impatient.scratch_dir().iterdir()] == [True]
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.join(TIMEOUT_S)
    assert child.exitcode == -signal.SIGKILL
    # Opening for writing removes the killed fill's buffer; its claim is taken over at
    # once (same host: its process is gone), without waiting for any timeout.
    cube = Datacube.open(location, SPEC)
    assert list(cube.scratch_dir().iterdir()) == []
    assert list(cube.claims().root.iterdir()) == []  # the dead claimant's claim too
    source = PatternTileSource(SPEC, TILE)
    started = time.monotonic()
    cube.fill(["0_0", "0_1"], source)
    assert source.fetched == ["0_1"] and time.monotonic() - started < 30
    assert_tiles(cube, ["0_0", "0_1"])


def test_a_claim_left_by_a_killed_process_is_taken_over_by_a_fill(tmp_path: Path) -> None:
    # The claim alone, as a process killed between claiming and sweeping leaves it.
    cube = Datacube.open(tmp_path / "cube", SPEC)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = cube.claims().path("0_0")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dataclasses.replace(Claimant.me(), pid=dead.pid, start=None).to_json())
    source = PatternTileSource(SPEC, TILE)
    cube.fill(["0_0"], source)
    assert source.fetched == ["0_0"] and not path.exists()


def test_two_processes_create_one_cube(tmp_path: Path) -> None:
    location = str(tmp_path / "cube")
    _run_together([(_create_child, (location,)), (_create_child, (location,))])
    cube = Datacube.open(location, SPEC, create=False)
    messages = [c.message for c in cube._repo.ancestry(branch="main")]
    assert sum(m.startswith("darts: create") for m in messages) == 1


def test_threads_share_one_cube(tmp_path: Path) -> None:
    cube = Datacube.open(tmp_path / "cube", SPEC)
    source = PatternTileSource(SPEC, TILE)
    errors: list[BaseException] = []

    def write(tiles: list[str]) -> None:
        try:
            cube.fill(tiles, source)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=write, args=(t,)) for t in (["0_0", "1_1"], ["0_1", "1_0"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_S)
    assert errors == []
    assert_tiles(cube, ["0_0", "0_1", "1_0", "1_1"])


def test_a_writer_killed_before_its_commit_leaves_no_record(tmp_path: Path) -> None:
    location = str(tmp_path / "cube")
    cube = Datacube.open(location, SPEC)
    cube.fill(["0_0"], PatternTileSource(SPEC, TILE))
    flag = tmp_path / "at-commit"
    child = CTX.Process(target=_killed_child, args=(location, "0_1", str(flag)))
    child.start()
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not flag.exists():
            assert child.is_alive() and time.monotonic() < deadline
            time.sleep(0.02)
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.join(TIMEOUT_S)
    assert child.exitcode == -signal.SIGKILL
    # Its pixels were written into the repository but never committed: invisible.
    assert cube.missing(["0_0", "0_1"]) == ["0_1"]
    assert_tiles(cube, ["0_0"])
    # Its tile buffer could not be removed by it...
    assert [p.name.startswith(".tile-") for p in cube.scratch_dir().iterdir()] == [True]
    # ...the lock died with it; the tile is fetched and written again, and the re-run
    # removes the dead writer's buffer.
    source = PatternTileSource(SPEC, TILE)
    cube.fill(["0_0", "0_1"], source)
    assert source.fetched == ["0_1"]
    assert_tiles(Datacube.open(location, SPEC), ["0_0", "0_1"])
    assert list(cube.scratch_dir().iterdir()) == []


def test_a_rewritten_tile_replaces_its_record(tmp_path: Path) -> None:
    cube = Datacube.open(tmp_path / "cube", SPEC)
    window = PatternTileSource(SPEC, TILE).tile_window("0_0")
    with tile_buffer(SPEC, window, cube.scratch_dir()) as buffer:
        first = cube.write_tile("0_0", buffer, TileFetch("empty", {"n": 1}))
        second = cube.write_tile("0_0", buffer, TileFetch("empty", {"n": 2}))
    assert first != second
    assert cube.records() == {"0_0": second}
