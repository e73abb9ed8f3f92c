"""`darts cache list|verify|repair|prune|export|import` against stores and cubes staged
from the sandbox.

Two scenes of the world's main tile are staged once per module (`prep-data --optical
--aux`, real S3/PGC/Earth Engine stand-ins); each test works on its own copy of that
data directory, damages it the way disks and killed processes do, and checks what the
commands find, fetch and leave behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import icechunk
import numpy as np
import pytest
import zarr
from zarr.core.buffer import default_buffer_prototype

from darts.cli.main import main
from darts.grid.cube import Window
from darts.net.guard import forbid_sockets, get_gate
from darts.sandbox.layout import WorldLayout
from darts.sandbox.service import Sandbox
from darts.settings.cache import parse_size
from darts.sources.arcticdem import arcticdem_spec
from darts.store.datacube import Datacube
from darts.store.datacube.aio import run as run_async
from darts.store.inventory import tree_bytes
from darts.store.record import read_record, write_record
from darts.store.scenes import SceneStore

BANDS = ["B02_10m", "B03_10m", "B04_10m", "B08_10m", "SCL_20m"]


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def scene_ids(world: WorldLayout) -> list[str]:
    manifest = json.loads(world.manifest.read_text())
    tile = manifest["main_tile"]
    ids = sorted(
        s["id"]
        for s in manifest["scenes"]
        if s["tile"] == tile and s["eo:cloud_cover"] <= 10 and s["eo:snow_cover"] <= 10
    )
    return ids[:2]


@pytest.fixture(scope="module")
def staged_template(
    sandbox: Sandbox, sandbox_world: WorldLayout, sandbox_config: Path, tmp_path_factory
) -> Iterator[Path]:
    """A data directory with two scenes and their ArcticDEM and TCVIS tiles staged."""
    root = tmp_path_factory.mktemp("cache-template") / "darts"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DARTS_CONFIG_FILE", str(sandbox_config))
        env.setenv("DARTS_DATA_DIR", str(root))
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "DARTS_OFFLINE"):
            env.delenv(var, raising=False)
        ids = scene_ids(sandbox_world)
        args = ["inference", "prep-data", "sentinel2", "--scene-ids", *ids, "--optical", "--aux"]
        assert main(args) == 0
    shutil.rmtree(root / "logs")
    yield root


@pytest.fixture
def staged(data_dir: Path, staged_template: Path) -> Path:
    """This test's own copy of the staged data directory (DARTS_DATA_DIR)."""
    shutil.copytree(staged_template, data_dir)
    return data_dir


def store_of(data_dir: Path) -> SceneStore:
    return SceneStore(data_dir / "sentinel2" / "cdse")


def dem_cube(data_dir: Path) -> Datacube:
    return Datacube.open(
        data_dir / "auxiliary" / "arcticdem_10m.icechunk", arcticdem_spec(10), create=False
    )


def own_chunk(cube: Datacube, variable: str = "dem") -> tuple[str, str, Window]:
    """A stored chunk of ``variable`` that lies in exactly one recorded tile: (key, tile,
    the chunk's window)."""
    records = cube.records()
    size = cube.spec.chunk
    store = cube.tip_store()
    for tile, record in sorted(records.items()):
        for i, j, cell in record.pixel_window.cells(size, size):
            owners = [
                t for t, r in records.items() if not r.pixel_window.intersection(cell).is_empty
            ]
            key = f"{variable}/c/{i}/{j}"
            if owners == [tile] and run_async(store.exists(key)):
                return key, tile, cell.intersection(cube.spec.grid.full)
    raise AssertionError("no chunk belongs to a single tile")


def chunk_file(repository: Path, key: str, group: str = "") -> Path:
    """The file under the Icechunk repository that holds the chunk ``key``."""
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(repository)))
    store = repo.readonly_session(branch="main").store
    full = f"{group}/{key}" if group else key
    data = run_async(store.get(full, prototype=default_buffer_prototype())).to_bytes()
    matches = [f for f in (repository / "chunks").iterdir() if data in f.read_bytes()]
    assert len(matches) == 1, matches
    return matches[0]


def band_file(store: SceneStore, scene_id: str, band: str) -> Path:
    files = sorted((store.scene_path(scene_id) / band / "c").rglob("*"))
    return next(f for f in files if f.is_file() and f.stat().st_size > 1000)


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x5A
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def s3_gets(sandbox: Sandbox) -> list[dict]:
    return [r for r in sandbox.injector("s3").requests() if r["method"] == "GET"]


# -- list ------------------------------------------------------------------------------


def test_list_shows_scenes_bands_cubes_and_totals(
    staged: Path, sandbox_world: WorldLayout, capsys
) -> None:
    ids = scene_ids(sandbox_world)
    code, out, _ = run(["cache", "list"], capsys)
    assert code == 0
    for scene_id in ids:
        assert scene_id in out
    assert ",".join(BANDS) in out
    assert "ArcticDEM 10 m" in out and "TCVIS " in out and "km²" in out
    assert "total: 2 scene(s)" in out

    code, out, _ = run(["cache", "list", "--json"], capsys)
    assert code == 0
    document = json.loads(out)
    (cdse,) = document["scene_stores"]
    assert cdse["source"] == "cdse"
    assert [s["scene_id"] for s in cdse["scenes"]] == ids
    store = store_of(staged)
    for scene in cdse["scenes"]:
        assert scene["bands"] == BANDS
        assert scene["bytes"] == tree_bytes(store.scene_path(scene["scene_id"]))
        record = read_record(store.scene_path(scene["scene_id"]))
        assert record is not None
        assert scene["staged_at"] == max(a.committed_at for a in record.arrays().values())
    dem = next(c for c in document["cubes"] if c["cube"] == "ArcticDEM 10 m")
    assert sorted(dem["filled"] + dem["empty"]) == sorted(dem_cube(staged).records())
    # A 10 m ArcticDEM tile is 100 km square (polar stereographic: a little less on
    # the ellipsoid at 69°N).
    assert 9_000 < dem["area_km2"] / dem["tiles"] < 10_500
    totals = document["totals"]
    assert totals["scenes"] == 2
    assert totals["tiles"] == sum(c["tiles"] for c in document["cubes"])
    assert totals["bytes"] == totals["scene_bytes"] + totals["cube_bytes"]
    assert totals["cube_bytes"] == tree_bytes(staged / "auxiliary" / "arcticdem_10m.icechunk") + (
        tree_bytes(staged / "auxiliary" / "tcvis.icechunk")
    )

    code, out, _ = run(["cache", "list", "--json", "--scene-ids", ids[0]], capsys)
    only = json.loads(out)
    assert [s["scene_id"] for s in only["scene_stores"][0]["scenes"]] == [ids[0]]
    assert only["cubes"] == []


# -- verify ----------------------------------------------------------------------------


def test_verify_passes_on_healthy_caches(staged: Path, capsys) -> None:
    code, out, _ = run(["cache", "verify"], capsys)
    assert code == 0, out
    assert "healthy" in out
    code, out, _ = run(["cache", "verify", "--json"], capsys)
    document = json.loads(out)
    assert document["ok"] and document["scenes_checked"] == 2 and document["tiles_checked"] > 4


def test_verify_lists_every_kind_of_damage_and_exits_1(
    staged: Path, sandbox_world: WorldLayout, capsys
) -> None:
    first, second = scene_ids(sandbox_world)
    store = store_of(staged)
    # A flipped byte keeps the file's size: only the SHA-256 can tell.
    flipped = band_file(store, first, "B03_10m")
    flip_byte(flipped)
    # A truncated band chunk, and the half-written commit record of the other scene.
    truncate(band_file(store, second, "B04_10m"))
    truncate(store.scene_path(second) / "darts_scene.json")
    # Leftovers of an interrupted write and of an interrupted removal.
    staging = store.scene_path(first) / ".staging" / "B05_20m.4242.abcd1234"
    staging.mkdir(parents=True)
    (staging / "zarr.json").write_text("{}")
    (store.root / f".{second}.zarr.4242.abcd1234.tmp").mkdir()
    # A chunk file deleted under the ArcticDEM cube.
    cube = dem_cube(staged)
    key, tile, _ = own_chunk(cube)
    chunk_file(staged / "auxiliary" / "arcticdem_10m.icechunk", key).unlink()
    code, out, err = run(["cache", "verify"], capsys)
    assert code == 1
    lines = out.splitlines()
    assert any(
        first in line and "B03_10m" in line and "sha256" in line and "c/" in line for line in lines
    ), out
    assert any(second in line and "darts_scene.json" in line for line in lines), out
    assert any(first in line and "leftover" in line and ".staging" in line for line in lines), out
    assert any("leftover" in line and ".4242.abcd1234.tmp" in line for line in lines), out
    assert any(
        "ArcticDEM 10 m" in line and tile in line and key in line and "not found" in line
        for line in lines
    ), out
    assert "darts cache repair" in err
    # Each problem on its own line, then the summary.
    assert lines[-1].startswith("checked 2 scene(s)")

    # A damaged scene is not carried to another machine.
    target = staged.parent / "carry.tar"
    code, _, err = run(["cache", "export", "--scene-ids", first, "--to", str(target)], capsys)
    assert code == 2 and "is damaged" in err and "darts cache repair" in err
    assert not target.exists() and not list(staged.parent.glob(".carry.tar.*"))

    # Restricted to the cubes, or to one scene, only that is reported.
    code, out, _ = run(["cache", "verify", "--only", "cubes"], capsys)
    assert code == 1 and first not in out and key in out
    code, out, _ = run(["cache", "verify", "--scene-ids", second], capsys)
    assert code == 1 and second in out and first not in out and key not in out


def test_a_write_in_progress_is_not_taken_for_damage(
    staged: Path, sandbox_world: WorldLayout, capsys
) -> None:
    first, _ = scene_ids(sandbox_world)
    store = store_of(staged)
    held, release = threading.Event(), threading.Event()

    def writer() -> None:  # another stager: holds the lock, a band half written
        with store.lock(first):
            staging = store.scene_path(first) / ".staging" / "B05_20m.4242.abcd1234"
            staging.mkdir(parents=True)
            held.set()
            release.wait(60)
            shutil.rmtree(staging.parent)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert held.wait(30)
        code, out, _ = run(["cache", "verify", "--only", "scenes"], capsys)
    finally:
        release.set()
        thread.join()
    assert code == 0, out
    assert store.stored_bands(first) == set(BANDS)


def test_verify_finds_a_truncated_cube_chunk(staged: Path, capsys) -> None:
    cube = dem_cube(staged)
    key, tile, _ = own_chunk(cube, "datamask")
    truncate(chunk_file(staged / "auxiliary" / "arcticdem_10m.icechunk", key))
    code, out, _ = run(["cache", "verify", "--tile-ids", tile], capsys)
    assert code == 1
    (line,) = [line for line in out.splitlines() if key in line]
    assert tile in line and "datamask" in line


def test_verify_finds_a_flipped_byte_in_a_cube_chunk_by_its_checksum(staged: Path, capsys) -> None:
    """The chunk keeps its size and may still decompress: only its CRC-32C tells."""
    cube = dem_cube(staged)
    key, tile, _ = own_chunk(cube, "dem")
    flip_byte(chunk_file(staged / "auxiliary" / "arcticdem_10m.icechunk", key))
    code, out, _ = run(["cache", "verify", "--tile-ids", tile], capsys)
    assert code == 1
    (line,) = [line for line in out.splitlines() if key in line]
    assert tile in line and "CRC-32C" in line


def test_a_damaged_tile_record_is_listed_and_dropped_by_repair(
    staged: Path, sandbox_world: WorldLayout, capsys
) -> None:
    cube = dem_cube(staged)
    _key, tile, _ = own_chunk(cube)
    repo = icechunk.Repository.open(
        icechunk.local_filesystem_storage(str(staged / "auxiliary" / "arcticdem_10m.icechunk"))
    )
    session = repo.writable_session("main")
    node = zarr.open_group(session.store, path=f"_tiles/{tile}", mode="r+")
    node.attrs.put({"darts_tile": {"tile_id": tile, "status": "half"}})
    session.commit("a damaged record")
    code, out, _ = run(["cache", "list"], capsys)
    assert code == 0 and f"damaged record(s) of tile(s) {tile}" in out
    code, out, _ = run(["cache", "verify", "--only", "cubes"], capsys)
    assert code == 1
    assert f"ArcticDEM 10 m: tile {tile}: the tile record" in out
    first, _ = scene_ids(sandbox_world)
    code, out, _ = run(["cache", "repair", "--offline", "--only", "cubes"], capsys)
    get_gate().set_offline(False)
    assert code == 1 and f"tile(s) {tile}" in out and first in out and "--aux" in out
    cube = dem_cube(staged)
    assert tile not in cube.records()
    code, out, _ = run(["cache", "verify"], capsys)
    assert code == 0, out


# -- repair ----------------------------------------------------------------------------


def test_repair_online_fetches_exactly_the_damaged_band_and_tile(
    staged: Path, sandbox: Sandbox, sandbox_world: WorldLayout, capsys
) -> None:
    first, second = scene_ids(sandbox_world)
    store = store_of(staged)
    original = store.open(first, BANDS, load=True)
    cube = dem_cube(staged)
    key, tile, _window = own_chunk(cube)
    before = cube.read(cube.records()[tile].pixel_window)
    other = next(t for t in sorted(cube.records()) if t != tile)
    other_before = cube.read(cube.records()[other].pixel_window)

    flip_byte(band_file(store, first, "B03_10m"))
    leftover = store.scene_path(second) / ".staging" / "B05_20m.4242.abcd1234"
    leftover.mkdir(parents=True)
    chunk_file(staged / "auxiliary" / "arcticdem_10m.icechunk", key).unlink()

    sandbox.clear_requests()
    code, out, err = run(["cache", "repair"], capsys)
    assert code == 0, out + err
    assert f"cdse scene {first}: band(s) B03_10m: fetched again: B03_10m" in out
    assert f"tile(s) {tile}" in out
    # One band file from S3; the one tile from PGC (its STAC item, and its COGs, which
    # GDAL may still hold in its cache from staging in this process), no other tile.
    gets = s3_gets(sandbox)
    assert len(gets) == 1 and "B03" in gets[0]["path"], gets
    pgc = [
        r["path"] for name in ("pgc-stac", "pgc-data") for r in sandbox.injector(name).requests()
    ]
    assert any(path.endswith(f"/items/{tile}_10m_v4.1") for path in pgc), pgc
    assert all(tile in path for path in pgc), pgc
    assert not sandbox.injector("earthengine").requests()
    assert not leftover.parent.exists()

    code, out, _ = run(["cache", "verify"], capsys)
    assert code == 0, out
    repaired = store.open(first, BANDS, load=True)
    for band in BANDS:
        assert np.array_equal(repaired[band].values, original[band].values)
    cube = dem_cube(staged)
    after = cube.read(cube.records()[tile].pixel_window)
    for name in ("dem", "datamask"):
        assert np.array_equal(after[name].values, before[name].values, equal_nan=True)
    other_after = cube.read(cube.records()[other].pixel_window)
    assert np.array_equal(other_after["dem"].values, other_before["dem"].values, equal_nan=True)


def test_repair_online_restages_a_scene_whose_record_is_half_written(
    staged: Path, sandbox: Sandbox, sandbox_world: WorldLayout, capsys
) -> None:
    first, _ = scene_ids(sandbox_world)
    store = store_of(staged)
    original = store.open(first, BANDS, load=True)
    truncate(store.scene_path(first) / "darts_scene.json")
    sandbox.clear_requests()
    code, out, err = run(["cache", "repair", "--only", "scenes"], capsys)
    assert code == 0, out + err
    assert "the whole scene" in out
    assert len(s3_gets(sandbox)) == len(BANDS)
    assert store.verify(first) == []
    again = store.open(first, BANDS, load=True)
    for band in BANDS:
        assert np.array_equal(again[band].values, original[band].values)


def test_repair_offline_opens_no_socket_and_names_what_to_stage(
    staged: Path, sandbox_world: WorldLayout, capsys
) -> None:
    first, _second = scene_ids(sandbox_world)
    store = store_of(staged)
    flip_byte(band_file(store, first, "B03_10m"))
    cube = dem_cube(staged)
    key, tile, _ = own_chunk(cube)
    chunk_file(staged / "auxiliary" / "arcticdem_10m.icechunk", key).unlink()
    try:
        with forbid_sockets() as audit:
            code, out, err = run(["cache", "repair", "--offline"], capsys)
    finally:
        get_gate().set_offline(False)
    assert audit.blocked == []
    assert code == 1
    assert (
        "darts inference prep-data sentinel2 --raw-data-source cdse --scene-ids "
        f"{first} --bands B03_10m --optical"
    ) in out
    aux = [line for line in out.splitlines() if line.strip().endswith("--aux")]
    assert len(aux) == 1 and first in aux[0], out
    assert "stage it again" in err
    # What was damaged is gone (never read as data again), the rest is healthy.
    assert store.stored_bands(first) == set(BANDS) - {"B03_10m"}
    assert tile not in dem_cube(staged).records()
    code, out, _ = run(["cache", "verify"], capsys)
    assert code == 0, out
    code, out, _ = run(["inference", "readiness", "sentinel2", "--scene-ids", first], capsys)
    assert code == 1 and "B03_10m" in out and tile in out


def test_repair_dry_run_changes_nothing(staged: Path, sandbox_world: WorldLayout, capsys) -> None:
    first, _ = scene_ids(sandbox_world)
    store = store_of(staged)
    flip_byte(band_file(store, first, "B03_10m"))
    code, out, _ = run(["cache", "repair", "--dry-run", "--offline"], capsys)
    get_gate().set_offline(False)
    assert code == 1 and "would be dropped" in out
    assert store.stored_bands(first) == set(BANDS)


# -- prune -----------------------------------------------------------------------------


def test_prune_by_ids_age_and_size_with_dry_run(
    staged: Path, sandbox_world: WorldLayout, capsys
) -> None:
    first, second = scene_ids(sandbox_world)
    store = store_of(staged)
    size_first = tree_bytes(store.scene_path(first))

    code, out, _ = run(["cache", "prune", "--scene-ids", first, "--dry-run"], capsys)
    assert code == 0
    assert f"would remove cdse scene {first} (named)" in out
    assert f"{size_first / 1e6:.1f} MB" in out
    assert store.scene_path(first).exists()

    # Age: make the first scene look staged long ago (its record says when).
    record = read_record(store.scene_path(first))
    assert record is not None
    long_ago = "2020-01-01T00:00:00Z"
    aged = replace(
        record,
        bands={n: replace(a, committed_at=long_ago) for n, a in record.bands.items()},
        coords={n: replace(a, committed_at=long_ago) for n, a in record.coords.items()},
    )
    write_record(store.scene_path(first), aged, fsync=False)
    code, out, _ = run(["cache", "prune", "--older-than", "30", "--dry-run"], capsys)
    assert code == 0 and first in out and second not in out

    # Size budget: just under the total, so the least recently staged one goes.
    total = size_first + tree_bytes(store.scene_path(second))
    code, out, _ = run(["cache", "prune", "--max-size", f"{total - 1}B", "--dry-run"], capsys)
    assert code == 0 and first in out and second not in out and "size budget" in out

    code, out, _ = run(["cache", "prune", "--older-than", "30"], capsys)
    assert code == 0, out
    assert f"removed cdse scene {first}" in out
    assert not store.scene_path(first).exists()
    assert store.verify(second) == []
    assert not [p for p in store.root.iterdir() if p.name.endswith(".tmp")]

    code, out, _ = run(["cache", "prune", "--scene-ids", second], capsys)
    assert code == 0 and not store.scene_path(second).exists()


def test_prune_refuses_unknown_ids_and_missing_criteria(staged: Path, capsys) -> None:
    code, _, err = run(["cache", "prune"], capsys)
    assert code == 2 and "say what to prune" in err
    code, _, err = run(["cache", "prune", "--scene-ids", "S2X_NOT_THERE"], capsys)
    assert code == 2 and "S2X_NOT_THERE" in err and "nothing was pruned" in err
    code, _, err = run(["cache", "prune", "--max-size", "lots"], capsys)
    assert code == 2 and "--max-size" in err and "Traceback" not in err
    assert len(store_of(staged).scenes()) == 2


def test_cube_prune_reclaims_space_and_other_tiles_still_read(staged: Path, capsys) -> None:
    repository = staged / "auxiliary" / "arcticdem_10m.icechunk"
    cube = dem_cube(staged)
    records = cube.records()
    _key, tile, _ = own_chunk(cube)
    kept = {t: cube.read(r.pixel_window) for t, r in records.items() if t != tile}

    before = tree_bytes(repository)
    code, out, _ = run(["cache", "prune", "--tile-ids", tile, "--dry-run"], capsys)
    assert code == 0 and f"would remove ArcticDEM 10 m tile {tile}" in out
    assert tree_bytes(repository) == before and tile in dem_cube(staged).records()

    code, out, _ = run(["cache", "prune", "--tile-ids", tile], capsys)
    assert code == 0, out
    after = tree_bytes(repository)
    # The tile's own chunks went, and the history that still held them was collected.
    assert after < before * 0.9, (before, after)
    cube = dem_cube(staged)
    assert tile not in cube.records()
    for other, values in kept.items():
        now = cube.read(records[other].pixel_window)
        for name in ("dem", "datamask"):
            assert np.array_equal(now[name].values, values[name].values, equal_nan=True)
    # The pruned tile's pixels read as fill values, and nothing is unaccounted for.
    gone = cube.read(records[tile].pixel_window)
    own = Window(*records[tile].window)
    shared = [r.pixel_window.intersection(own) for t, r in records.items() if t != tile]
    assert all(w.is_empty for w in shared)
    assert not np.isfinite(gone["dem"].values).any()
    code, out, _ = run(["cache", "verify"], capsys)
    assert code == 0, out


# -- export and import -----------------------------------------------------------------


def _fresh_dir(data_dir: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    target = data_dir.parent / name
    monkeypatch.setenv("DARTS_DATA_DIR", str(target))
    return target


def test_export_import_carries_a_ready_set_to_another_machine(
    staged: Path,
    sandbox_world: WorldLayout,
    model_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
) -> None:
    first, second = scene_ids(sandbox_world)
    archive = staged.parent / "carry.tar"
    code, out, err = run(["cache", "export", "--scene-ids", first, "--to", str(archive)], capsys)
    assert code == 0, out + err
    assert "exported 1 scene(s)" in out and archive.is_file()
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "darts-cache-manifest.json" in names
    assert not [n for n in names if second in n]
    original = store_of(staged).open(first, BANDS, load=True)
    cube = dem_cube(staged)

    other = _fresh_dir(staged, monkeypatch, "other-machine")
    code, out, err = run(["cache", "import", str(archive)], capsys)
    assert code == 0, out + err
    assert f"cdse scene {first}: imported" in out
    with forbid_sockets() as audit:
        code, out, _ = run(
            ["inference", "readiness", "sentinel2", "--scene-ids", first, "--offline"], capsys
        )
    get_gate().set_offline(False)
    assert audit.blocked == []
    assert code == 0, out
    assert "ready for an offline run" in out
    imported = SceneStore(other / "sentinel2" / "cdse").open(first, BANDS, load=True)
    for band in BANDS:
        assert np.array_equal(imported[band].values, original[band].values)
        assert imported[band].attrs == original[band].attrs
    moved = dem_cube(other)
    for tile, record in moved.records().items():
        assert record.source == cube.records()[tile].source
        here, there = moved.read(record.pixel_window), cube.read(record.pixel_window)
        assert np.array_equal(here["dem"].values, there["dem"].values, equal_nan=True)
    code, out, _ = run(["cache", "verify"], capsys)
    assert code == 0, out
    # The offline run itself finds everything it reads there.
    sequential = ["inference", "sentinel2-sequential", "--scene-ids", first, "--offline"]
    options = ["--model-files", str(model_file), "--patch-size", "256", "--overlap", "32"]
    with forbid_sockets() as audit:
        code, out, err = run([*sequential, *options, "--export", "probabilities"], capsys)
    get_gate().set_offline(False)
    assert audit.blocked == []
    assert code == 0, out + err
    assert "1 done" in out

    # Importing again keeps every healthy entry as it is.
    code, out, _ = run(["cache", "import", str(archive)], capsys)
    assert code == 0
    assert f"cdse scene {first}: kept" in out and "imported" not in out.replace("import from", "")


def test_import_refuses_a_tampered_archive_with_one_line(
    staged: Path, sandbox_world: WorldLayout, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    first, _ = scene_ids(sandbox_world)
    folder = staged.parent / "carry"
    code, out, err = run(["cache", "export", "--scene-ids", first, "--to", str(folder)], capsys)
    assert code == 0, out + err
    manifest = json.loads((folder / "darts-cache-manifest.json").read_text())
    victim = next(rel for rel in manifest["files"] if "/B04_10m/c/" in rel)
    flip_byte(folder / victim)
    other = _fresh_dir(staged, monkeypatch, "other-machine")
    code, out, err = run(["cache", "import", str(folder)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "is damaged" in err and victim in err
    assert "Traceback" not in err
    assert not (other / "sentinel2").exists() or not any((other / "sentinel2").rglob("*.zarr"))

    # A truncated tar archive: refused the same way.
    tar_path = staged.parent / "carry.tar"
    flip_byte(folder / victim)  # flipped back: a healthy export
    with tarfile.open(tar_path, "w") as tar:
        tar.add(folder, arcname=".")
    data = tar_path.read_bytes()
    tar_path.write_bytes(data[: len(data) // 3])
    code, _, err = run(["cache", "import", str(tar_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "Nothing was imported" in err


# -- options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("50GB", 50 * 10**9), ("800 MB", 800 * 10**6), ("2TiB", 2 * 2**40), ("1000", 1000)],
)
def test_sizes_are_parsed(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_cache_commands_are_listed_in_help(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["cache", "--help"])
    out = capsys.readouterr().out
    for command in ("list", "verify", "repair", "prune", "export", "import"):
        assert command in out
    assert os.environ.get("DARTS_OFFLINE") is None
