"""`darts cache prune`: what the criteria select across the stores and cubes, and removing it.

Named scenes or tiles that are nowhere in the caches are refused before anything is
removed (a typo must not pass for "nothing to do"). ``--dry-run`` lists every entry that
would go and the bytes that frees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from darts.errors import ConfigError
from darts.pipelines.cache.targets import CubeTarget, StoreTarget, cube_targets, scene_stores
from darts.pipelines.runtime import Runtime
from darts.settings.cache import CacheScope
from darts.settings.resolve import Resolved
from darts.store.datacube.cube import Datacube
from darts.store.datacube.verify import scan_records
from darts.store.errors import StoreLockTimeout
from darts.store.inventory import scene_entries
from darts.store.prune import (
    PruneCriteria,
    ScenePick,
    TilePick,
    pick_scenes,
    pick_tiles,
    prune_tiles,
    tile_bytes,
)
from darts.store.scene_removal import remove_scene

# A scene being written by another process is skipped after this long, not waited for.
LOCK_WAIT_S = 30.0


@dataclass
class CubePlan:
    target: CubeTarget
    cube: Datacube
    picks: list[TilePick]
    bytes_estimate: int


@dataclass
class PrunePlan:
    scenes: list[tuple[StoreTarget, ScenePick]] = field(default_factory=list)
    cubes: list[CubePlan] = field(default_factory=list)

    @property
    def scene_bytes(self) -> int:
        return sum(pick.entry.bytes for _, pick in self.scenes)

    @property
    def empty(self) -> bool:
        return not self.scenes and not any(plan.picks for plan in self.cubes)


@dataclass
class PruneOutcome:
    removed: list[str] = field(default_factory=list)  # one line per entry removed
    failed: list[str] = field(default_factory=list)
    bytes_freed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"removed": self.removed, "failed": self.failed, "bytes_freed": self.bytes_freed}


def plan_prune(
    settings: Resolved, runtime: Runtime, scope: CacheScope, criteria: PruneCriteria
) -> PrunePlan:
    if not (
        criteria.scene_ids
        or criteria.tile_ids
        or criteria.older_than_days is not None
        or criteria.max_bytes is not None
    ):
        raise ConfigError(
            "say what to prune: --scene-ids, --tile-ids, --older-than DAYS or --max-size SIZE"
        )
    plan = PrunePlan()
    found: set[str] = set()
    if scope.only != "cubes" and (
        criteria.scene_ids or criteria.older_than_days is not None or criteria.max_bytes is not None
    ):
        targets = scene_stores(settings, scope.sources)
        entries = [(t, e) for t in targets for e in scene_entries(t.store, t.source)]
        by_entry = {id(e): t for t, e in entries}
        found = {e.scene_id for _, e in entries}
        picks = pick_scenes([e for _, e in entries], criteria)
        plan.scenes = [(by_entry[id(p.entry)], p) for p in picks]
    unknown = [f"scene {s}" for s in criteria.scene_ids if s not in found]
    held: set[str] = set()
    if scope.only != "scenes" and (criteria.tile_ids or criteria.older_than_days is not None):
        for target in cube_targets(settings):
            cube = target.open(runtime)
            if cube is None:
                continue
            records = scan_records(cube).records
            held |= set(records)
            picks = pick_tiles(records, criteria)
            if picks:
                estimate = tile_bytes(cube, [p.tile_id for p in picks])
                plan.cubes.append(CubePlan(target, cube, picks, estimate))
    unknown += [f"tile {t}" for t in criteria.tile_ids if t not in held]
    if unknown:
        raise ConfigError(
            f"{', '.join(unknown)}: not in the caches looked at (see `darts cache list`); "
            "nothing was pruned"
        )
    return plan


def execute_prune(plan: PrunePlan) -> PruneOutcome:
    outcome = PruneOutcome()
    for target, pick in plan.scenes:
        entry = pick.entry
        try:
            freed = remove_scene(target.store, entry.scene_id, timeout=LOCK_WAIT_S)
        except StoreLockTimeout:
            outcome.failed.append(
                f"{target.source} scene {entry.scene_id}: another process is writing it; "
                "kept (run prune again later)"
            )
            continue
        outcome.removed.append(f"{target.source} scene {entry.scene_id} ({pick.reason})")
        outcome.bytes_freed += freed
    for cube_plan in plan.cubes:
        tiles = [pick.tile_id for pick in cube_plan.picks]
        pruned = prune_tiles(cube_plan.cube, tiles, cube_plan.target.location)
        outcome.removed += [
            f"{cube_plan.target.label} tile {pick.tile_id} ({pick.reason})"
            for pick in cube_plan.picks
        ]
        outcome.bytes_freed += pruned.bytes_freed
    return outcome
