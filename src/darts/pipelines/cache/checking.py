"""`darts cache verify`: every scene checked byte by byte against its commit record, every
cube tile read chunk by chunk, every file of a cube repository against its file record;
each problem one line.

Never needs the network: the cubes' tilings (which window a tile covers) are pure, and
the clients built here are offline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from darts.errors import DartsError
from darts.net.http import HttpClient
from darts.pipelines.aux_data import AuxCubes
from darts.pipelines.cache.targets import CubeTarget, StoreTarget, cube_targets, scene_stores
from darts.pipelines.runtime import Runtime, offline_runtime
from darts.settings.cache import CacheScope
from darts.settings.resolve import Resolved
from darts.store.datacube.file_record import FileCheck
from darts.store.datacube.verify import (
    CubeProblem,
    Tiling,
    lost_tiles,
    scan_records,
    verify_cube,
    verify_files,
)
from darts.store.inventory import scene_folders, store_leftovers
from darts.store.scene_damage import SceneDamage, assess


@dataclass
class SceneFinding:
    target: StoreTarget
    damage: SceneDamage


@dataclass
class CubeFinding:
    target: CubeTarget
    problems: list[CubeProblem]
    tiles: set[str] = field(default_factory=set)  # the tiles checked
    unusable: str | None = None  # the cube itself could not be opened

    @property
    def tiles_checked(self) -> int:
        return len(self.tiles)


@dataclass
class RepositoryFinding:
    """The files of one cube repository (TCVIS holds a cube per period) against its
    file record."""

    location: Path
    files: FileCheck

    @property
    def label(self) -> str:
        return f"cube repository {self.location}"


@dataclass
class Verification:
    scenes: list[SceneFinding] = field(default_factory=list)
    cubes: list[CubeFinding] = field(default_factory=list)
    repositories: list[RepositoryFinding] = field(default_factory=list)
    leftovers: list[tuple[StoreTarget, Path]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # named ids found nowhere

    @property
    def damaged_scenes(self) -> list[SceneFinding]:
        return [f for f in self.scenes if not f.damage.healthy]

    @property
    def ok(self) -> bool:
        return (
            not self.damaged_scenes
            and not self.leftovers
            and not self.unknown
            and all(not c.problems and c.unusable is None for c in self.cubes)
            and all(not r.files.damage for r in self.repositories)
        )

    def lines(self) -> list[str]:
        """Every problem, one line each: the scene and what is wrong with which band and
        file, or the cube, tile, variable and chunk."""
        out = [f"{what}: not in the caches" for what in self.unknown]
        for finding in self.damaged_scenes:
            prefix = f"{finding.target.source} scene {finding.damage.scene_id}"
            out += [f"{prefix}: {problem}" for problem in finding.damage.problems]
        out += [
            f"{target.source} store {target.store.root}: leftover {path.name} "
            "(an interrupted write or removal)"
            for target, path in self.leftovers
        ]
        for cube in self.cubes:
            if cube.unusable is not None:
                out.append(f"{cube.target.label} ({cube.target.location}): {cube.unusable}")
            out += [f"{cube.target.label}: {problem}" for problem in cube.problems]
        for repository in self.repositories:
            out += [f"{repository.label}: {damage}" for damage in repository.files.damage]
        return out

    def notes(self) -> list[str]:
        """What is not damage but worth knowing: files of an interrupted commit, and
        repositories whose files cannot be checked (no file record)."""
        out = []
        for repository in self.repositories:
            files = repository.files
            if not files.recorded:
                out.append(
                    f"{repository.label}: no file record (made by an earlier darts "
                    "version, or its hidden folder was deleted), so its files are not "
                    "checked byte by byte; the next tile commit records them as they are"
                )
            out += [
                f"{repository.label}: leftover: {leftover} (an interrupted commit; the "
                "next commit records it)"
                for leftover in files.leftovers
            ]
        return out

    def summary(self) -> str:
        tiles = sum(c.tiles_checked for c in self.cubes)
        problems = len(self.lines())
        state = "healthy" if self.ok else f"{problems} problem(s)"
        return (
            f"checked {len(self.scenes)} scene(s) and {tiles} tile(s) of {len(self.cubes)} "
            f"cube(s): {state}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "scenes_checked": len(self.scenes),
            "tiles_checked": sum(c.tiles_checked for c in self.cubes),
            "problems": self.lines(),
            "notes": self.notes(),
        }


def verify_caches(settings: Resolved, runtime: Runtime, scope: CacheScope) -> Verification:
    """Check the scenes and cubes ``scope`` names (all of them by default)."""
    runtime = offline_runtime(runtime)
    result = Verification()
    named_scenes = list(dict.fromkeys(scope.scene_ids))
    named_tiles = list(dict.fromkeys(scope.tile_ids))
    if scope.scenes:
        found: set[str] = set()
        for target in scene_stores(settings, scope.sources):
            ids = scene_folders(target.store)
            if named_scenes:
                ids = [i for i in ids if i in named_scenes]
            else:
                result.leftovers += [(target, p) for p in store_leftovers(target.store)]
            for scene_id in ids:
                result.scenes.append(SceneFinding(target, assess(target.store, scene_id)))
                found.add(scene_id)
        result.unknown += [f"scene {s}" for s in named_scenes if s not in found]
    if scope.cubes:
        seen: set[str] = set()
        with HttpClient(runtime.net) as http:
            for target in cube_targets(settings):
                finding = _verify_cube(runtime, http, target, named_tiles or None)
                if finding is None:
                    continue
                result.cubes.append(finding)
                seen |= finding.tiles
        if not named_tiles:  # the whole repository, once (the TCVIS periods share one)
            for location in dict.fromkeys(t.location for t in cube_targets(settings)):
                files = verify_files(location, lock_timeout_s=runtime.lock_wait_s)
                result.repositories.append(RepositoryFinding(location, files))
        result.unknown += [f"tile {t}" for t in named_tiles if t not in seen]
    return result


def _verify_cube(
    runtime: Runtime, http: HttpClient, target: CubeTarget, tiles: list[str] | None
) -> CubeFinding | None:
    # A damaged tip snapshot can make the cube, or its records, vanish: an empty cube
    # is checked against what the history says the tip holds.
    try:
        cube = target.open(runtime)
        if cube is None:
            lost = lost_tiles(target.location, target.key.group, None)
            return None if lost is None else CubeFinding(target, [], unusable=lost)
        scan = scan_records(cube)
        held = set(scan.records) | set(scan.damaged)
        lost = lost_tiles(target.location, target.key.group, held)
        if lost is not None:
            return CubeFinding(target, [], unusable=lost)
        checked = held if tiles is None else held & set(tiles)
        problems = verify_cube(cube, tiles=tiles, tiling=cube_tiling(runtime, http, target))
    except DartsError as error:
        return CubeFinding(target, [], unusable=str(error))
    except Exception as error:  # whatever stops reading the cube's structure: damage
        reason = next(iter(str(error).strip().splitlines()), type(error).__name__)
        return CubeFinding(
            target, [], unusable=f"its structure cannot be read ({type(error).__name__}: {reason})"
        )
    return CubeFinding(target, problems, checked)


def cube_tiling(runtime: Runtime, http: HttpClient, target: CubeTarget) -> Tiling:
    """Which window each tile of the cube covers (pure; no index, no network)."""
    return AuxCubes(runtime, http, resolution_m=target.resolution_m).tiling(target.key)
