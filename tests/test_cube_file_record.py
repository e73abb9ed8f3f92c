"""Every file of a cube repository is recorded and checked (issue 15): a changed byte
anywhere in an Icechunk repository (snapshots, manifests, transaction logs, refs, chunks
of older snapshots) is found by `darts cache verify`.

The data is two scenes and their ArcticDEM and TCVIS tiles staged from the sandbox
(`tests.test_cache_cli`'s fixtures); every file of both repositories is damaged in
turn, the way disks do.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from darts.sandbox.layout import WorldLayout
from darts.store.datacube.file_record import read_record
from darts.store.sidecar import cube_sidecar
from tests import test_cache_cli
from tests.test_cache_cli import dem_cube, flip_byte, own_chunk, run, scene_ids

# The staged data directory of `tests.test_cache_cli` (staged once for this module).
staged_template = test_cache_cli.staged_template
staged = test_cache_cli.staged

REPOSITORIES = ("arcticdem_10m.icechunk", "tcvis.icechunk")


def repository(data_dir: Path, name: str) -> Path:
    return data_dir / "auxiliary" / name


def files_of(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def verify(capsys, *extra: str) -> tuple[int, str]:
    code, out, err = run(["cache", "verify", "--only", "cubes", *extra], capsys)
    return code, out + err


def tip_snapshot(root: Path) -> Path:
    ref = json.loads((root / "refs" / "branch.main" / "ref.json").read_text())
    return root / "snapshots" / ref["snapshot"]


def test_staging_records_every_file_of_each_repository(staged: Path, capsys) -> None:
    for name in REPOSITORIES:
        root = repository(staged, name)
        record = read_record(cube_sidecar(root).file_record)
        assert record.exists and not record.damaged_lines and record.torn_at is None
        on_disk = {p.relative_to(root).as_posix(): p.stat().st_size for p in files_of(root)}
        assert {path: e.size for path, e in record.entries.items()} == on_disk
        kinds = {path.split("/")[0] for path in on_disk}
        assert {"chunks", "manifests", "snapshots", "transactions", "refs"} <= kinds
    code, out = verify(capsys)
    assert code == 0, out
    assert "note:" not in out


@pytest.mark.parametrize("name", REPOSITORIES)
def test_a_changed_byte_in_any_file_of_a_repository_is_found(
    staged: Path, name: str, capsys
) -> None:
    root = repository(staged, name)
    files = files_of(root)
    assert len(files) > 20
    for victim in files:
        relative = victim.relative_to(root).as_posix()
        flip_byte(victim)
        code, out = verify(capsys)
        assert code == 1, f"{relative}: {out}"
        assert f"file {relative}: content differs from the record" in out, out
        flip_byte(victim)  # the same flip again restores the byte
    code, out = verify(capsys)
    assert code == 0, out


def test_a_vanished_cube_is_damage_not_an_empty_cube(staged: Path, capsys) -> None:
    """Without its file record, a damaged tip snapshot that hides the cube's records is
    still found: the history says which tile the tip must hold."""
    root = repository(staged, "arcticdem_10m.icechunk")
    cube_sidecar(root).file_record.unlink()
    tiles = len(dem_cube(staged).records())
    code, out = verify(capsys)
    assert code == 0, out
    assert "no file record" in out and "next tile commit records them" in out
    snapshot = tip_snapshot(root)
    original = snapshot.read_bytes()
    findings = 0
    # Every byte of the tip snapshot that changes what a read of it sees: some make
    # the cube or its records vanish, some make it unreadable.
    for position in range(0, len(original), max(1, len(original) // 60)):
        damaged = bytearray(original)
        damaged[position] ^= 0x5A
        snapshot.write_bytes(bytes(damaged))
        try:
            visible = len(dem_cube(staged).records())
        except Exception:
            visible = -1
        if visible == tiles:
            continue  # a byte no read depends on: only the file record sees it
        code, out = verify(capsys)
        assert code == 1, f"byte {position}: {out}"
        assert "ArcticDEM 10 m" in out
        findings += 1
    snapshot.write_bytes(original)
    assert findings >= 10
    code, out = verify(capsys)
    assert code == 0, out


def test_repair_says_how_to_mend_damaged_repository_files(staged: Path, capsys) -> None:
    root = repository(staged, "tcvis.icechunk")
    victim = next(p for p in files_of(root) if p.parent.name == "manifests")
    flip_byte(victim)
    code, out, err = run(["cache", "repair", "--offline"], capsys)
    assert code == 1
    (line,) = [line for line in out.splitlines() if f"cube repository {root}" in line]
    assert victim.name in line and f"move {root} aside" in line and "--aux" in line
    assert "Traceback" not in out + err


def test_a_torn_last_line_is_ignored_and_cut_off_by_the_next_commit(staged: Path, capsys) -> None:
    root = repository(staged, "arcticdem_10m.icechunk")
    path = cube_sidecar(root).file_record
    whole = path.read_bytes()
    # A kill -9 in the middle of an append: part of a line, no newline.
    path.write_bytes(whole + b'{"check": "0000')
    code, out = verify(capsys)
    assert code == 0, out
    cube = dem_cube(staged)
    cube.commit_change("test: one more commit", lambda group: group.attrs.update({"x": 1}))
    data = path.read_bytes()
    assert data.startswith(whole) and data.endswith(b"\n") and b'"0000' not in data
    record = read_record(path)
    assert not record.damaged_lines and record.torn_at is None
    assert {p.relative_to(root).as_posix() for p in files_of(root)} == set(record.entries)
    code, out = verify(capsys)
    assert code == 0, out
    # A damaged line inside the record is named as such.
    lines = data.splitlines(keepends=True)
    lines[3] = lines[3].replace(b'"size": ', b'"size": 1')
    path.write_bytes(b"".join(lines))
    code, out = verify(capsys)
    assert code == 1 and "line 4 of its file record" in out, out


def test_an_interrupted_commit_leaves_leftovers_not_damage(staged: Path, capsys) -> None:
    root = repository(staged, "arcticdem_10m.icechunk")
    path = cube_sidecar(root).file_record
    before = path.read_bytes()
    cube = dem_cube(staged)
    cube.commit_change("test: one more commit", lambda group: group.attrs.update({"x": 1}))
    path.write_bytes(before)  # as if the writer died between its commit and its record
    code, out = verify(capsys)
    assert code == 0, out
    assert "names a commit not yet recorded" in out and "leftover" in out
    assert "content differs" not in out


def test_pruning_a_tile_leaves_a_record_that_verifies(staged: Path, capsys) -> None:
    root = repository(staged, "arcticdem_10m.icechunk")
    path = cube_sidecar(root).file_record
    _key, tile, _ = own_chunk(dem_cube(staged))
    code, out, _ = run(["cache", "prune", "--tile-ids", tile], capsys)
    assert code == 0, out
    record = read_record(path)
    on_disk = {p.relative_to(root).as_posix() for p in files_of(root)}
    assert set(record.entries) == on_disk  # what the collection removed is gone from it
    code, out = verify(capsys)
    assert code == 0, out
    assert "note:" not in out
    # Still checked: a changed byte in the rewritten tip snapshot is found.
    snapshot = tip_snapshot(root)
    flip_byte(snapshot)
    code, out = verify(capsys)
    assert code == 1 and f"file snapshots/{snapshot.name}: content differs" in out, out


def test_an_imported_cube_has_a_record_that_verifies(
    staged: Path, sandbox_world: WorldLayout, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    first, _ = scene_ids(sandbox_world)
    folder = staged.parent / "carry"
    code, out, err = run(["cache", "export", "--scene-ids", first, "--to", str(folder)], capsys)
    assert code == 0, out + err
    other = staged.parent / "other-machine"
    monkeypatch.setenv("DARTS_DATA_DIR", str(other))
    code, out, err = run(["cache", "import", str(folder)], capsys)
    assert code == 0, out + err
    for name in REPOSITORIES:
        root = repository(other, name)
        record = read_record(cube_sidecar(root).file_record)
        on_disk = {p.relative_to(root).as_posix() for p in files_of(root)}
        assert record.exists and set(record.entries) == on_disk
    code, out = verify(capsys)
    assert code == 0, out
    assert "note:" not in out
    shutil.rmtree(other)
