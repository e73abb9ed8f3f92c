"""Freeing the disk space of removed tiles: Icechunk's own snapshot expiry and garbage
collection, never files deleted by hand.

Every tile write is a commit, and a removal (`tile_removal`) is one more: the removed
pixels stay reachable from older snapshots until those expire. Expiring every snapshot
older than now keeps the branch tip (and the repository's first snapshot) and drops
the history between; garbage collection then deletes the chunks, manifests and
snapshots nothing reaches any more.

A writer's chunks exist in storage before its commit references them, so collection
runs only while this process holds the repository's commit lock (`Datacube.exclusive`):
no darts writer is between writing and committing then. A reader still holding an old
snapshot may fail to read it afterwards; run this when no run reads the cube.

Expiry rewrites the kept snapshots in place and collection deletes files, so the cube's
file record (`file_record`) is rewritten afterwards, still under the lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from darts.store.datacube.file_record import rewrite_after_collection, stat_files

if TYPE_CHECKING:
    from darts.store.datacube.cube import Datacube


@dataclass(frozen=True)
class Reclaimed:
    snapshots_expired: int
    chunks_deleted: int
    bytes_deleted: int


def reclaim_space(cube: Datacube, *, forget_missing: bool = False) -> Reclaimed:
    """Expire the cube repository's history and collect what is unreachable.
    ``forget_missing``: see `file_record.rewrite_after_collection` (repairs only)."""
    with cube.exclusive() as repo:
        repository, record = Path(cube.location), cube.file_record
        before = stat_files(repository)
        now = datetime.now(UTC)
        expired = repo.expire_snapshots(older_than=now)
        summary = repo.garbage_collect(now)
        if record is not None:
            rewrite_after_collection(repository, record, before, forget_missing=forget_missing)
    return Reclaimed(len(expired), summary.chunks_deleted, summary.bytes_deleted)
