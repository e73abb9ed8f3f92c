"""Tile-buffer folders: named after their owner, removed only when the owner is gone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from darts.store import scratch


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid  # reaped: no process has this id now (reuse is vanishingly rare)


def test_buffer_prefix_names_host_and_pid() -> None:
    prefix = scratch.buffer_prefix()
    assert prefix.startswith(".tile-") and prefix.endswith(f"-{os.getpid()}-")


def test_only_dead_writers_of_this_host_are_removed(tmp_path: Path) -> None:
    host = scratch.buffer_prefix().split("-")[1]
    dead = tmp_path / f".tile-{host}-{_dead_pid()}-abc"
    mine = tmp_path / f"{scratch.buffer_prefix()}def"
    parent = tmp_path / f".tile-{host}-{os.getppid()}-ghi"  # alive
    other_host = tmp_path / f".tile-elsewhere.example-{_dead_pid()}-jkl"
    unrelated = tmp_path / "keep-me"
    for folder in (dead, mine, parent, other_host, unrelated):
        folder.mkdir()
        (folder / "dem.npy").write_bytes(b"x")
    assert scratch.remove_stale_buffers(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (mine, parent, other_host, unrelated)
    )


def test_a_missing_scratch_folder_is_nothing_to_do(tmp_path: Path) -> None:
    assert scratch.remove_stale_buffers(tmp_path / "absent") == []
