"""Removing a scene from the store as a whole, under its lock.

The folder is first renamed to a hidden temp name in the store folder, one atomic step,
so that no reader or writer ever sees half a scene; then it is deleted. A process
killed between the two leaves only that temp-named folder, which no scene lookup sees
and `darts cache repair` (`remove_store_leftovers`) deletes. The lock file stays: a
process may be waiting on it, and deleting it would let two holders in.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from darts.store.atomic import fsync_dir, is_temp_name, temp_name
from darts.store.inventory import tree_bytes
from darts.store.scenes import SceneStore


def remove_scene(store: SceneStore, scene_id: str, *, timeout: float | None = None) -> int:
    """Delete the scene's folder (whatever it holds); returns the bytes freed, 0 if it
    was not there. Waits up to ``timeout`` seconds for the scene lock (None: forever);
    `StoreLockTimeout` when another process holds it longer."""
    scene_dir = store.scene_path(scene_id)
    with store.lock(scene_id, timeout):
        if not scene_dir.exists():
            return 0
        size = tree_bytes(scene_dir)
        aside = scene_dir.with_name(temp_name(scene_dir.name))
        os.rename(scene_dir, aside)
        if store.fsync:
            fsync_dir(store.root)
        _delete(aside)
        return size


def remove_store_leftovers(store: SceneStore) -> list[Path]:
    """Delete the temp-named entries an interrupted removal or write left in the store
    folder; returns what was deleted."""
    if not store.root.is_dir():
        return []
    removed = []
    for entry in sorted(store.root.iterdir()):
        if is_temp_name(entry.name):
            # Another process may be deleting it at the same moment: fine either way.
            _delete(entry, missing_ok=True)
            removed.append(entry)
    return removed


def _delete(path: Path, *, missing_ok: bool = False) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=missing_ok)
    else:
        path.unlink(missing_ok=True)
