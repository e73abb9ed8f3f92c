"""Readiness and prep-data see damage (issue 15, item 3).

`readiness` checks every file a run needs for presence and size, and with ``--verify``
reads every byte (SHA-256 of scene files, CRC-32C of cube chunks); prep-data stages a
damaged or half-written scene or tile again instead of calling it cached. The data is
two scenes and their tiles staged from the sandbox (`tests.test_cache_cli`'s fixtures),
damaged here the way disks and killed processes do.
"""

from __future__ import annotations

import json
from pathlib import Path

import icechunk
import numpy as np
import zarr

from darts.net.guard import forbid_sockets, get_gate
from darts.sandbox.layout import WorldLayout
from darts.sandbox.service import Sandbox
from tests import test_cache_cli
from tests.test_cache_cli import (
    BANDS,
    band_file,
    chunk_file,
    dem_cube,
    flip_byte,
    own_chunk,
    run,
    s3_gets,
    scene_ids,
    store_of,
    truncate,
)

# The staged data directory of `tests.test_cache_cli` (staged once for this module).
staged_template = test_cache_cli.staged_template
staged = test_cache_cli.staged


def readiness(ids: list[str], capsys, *extra: str) -> tuple[int, str, str]:
    return run(["inference", "readiness", "sentinel2", "--scene-ids", *ids, *extra], capsys)


def prep_data(ids: list[str], capsys, *extra: str) -> tuple[int, str, str]:
    return run(["inference", "prep-data", "sentinel2", "--scene-ids", *ids, *extra], capsys)


def test_a_truncated_band_fails_readiness_and_prep_data_stages_it_again(
    staged: Path, sandbox: Sandbox, sandbox_world: WorldLayout, capsys
) -> None:
    first, second = scene_ids(sandbox_world)
    store = store_of(staged)
    original = store.open(first, BANDS, load=True)
    victim = band_file(store, first, "B03_10m")
    truncate(victim)
    code, out, _ = readiness([first, second], capsys)
    assert code == 1
    (line,) = [line for line in out.splitlines() if first in line and "damaged" in line]
    assert "'B03_10m'" in line and victim.name in line and "darts cache repair" in line
    assert "1 of 2 scene(s) ready" in out

    before = len(s3_gets(sandbox))
    code, out, _ = prep_data([first, second], capsys, "--optical")
    assert code == 0, out
    assert f"{first}: was damaged; staged again: B03_10m" in out
    fetched = s3_gets(sandbox)[before:]
    # Exactly the damaged band's object (and nothing of the healthy scene) was fetched.
    assert fetched and all("B03" in r["path"] and first.split("_")[2] in r["path"] for r in fetched)
    assert readiness([first, second], capsys)[0] == 0
    assert store.open(first, BANDS, load=True).equals(original)


def test_a_half_written_commit_record_is_not_cached_the_scene_is_staged_whole(
    staged: Path, sandbox_world: WorldLayout, capsys
) -> None:
    first, _ = scene_ids(sandbox_world)
    store = store_of(staged)
    original = store.open(first, BANDS, load=True)
    truncate(store.scene_path(first) / "darts_scene.json")
    code, out, _err = readiness([first], capsys)
    assert code == 1 and "damaged" in out and "darts_scene.json" in out, (code, out, _err)
    code, out, _ = prep_data([first], capsys, "--optical", "--dry-run")
    assert code == 0 and "0 complete in the store, 1 to stage" in out
    code, out, _ = prep_data([first], capsys, "--optical")
    assert code == 0, out
    assert f"{first}: was damaged; staged again: {', '.join(sorted(BANDS))}" in out
    assert readiness([first], capsys)[0] == 0
    assert store.open(first, BANDS, load=True).equals(original)
    report = json.loads(sorted((staged / "logs").glob("prep-data-*.json"))[-1].read_text())
    (outcome,) = [o for o in report["outcomes"] if o["scene_id"] == first]
    assert outcome["status"] == "downloaded" and outcome["repaired"] == sorted(BANDS)


def test_a_flipped_byte_passes_the_quick_check_and_fails_verify(
    staged: Path, sandbox_world: WorldLayout, capsys
) -> None:
    """Same size, so only reading the bytes tells: ``--verify`` does."""
    first, _ = scene_ids(sandbox_world)
    store = store_of(staged)
    victim = band_file(store, first, "B04_10m")
    flip_byte(victim)
    assert readiness([first], capsys)[0] == 0
    code, out, _ = readiness([first], capsys, "--verify")
    assert code == 1
    (line,) = [line for line in out.splitlines() if "damaged" in line]
    assert first in line and "'B04_10m'" in line and "sha256" in line


def test_verify_reads_the_cube_chunks_of_the_tiles_a_scene_needs(
    staged: Path, sandbox_world: WorldLayout, capsys
) -> None:
    first, second = scene_ids(sandbox_world)
    cube = dem_cube(staged)
    key, tile, _ = own_chunk(cube, "dem")
    flip_byte(chunk_file(staged / "auxiliary" / "arcticdem_10m.icechunk", key))
    assert readiness([first, second], capsys)[0] == 0  # records are all there
    code, out, _ = readiness([first, second], capsys, "--verify")
    assert code == 1
    lines = [line for line in out.splitlines() if key in line]
    assert lines and all(tile in line and "CRC-32C" in line for line in lines)
    assert all("darts cache repair" in line for line in lines)


def test_a_damaged_tile_record_is_not_staged_and_prep_data_fetches_the_tile_again(
    staged: Path, sandbox_world: WorldLayout, capsys
) -> None:
    first, second = scene_ids(sandbox_world)
    cube = dem_cube(staged)
    _key, tile, _ = own_chunk(cube)
    window = cube.records()[tile].pixel_window
    pixels = cube.read(window)
    repo = icechunk.Repository.open(
        icechunk.local_filesystem_storage(str(staged / "auxiliary" / "arcticdem_10m.icechunk"))
    )
    session = repo.writable_session("main")
    node = zarr.open_group(session.store, path=f"_tiles/{tile}", mode="r+")
    node.attrs.put({"darts_tile": {"tile_id": tile, "status": "half"}})
    session.commit("a half-written record")
    code, out, _ = readiness([first, second], capsys)
    assert code == 1 and tile in out and "not staged" in out
    code, out, _ = prep_data([first, second], capsys, "--aux")
    assert code == 0, out
    cube = dem_cube(staged)
    assert cube.records()[tile].status == "filled"
    assert np.array_equal(cube.read(window)["dem"].values, pixels["dem"].values, equal_nan=True)
    assert readiness([first, second], capsys)[0] == 0


def test_an_offline_run_over_a_damaged_record_refuses_before_any_work(
    staged: Path, sandbox_world: WorldLayout, model_file: Path, capsys
) -> None:
    """Offline nothing can be fetched again: the run lists the damage and changes
    nothing (the repair is for a machine with internet)."""
    first, second = scene_ids(sandbox_world)
    store = store_of(staged)
    record = store.scene_path(first) / "darts_scene.json"
    record.write_text("[1, 2, 3]\n")
    before = {p: p.read_bytes() for p in store.root.rglob("*") if p.is_file()}
    args = ["inference", "sentinel2-sequential", "--scene-ids", first, second, "--offline",
            "--model-files", str(model_file)]  # fmt: skip
    with forbid_sockets():
        code, _out, err = run(args, capsys)
    get_gate().set_offline(False)
    assert code != 0 and "Traceback" not in err and "internal error" not in err
    (line,) = [line for line in err.splitlines() if first in line and "damaged" in line]
    assert "darts_scene.json" in line and "not an object" in line and "darts cache repair" in line
    assert second not in err  # the healthy scene is ready
    assert not (staged / "out").exists() or not any((staged / "out").rglob("*.tif"))
    assert {p: p.read_bytes() for p in store.root.rglob("*") if p.is_file()} == before


def test_a_changed_letter_in_the_commit_record_is_found_by_its_own_checksum(
    staged: Path, sandbox_world: WorldLayout, capsys
) -> None:
    """Still valid JSON with every field in place: only the record's own SHA-256 tells."""
    first, _ = scene_ids(sandbox_world)
    record = store_of(staged).scene_path(first) / "darts_scene.json"
    text = record.read_text()
    at = text.index('"item"') + 200
    at += next(i for i, c in enumerate(text[at:]) if c.isalpha())
    changed = text[:at] + text[at].swapcase() + text[at + 1 :]
    json.loads(changed)  # still parses
    record.write_text(changed)
    code, out, _ = readiness([first], capsys)
    assert code == 1
    (line,) = [line for line in out.splitlines() if "damaged" in line]
    assert "darts_scene.json" in line and "own SHA-256" in line
    code, out, _ = run(["cache", "verify", "--only", "scenes"], capsys)
    assert code == 1 and "own SHA-256" in out


def test_cube_metadata_that_does_not_parse_is_one_line_not_an_internal_error(
    staged: Path, sandbox_world: WorldLayout, capsys
) -> None:
    """A damaged snapshot can leave the cube's group metadata unparseable: prep-data
    must say so in one line (and touch nothing), not fail with a traceback."""
    from zarr.buffer import default_buffer_prototype

    from darts.store.datacube.aio import run as run_async

    first, _ = scene_ids(sandbox_world)
    location = staged / "auxiliary" / "arcticdem_10m.icechunk"
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(location)))
    session = repo.writable_session("main")
    prototype = default_buffer_prototype()
    run_async(
        session.store.set(
            "zarr.json",
            prototype.buffer.from_bytes(
                b'{"zarr_format": 3, "node_type": "group", "attributes": [1]}'
            ),
        )
    )
    session.commit("damaged group metadata")
    code, out, err = prep_data([first], capsys, "--aux")
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("darts: error: "), err
    assert "metadata is damaged" in lines[0] and "darts cache verify" in lines[0]
