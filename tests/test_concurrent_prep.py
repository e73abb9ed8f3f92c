"""Concurrent `prep-data` runs over overlapping scenes, against the sandbox: every run
succeeds, every object and tile is fetched once (no more requests than one run of all
their scenes makes), and the cubes end up as one run makes them. And on disk: nothing
but the data is visible beside the paths a user chose."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from darts.cli.main import main
from darts.net.guard import forbid_sockets
from darts.sandbox.layout import WorldLayout
from darts.sandbox.servers.faults import FaultConfig
from darts.sandbox.service import Sandbox
from darts.sources.arcticdem import arcticdem_spec
from darts.sources.tcvis import tcvis_period, tcvis_spec
from darts.store.datacube import Datacube
from darts.store.scenes import SceneStore

TIMEOUT_S = 600
# Slow answers, so the four runs want the same tiles and objects at the same time.
SLOW = FaultConfig(latency_ms=150)


def overlapping_runs(world: WorldLayout) -> list[list[dict]]:
    """Four scene sets over two neighbouring MGRS tiles: every run shares ArcticDEM
    tiles with every other, each TCVIS period and some scenes are wanted by two."""
    manifest = json.loads(world.manifest.read_text())
    by_tile: dict[str, list[dict]] = {}
    for scene in sorted(manifest["scenes"], key=lambda s: s["datetime"]):
        by_tile.setdefault(scene["tile"], []).append(scene)
    nb, pb = by_tile["08WNB"], by_tile["08WPB"]
    return [[nb[0], nb[3]], [nb[0], pb[0]], [nb[3], pb[1], nb[0]], [pb[1], nb[8], pb[0]]]


def prep_data(ids: Sequence[str], flags: Sequence[str], data_dir: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "darts.cli.main", "inference", "prep-data", "sentinel2"]
    env = {**os.environ, "DARTS_DATA_DIR": str(data_dir)}
    return subprocess.Popen(
        [*args, "--scene-ids", *ids, *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(processes: list[subprocess.Popen]) -> None:
    """Wait for all; each must succeed."""
    outputs = [process.communicate(timeout=TIMEOUT_S)[0] for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]


@contextmanager
def slow(sandbox: Sandbox, *names: str) -> Iterator[None]:
    for name in names:
        sandbox.set_faults(name, SLOW)
    try:
        yield
    finally:
        for name in names:
            sandbox.set_faults(name, FaultConfig())


def aux_fetches(sandbox: Sandbox) -> Counter:
    """Every request that fetches auxiliary data: the index zip, COG heads and bodies,
    STAC items of the tiles, Earth Engine pixel requests (an access token per process
    and the scene search are not data)."""
    requests = Counter()
    for name in ("pgc-data", "pgc-stac", "earthengine"):
        for r in sandbox.injector(name).requests():
            if name == "earthengine" and not r["path"].endswith(":computePixels"):
                continue
            requests[(name, r["method"], r["path"], r["range"])] += 1
    return requests


def cube_contents(data_dir: Path, years: set[int]) -> dict[str, dict[str, object]]:
    """Each cube's tile records (without their time) and pixels, by cube and tile."""
    auxiliary = data_dir / "auxiliary"
    cubes = [("arcticdem", Datacube.open(auxiliary / "arcticdem_10m.icechunk", arcticdem_spec(10)))]
    for period in sorted({tcvis_period(year) for year in years}):
        cube = Datacube.open(auxiliary / "tcvis.icechunk", tcvis_spec(), group=period)
        cubes.append((f"tcvis {period}", cube))
    contents: dict[str, dict[str, object]] = {}
    for name, cube in cubes:
        for tile, record in cube.records().items():
            pixels = cube.read(record.pixel_window)
            contents.setdefault(name, {})[tile] = (
                record.status,
                record.window,
                record.source,
                {v: pixels[v].values for v in pixels.data_vars},
            )
    return contents


def assert_same_contents(got: dict, expected: dict) -> None:
    assert {c: sorted(t) for c, t in got.items()} == {c: sorted(t) for c, t in expected.items()}
    for cube, tiles in expected.items():
        for tile, (status, window, source, pixels) in tiles.items():
            assert got[cube][tile][:3] == (status, window, source), (cube, tile)
            for variable, values in pixels.items():
                np.testing.assert_array_equal(got[cube][tile][3][variable], values)


@pytest.mark.slow
def test_four_concurrent_aux_runs_fetch_each_tile_once(
    sandbox: Sandbox, sandbox_world: WorldLayout, data_dir: Path, tmp_path: Path
) -> None:
    runs = overlapping_runs(sandbox_world)
    everything = {s["id"]: s for scenes in runs for s in scenes}
    years = {int(s["datetime"][:4]) for s in everything.values()}
    assert len(years) >= 3 and len(everything) < sum(len(r) for r in runs)

    # What fetching each byte once costs: one run over all the scenes.
    baseline = tmp_path / "baseline"
    sandbox.clear_requests()
    finish([prep_data(sorted(everything), ["--aux"], baseline)])
    once = aux_fetches(sandbox)
    assert once and _no_repeats_but_pixel_requests(once)

    sandbox.clear_requests()
    with slow(sandbox, "pgc-data", "pgc-stac", "earthengine"):
        finish([prep_data([s["id"] for s in scenes], ["--aux"], data_dir) for scenes in runs])
    assert aux_fetches(sandbox) == once  # 1.00×: nothing fetched twice

    assert_same_contents(cube_contents(data_dir, years), cube_contents(baseline, years))
    # Each tile was fetched by one of the runs; the others reused it.
    reports = [json.loads(p.read_text()) for p in (data_dir / "logs").glob("prep-data-*.json")]
    assert len(reports) == 4
    fetched = Counter(
        (o["cube"], tile) for r in reports for o in r["aux_outcomes"] for tile in o["fetched"]
    )
    assert max(fetched.values()) == 1
    reused = [t for r in reports for o in r["aux_outcomes"] for t in o["reused"]]
    assert reused, "the runs did overlap: some waited for another's tile"
    # No claim and no tile buffer is left in the cubes' hidden folders.
    hidden = sorted((data_dir / "auxiliary").glob(".*.darts"))
    assert len(hidden) == 2
    for folder in hidden:
        assert [p for p in (folder / "claims").rglob("*") if p.is_file()] == []
        assert list((folder / "scratch").iterdir()) == []


def _no_repeats_but_pixel_requests(requests: Counter) -> bool:
    # Earth Engine pixel requests share one path: one per TCVIS tile.
    return all(n == 1 for (server, *_), n in requests.items() if server != "earthengine")


@pytest.mark.slow
def test_four_concurrent_optical_runs_fetch_each_band_once(
    sandbox: Sandbox, sandbox_world: WorldLayout, data_dir: Path
) -> None:
    runs = overlapping_runs(sandbox_world)
    everything = sorted({s["id"] for scenes in runs for s in scenes})
    sandbox.clear_requests()
    with slow(sandbox, "s3"):
        finish([prep_data([s["id"] for s in scenes], ["--optical"], data_dir) for scenes in runs])
    gets = Counter(r["path"] for r in sandbox.injector("s3").requests() if r["method"] == "GET")
    assert gets and max(gets.values()) == 1, [p for p, n in gets.items() if n > 1]
    # Every scene was fetched by some run, completely.
    fetched_scenes = {scene for scene in everything if any(scene in path for path in gets)}
    assert fetched_scenes == set(everything)
    store = SceneStore(data_dir / "sentinel2" / "cdse")
    bands = {frozenset(store.stored_bands(scene)) for scene in everything}
    assert len(bands) == 1 and len(next(iter(bands))) >= 5
    assert all(store.verify(scene) == [] for scene in everything)
    reports = [json.loads(p.read_text()) for p in (data_dir / "logs").glob("prep-data-*.json")]
    downloads = Counter(
        o["scene_id"] for r in reports for o in r["outcomes"] if o["status"] == "downloaded"
    )
    assert sorted(downloads) == everything and max(downloads.values()) == 1


def test_nothing_but_the_data_is_visible_beside_the_users_paths(
    sandbox_world: WorldLayout, data_dir: Path, model_file: Path, tmp_path: Path, capsys
) -> None:
    scene = overlapping_runs(sandbox_world)[0][0]["id"]
    mine = tmp_path / "mine"
    paths = [
        "--raw-data-store", str(mine / "scenes"),
        "--arcticdem-dir", str(mine / "dem.icechunk"),
        "--tcvis-dir", str(mine / "tcvis.icechunk"),
    ]  # fmt: skip
    code = main(
        ["inference", "prep-data", "sentinel2", "--scene-ids", scene, "--optical", "--aux", *paths]
    )
    assert code == 0, capsys.readouterr()
    with forbid_sockets() as audit:
        code = main(
            [
                "inference", "sentinel2-sequential", "--scene-ids", scene, "--offline",
                "--model-files", str(model_file), "--patch-size", "256", "--overlap", "32",
                *paths, "--output-dir", str(mine / "out"),
            ]
        )  # fmt: skip
    assert audit.blocked == []
    assert code == 0, capsys.readouterr()

    def names(folder: Path, hidden: bool) -> list[str]:
        return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") == hidden)

    assert names(mine, hidden=False) == ["dem.icechunk", "out", "scenes", "tcvis.icechunk"]
    assert names(mine, hidden=True) == [".dem.icechunk.darts", ".tcvis.icechunk.darts"]
    assert names(mine / "scenes", hidden=False) == [f"{scene}.zarr"]
    assert names(mine / "scenes", hidden=True) == [".darts"]
    # No lock and no scratch folder anywhere but inside the hidden folders.
    outside = [
        p
        for p in mine.rglob("*")
        if not any(part.endswith(".darts") for part in p.relative_to(mine).parts)
    ]
    assert [p for p in outside if p.suffix == ".lock" or p.name.endswith(".scratch")] == []
    assert (mine / ".dem.icechunk.darts" / "arcticdem_index").is_dir()
    # The default data dir got the logs, and no index: it went beside its cube.
    assert names(data_dir, hidden=False) == ["logs"]
    assert not list(data_dir.rglob("arcticdem_index"))
