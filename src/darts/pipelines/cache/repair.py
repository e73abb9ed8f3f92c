"""`darts cache repair`: drop exactly what is damaged, and fetch exactly that again.

After a full check (`checking`), for each damaged scene the damaged bands are discarded
(the whole scene, when its record or coordinates are unusable) and staged again through
the scene's own source (`stage_scene`: only what is missing is fetched); for each
damaged cube the tiles a problem touches are removed in one commit (damaged chunks
dropped, never decoded) and filled again through `AuxCubes`. Leftovers of interrupted
writes and removals are deleted. Then the repaired entries are checked again.

Offline (``--offline``), nothing is fetched: the local part is done the same way (so a
later prep-data fetches what is missing instead of trusting damaged data), and the
report names exactly what must be staged again and the prep-data commands that do it.
``--dry-run`` changes nothing and says what would be done.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from darts.errors import DartsError
from darts.net.http import HttpClient
from darts.pipelines.aux_data import AuxCubes
from darts.pipelines.aux_regions import regions_for_scenes
from darts.pipelines.cache.checking import (
    CubeFinding,
    RepositoryFinding,
    SceneFinding,
    verify_caches,
)
from darts.pipelines.cache.targets import CubeTarget, StoreTarget, scene_stores
from darts.pipelines.runtime import Runtime
from darts.pipelines.scene_sources import open_scene_source
from darts.pipelines.staging import stage_scene
from darts.settings.cache import CacheScope
from darts.settings.resolve import Resolved
from darts.settings.sections import Storage
from darts.sources.query import SceneFilters, SceneSelection
from darts.store.datacube.errors import CubeFillError
from darts.store.datacube.reclaim import reclaim_space
from darts.store.datacube.tile_removal import remove_tiles
from darts.store.datacube.verify import scan_records, verify_cube, verify_files
from darts.store.errors import StoreError
from darts.store.inventory import scene_folders
from darts.store.scene_damage import SceneDamage, assess, clear
from darts.store.scene_removal import remove_store_leftovers


@dataclass
class Repaired:
    """One repaired (or to-be-repaired) entry: a scene or a cube."""

    what: str  # "cdse scene S2A_…", "ArcticDEM 10 m"
    damage: str  # what was dropped: "band B03_10m", "tile(s) 40_17 (1 damaged chunk)"
    outcome: str = ""
    ok: bool = True


@dataclass
class RepairReport:
    offline: bool
    dry_run: bool
    entries: list[Repaired] = field(default_factory=list)
    leftovers: list[Path] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # what stages the dropped data again
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Everything is healthy and complete again."""
        if self.dry_run:
            return not self.entries and not self.leftovers
        return all(entry.ok for entry in self.entries)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "offline": self.offline,
            "dry_run": self.dry_run,
            "entries": [dataclasses.asdict(e) for e in self.entries],
            "leftovers_removed": [str(p) for p in self.leftovers],
            "commands": self.commands,
            "notes": self.notes,
        }


def repair_caches(
    settings: Resolved,
    runtime: Runtime,
    scope: CacheScope,
    *,
    dry_run: bool,
    buffer_m: float,
) -> RepairReport:
    """Check, then repair what the check found (see the module docstring)."""
    found = verify_caches(settings, runtime, scope)
    report = RepairReport(offline=runtime.offline, dry_run=dry_run)
    report.notes += [f"{what}: not in the caches" for what in found.unknown]
    for target, path in found.leftovers:
        if not dry_run:
            remove_store_leftovers(target.store)
        report.leftovers.append(path)
    restage: dict[tuple[str, tuple[str, ...]], list[str]] = {}  # (source, bands) -> scenes
    with HttpClient(runtime.net) as http:
        for finding in found.damaged_scenes:
            entry, bands = _repair_scene(runtime, http, finding, dry_run=dry_run)
            report.entries.append(entry)
            if bands and (runtime.offline or dry_run or not entry.ok):
                restage.setdefault((finding.target.source, bands), []).append(
                    finding.damage.scene_id
                )
        tiles: dict[str, tuple[CubeTarget, list[str]]] = {}
        for cube in found.cubes:
            if cube.unusable is not None:
                report.entries.append(_unusable(cube))
                continue
            if not cube.problems:
                continue
            entry, dropped = _repair_cube(runtime, http, cube, dry_run=dry_run)
            report.entries.append(entry)
            if dropped and (runtime.offline or dry_run or not entry.ok):
                tiles[cube.target.label] = (cube.target, dropped)
        for repository in found.repositories:
            if repository.files.damage:
                cubes = [c for c in found.cubes if c.target.location == repository.location]
                report.entries.append(_damaged_files(runtime, repository, cubes, dry_run=dry_run))
        report.commands += _scene_commands(settings, restage)
        if tiles:
            commands, notes = _tile_commands(settings, runtime, http, tiles, buffer_m)
            report.commands += commands
            report.notes += notes
    return report


# -- scenes ------------------------------------------------------------------------------


def _repair_scene(
    runtime: Runtime, http: HttpClient, finding: SceneFinding, *, dry_run: bool
) -> tuple[Repaired, tuple[str, ...]]:
    """Repair one scene; returns the entry and the bands that must be staged again."""
    entry, damage = _repair_scene_entry(runtime, http, finding, dry_run=dry_run)
    return entry, damage.restage


def _repair_scene_entry(
    runtime: Runtime, http: HttpClient, finding: SceneFinding, *, dry_run: bool
) -> tuple[Repaired, SceneDamage]:
    target, damage = finding.target, finding.damage
    what = f"{target.source} scene {damage.scene_id}"
    if damage.whole and damage.restage:
        dropped = f"the whole scene (bands {', '.join(damage.restage)})"
    elif damage.whole:
        dropped = "an unfinished first staging (nothing was committed)"
    elif damage.bands:
        dropped = f"band(s) {', '.join(damage.bands)}"
    else:
        dropped = "leftovers of interrupted writes"
    if damage.bands and any(p.startswith("leftover") for p in damage.problems):
        dropped += " and leftovers of interrupted writes"
    entry = Repaired(what, dropped)
    if dry_run:
        entry.outcome = "would be dropped" + (" and fetched again" if damage.restage else "")
        return entry, damage
    damage = clear(target.store, damage.scene_id)  # checked again under its lock
    item = damage.item
    if damage.healthy:
        entry.outcome = "nothing to do any more (another process finished its write)"
        return entry, damage
    if not damage.restage:
        entry.outcome = "cleaned"
        return _rechecked(entry, target, damage.scene_id), damage
    if runtime.offline:
        entry.outcome = "dropped; stage it again (see below)"
        entry.ok = False
        return entry, damage
    source = open_scene_source(dataclasses.replace(runtime, raw_data_source=target.source), http)
    try:
        if item is None:
            selection = SceneSelection(scene_ids=(damage.scene_id,))
            documents = source.discover(selection, SceneFilters())
            if not documents:
                raise DartsError(f"the catalogue no longer lists scene {damage.scene_id}")
            item = documents[0]
        result = stage_scene(source, item, list(damage.restage), target.store)
    except DartsError as error:
        entry.outcome, entry.ok = f"dropped, but fetching it again failed: {error}", False
        return entry, damage
    if not result.ok:
        entry.outcome, entry.ok = f"dropped, but fetching it again failed: {result.error}", False
        return entry, damage
    fetched = ", ".join(result.bands_downloaded) or "nothing"
    entry.outcome = f"fetched again: {fetched}"
    return _rechecked(entry, target, damage.scene_id), damage


def _rechecked(entry: Repaired, target: StoreTarget, scene_id: str) -> Repaired:
    if not target.store.scene_path(scene_id).exists():
        return entry
    after = assess(target.store, scene_id)
    if not after.healthy:
        entry.ok = False
        entry.outcome += f"; still damaged: {'; '.join(after.problems)}"
    return entry


def _scene_commands(
    settings: Resolved, restage: dict[tuple[str, tuple[str, ...]], list[str]]
) -> list[str]:
    storage = settings.get(Storage)
    commands = []
    for (source, bands), scene_ids in sorted(restage.items()):
        words = ["darts", "inference", "prep-data", "sentinel2", "--raw-data-source", source]
        if storage.raw_data_store is not None:
            words += ["--raw-data-store", str(storage.raw_data_store)]
        words += ["--scene-ids", *scene_ids, "--bands", *bands, "--optical"]
        commands.append(shlex.join(words))
    return commands


# -- cubes -------------------------------------------------------------------------------


def _repair_cube(
    runtime: Runtime, http: HttpClient, finding: CubeFinding, *, dry_run: bool
) -> tuple[Repaired, list[str]]:
    target = finding.target
    tiles = sorted({t for p in finding.problems for t in p.tiles})
    chunks = sorted({p.chunk for p in finding.problems if p.chunk})
    parts = [f"tile(s) {', '.join(tiles)}"] if tiles else []
    if chunks:
        parts.append(f"{len(chunks)} damaged or stray chunk(s)")
    entry = Repaired(target.label, " and ".join(parts))
    if dry_run:
        entry.outcome = "would be dropped" + (" and fetched again" if tiles else "")
        return entry, tiles
    aux = aux_cubes(runtime, http, target)
    cube = target.open(runtime)
    assert cube is not None  # it was just checked
    damaged_records = scan_records(cube).damaged
    tiling = aux.tiling(target.key)
    windows = {t: tiling.tile_window(t) for t in tiles if t in damaged_records}
    remove_tiles(cube, tiles, drop_chunks=chunks, windows=windows)
    if not tiles:
        entry.outcome = "dropped"
    elif runtime.offline:
        entry.outcome, entry.ok = "dropped; stage the tiles again (see below)", False
        return entry, tiles
    else:
        filler = aux.cube(target.key, create=True)
        assert filler is not None
        try:
            filler.fill(tiles, aux.source(target.key))
        except CubeFillError as error:
            entry.outcome, entry.ok = f"dropped, but fetching again failed: {error}", False
            return entry, tiles
        except DartsError as error:
            entry.outcome, entry.ok = f"dropped, but fetching again failed: {error}", False
            return entry, tiles
        entry.outcome = f"fetched again: tile(s) {', '.join(tiles)}"
    after = verify_cube(cube, tiles=tiles or None, tiling=tiling)
    if after:
        entry.ok = False
        entry.outcome += f"; still damaged: {'; '.join(str(p) for p in after)}"
    return entry, tiles


def _unusable(finding: CubeFinding) -> Repaired:
    target = finding.target
    return Repaired(
        target.label,
        "the whole cube",
        f"cannot be opened ({finding.unusable}); move {target.location} aside and stage "
        "the cube again (`darts inference prep-data sentinel2 ... --aux`)",
        ok=False,
    )


def _damaged_files(
    runtime: Runtime,
    finding: RepositoryFinding,
    cubes: list[CubeFinding],
    *,
    dry_run: bool,
) -> Repaired:
    """Files of a repository that differ from its record. Damaged chunks only: once
    every cube of the repository reads whole (after the tile repairs), the history still
    holding them is expired and collected (Icechunk's own garbage collection), and the
    record forgets what was lost. Anything else (a snapshot, a manifest, a ref) says
    what the cube is: no tile repair mends it, the cube is staged again."""
    damage = finding.files.damage
    entry = Repaired(
        finding.label,
        f"{len(damage)} damaged file(s) ({damage[0]}{', ...' if len(damage) > 1 else ''})",
    )
    restage = (
        f"move {finding.location} aside and stage its cubes again "
        "(`darts inference prep-data sentinel2 ... --aux`)"
    )
    if not finding.files.only_chunks or not cubes:
        entry.outcome, entry.ok = f"no tile repair fixes these: {restage}", False
        return entry
    if dry_run:
        entry.outcome = "the history holding them would be collected"
        return entry
    opened = [c.target.open(runtime) for c in cubes]
    if any(cube is None or verify_cube(cube) for cube in opened):
        entry.outcome, entry.ok = f"the cube does not read whole: {restage}", False
        return entry
    assert opened[0] is not None
    reclaim_space(opened[0], forget_missing=True)
    after = verify_files(finding.location, lock_timeout_s=runtime.lock_wait_s)
    if after.damage:
        entry.outcome, entry.ok = f"still damaged ({after.damage[0]}): {restage}", False
    else:
        entry.outcome = "collected the history that held them"
    return entry


def aux_cubes(runtime: Runtime, http: HttpClient, target: CubeTarget) -> AuxCubes:
    """`AuxCubes` for the cube ``target`` (its location, resolution and sources)."""
    paths = runtime.paths
    if target.key.dataset == "arcticdem":
        paths = dataclasses.replace(paths, arcticdem_dir=target.location)
    else:
        paths = dataclasses.replace(paths, tcvis_dir=target.location)
    local = dataclasses.replace(runtime, paths=paths)
    return AuxCubes(local, http, resolution_m=target.resolution_m)


def _tile_commands(
    settings: Resolved,
    runtime: Runtime,
    http: HttpClient,
    dropped: dict[str, tuple[CubeTarget, list[str]]],
    buffer_m: float,
) -> tuple[list[str], list[str]]:
    """prep-data commands that fill the dropped tiles again: ``--aux`` for the staged
    scenes whose footprints need them. A tile no staged scene needs is only noted."""
    items: dict[str, tuple[str, dict[str, Any]]] = {}  # scene id -> (source, item)
    for store_target in scene_stores(settings):
        for scene_id in scene_folders(store_target.store):
            try:
                item = store_target.store.item(scene_id)
            except StoreError:  # an unreadable record: no footprint to plan with
                continue
            if item and item.get("geometry"):
                items[scene_id] = (store_target.source, item)
    regions = regions_for_scenes([item for _, item in items.values()])
    needing: dict[tuple[str, int], set[str]] = {}  # (source, resolution) -> scenes
    notes = []
    for target, tiles in dropped.values():
        aux = aux_cubes(runtime, http, target)
        covered: set[str] = set()
        for need in aux.plan(regions, buffer_m):
            if need.key != target.key:
                continue
            for scene_id, scene_tiles in need.by_region.items():
                hit = set(scene_tiles) & set(tiles)
                if hit:
                    covered |= hit
                    source = items[scene_id][0]
                    needing.setdefault((source, target.resolution_m), set()).add(scene_id)
        notes += [
            f"{target.label} tile {tile}: no staged scene needs it, so there is nothing to "
            "stage again"
            for tile in tiles
            if tile not in covered
        ]
    storage = settings.get(Storage)
    commands = []
    for (source, resolution), scene_ids in sorted(needing.items()):
        words = ["darts", "inference", "prep-data", "sentinel2", "--raw-data-source", source]
        words += ["--scene-ids", *sorted(scene_ids), "--aux"]
        if resolution != storage.arcticdem_resolution or storage.arcticdem_dir is not None:
            words += ["--arcticdem-resolution", str(resolution)]
        for name, value in (
            ("--arcticdem-dir", storage.arcticdem_dir),
            ("--tcvis-dir", storage.tcvis_dir),
        ):
            if value is not None:
                words += [name, str(value)]
        commands.append(shlex.join(words))
    return commands, notes
