"""`darts cache list`: every scene store and cube of a data directory, with totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from darts.errors import DartsError
from darts.pipelines.cache.targets import CubeTarget, StoreTarget, cube_targets, scene_stores
from darts.pipelines.runtime import Runtime
from darts.settings.cache import CacheScope
from darts.settings.resolve import Resolved
from darts.store.inventory import (
    CubeEntry,
    SceneEntry,
    cube_entry,
    scene_entries,
    store_leftovers,
    tree_bytes,
)


@dataclass
class StoreListing:
    target: StoreTarget
    scenes: list[SceneEntry]
    leftovers: list[Path]

    @property
    def bytes(self) -> int:
        return sum(entry.bytes for entry in self.scenes)


@dataclass
class CubeListing:
    target: CubeTarget
    entry: CubeEntry | None
    problem: str | None = None  # why the cube could not be opened


@dataclass
class CacheListing:
    stores: list[StoreListing] = field(default_factory=list)
    cubes: list[CubeListing] = field(default_factory=list)
    repository_bytes: dict[Path, int] = field(default_factory=dict)  # per cube repository

    @property
    def scene_count(self) -> int:
        return sum(len(store.scenes) for store in self.stores)

    @property
    def scene_bytes(self) -> int:
        return sum(store.bytes for store in self.stores)

    @property
    def cube_bytes(self) -> int:
        return sum(self.repository_bytes.values())

    @property
    def tiles(self) -> int:
        return sum(c.entry.tiles for c in self.cubes if c.entry is not None)

    @property
    def area_km2(self) -> float:
        return sum(c.entry.area_km2 for c in self.cubes if c.entry is not None)

    def to_json(self) -> dict[str, Any]:
        return {
            "scene_stores": [
                {
                    "source": s.target.source,
                    "path": str(s.target.store.root),
                    "scenes": [entry.to_json() for entry in s.scenes],
                    "bytes": s.bytes,
                    "leftovers": [str(p) for p in s.leftovers],
                }
                for s in self.stores
            ],
            "cubes": [
                {
                    **(c.entry.to_json() if c.entry else {"cube": c.target.label}),
                    "location": str(c.target.location),
                    "repository_bytes": self.repository_bytes.get(c.target.location, 0),
                    "problem": c.problem,
                }
                for c in self.cubes
            ],
            "totals": {
                "scenes": self.scene_count,
                "scene_bytes": self.scene_bytes,
                "cubes": len(self.cubes),
                "tiles": self.tiles,
                "area_km2": round(self.area_km2, 3),
                "cube_bytes": self.cube_bytes,
                "bytes": self.scene_bytes + self.cube_bytes,
            },
        }


def list_caches(settings: Resolved, runtime: Runtime, scope: CacheScope) -> CacheListing:
    """What the caches hold; with scene or tile ids named, only those entries."""
    listing = CacheListing()
    named_scenes = set(scope.scene_ids)
    named_tiles = set(scope.tile_ids)
    if scope.scenes:
        for target in scene_stores(settings, scope.sources):
            if not scope.sources and not target.store.root.exists():
                continue  # a source never used here: nothing to list
            entries = scene_entries(target.store, target.source)
            if named_scenes:
                entries = [e for e in entries if e.scene_id in named_scenes]
            listing.stores.append(StoreListing(target, entries, store_leftovers(target.store)))
    if scope.cubes:
        for target in cube_targets(settings):
            try:
                cube = target.open(runtime)
            except DartsError as error:
                listing.cubes.append(CubeListing(target, None, str(error)))
                continue
            if cube is None:
                continue
            entry = cube_entry(cube, target.label, named_tiles or None)
            listing.cubes.append(CubeListing(target, entry))
            listing.repository_bytes.setdefault(target.location, tree_bytes(target.location))
    return listing
