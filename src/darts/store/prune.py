"""Pruning the caches: choosing what goes (by id, age or a size budget) and removing it.

Scenes go as a whole, under their lock (`scene_removal`). Cube tiles go through an
Icechunk commit (`datacube.tile_removal`), and the space comes back through Icechunk's
own expiry and garbage collection (`datacube.reclaim`), never by deleting files under a
live repository.

The criteria add up: a scene goes if it is named, or staged more than ``older_than``
days ago; then, while the scenes left are over the size budget, the least recently
staged go first. The budget applies to the scene stores (cube tiles are shared by many
scenes and small beside them); tiles go by id or age.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import zarr

from darts.store.datacube.aio import run
from darts.store.datacube.reclaim import Reclaimed, reclaim_space
from darts.store.datacube.tile_removal import Removal, remove_tiles
from darts.store.datacube.verify import scan_records
from darts.store.inventory import SceneEntry, tree_bytes

if TYPE_CHECKING:
    from pathlib import Path

    from darts.store.datacube.cube import Datacube
    from darts.store.datacube.records import TileRecord


@dataclass(frozen=True)
class PruneCriteria:
    scene_ids: tuple[str, ...] = ()
    tile_ids: tuple[str, ...] = ()
    older_than_days: float | None = None
    max_bytes: int | None = None  # the scene stores' budget
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def cutoff(self) -> datetime | None:
        if self.older_than_days is None:
            return None
        return self.now - timedelta(days=self.older_than_days)


@dataclass(frozen=True)
class ScenePick:
    entry: SceneEntry
    reason: str


@dataclass(frozen=True)
class TilePick:
    tile_id: str
    reason: str


def pick_scenes(entries: Sequence[SceneEntry], criteria: PruneCriteria) -> list[ScenePick]:
    """The scenes the criteria remove, with why, in the order they would go."""
    named = set(criteria.scene_ids)
    cutoff = criteria.cutoff
    picks: list[ScenePick] = []
    for entry in entries:
        staged = _when(entry.staged_at)
        if entry.scene_id in named:
            picks.append(ScenePick(entry, "named"))
        elif cutoff is not None and staged is not None and staged < cutoff:
            picks.append(ScenePick(entry, f"staged {_age(criteria.now, staged)} ago"))
    if criteria.max_bytes is not None:
        chosen = {id(p.entry) for p in picks}
        left = [e for e in entries if id(e) not in chosen]
        total = sum(e.bytes for e in left)
        # Least recently staged first; a scene without a record (never completely
        # staged, or damaged) counts as the oldest.
        for entry in sorted(left, key=lambda e: (e.staged_at or "", e.source, e.scene_id)):
            if total <= criteria.max_bytes:
                break
            picks.append(ScenePick(entry, "over the size budget (least recently staged)"))
            total -= entry.bytes
    return picks


def pick_tiles(records: dict[str, TileRecord], criteria: PruneCriteria) -> list[TilePick]:
    named = set(criteria.tile_ids)
    cutoff = criteria.cutoff
    picks = []
    for tile, record in sorted(records.items()):
        written = _when(record.written_at)
        if tile in named:
            picks.append(TilePick(tile, "named"))
        elif cutoff is not None and written is not None and written < cutoff:
            picks.append(TilePick(tile, f"written {_age(criteria.now, written)} ago"))
    return picks


def tile_bytes(cube: Datacube, tile_ids: Iterable[str]) -> int:
    """Bytes of the chunks that removing ``tile_ids`` deletes whole (those shared with
    a tile that stays are rewritten, not freed): what a dry run reports."""
    records = scan_records(cube).records
    going = {t for t in tile_ids if t in records}
    kept = [r.pixel_window for t, r in records.items() if t not in going and r.status == "filled"]
    store = cube.tip_store()
    group = zarr.open_group(store, path=cube.group, mode="r")
    arrays = [group[variable.name] for variable in cube.spec.variables]
    size = cube.spec.chunk
    shared = {(i, j) for window in kept for i, j, _cell in window.cells(size, size)}
    keys: set[str] = set()
    for tile in going:
        for i, j, _cell in records[tile].pixel_window.cells(size, size):
            if (i, j) in shared:
                continue
            for array in arrays:
                assert isinstance(array, zarr.Array)
                keys.add(f"{array.path}/" + array.metadata.encode_chunk_key((i, j)))
    return sum(run(_sizes(store, sorted(keys))))


async def _sizes(store: object, keys: list[str]) -> list[int]:
    sizes = []
    for key in keys:
        if await store.exists(key):  # type: ignore[attr-defined]
            sizes.append(await store.getsize(key))  # type: ignore[attr-defined]
    return sizes


@dataclass(frozen=True)
class CubePruned:
    removal: Removal
    reclaimed: Reclaimed
    bytes_before: int
    bytes_after: int

    @property
    def bytes_freed(self) -> int:
        return max(0, self.bytes_before - self.bytes_after)


def prune_tiles(cube: Datacube, tile_ids: Sequence[str], repository: Path) -> CubePruned:
    """Remove ``tile_ids`` in one commit, then reclaim their space; ``repository`` is
    the cube's local folder, measured before and after."""
    before = tree_bytes(repository)
    removal = remove_tiles(cube, tile_ids)
    reclaimed = reclaim_space(cube)
    return CubePruned(removal, reclaimed, before, tree_bytes(repository))


def _when(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _age(now: datetime, then: datetime) -> str:
    days = (now - then).total_seconds() / 86400
    return f"{days:.1f} days"
