"""`darts cache export` and `import`: which scenes and tiles travel, and where they land.

Export takes the named scenes (or all) and, per cube, the tiles those scenes need for a
run (their footprints plus the auxiliary buffer, as prep-data plans them), plus any tile
named. The cubes in the export hold only those tiles, with their history expired, so
the archive carries no byte that is not needed. Import places scenes into the store of
their source and tiles into the cube of their kind, as this machine's settings name
them; `darts inference readiness sentinel2 --offline` then finds them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from darts.errors import ConfigError
from darts.net.http import HttpClient
from darts.pipelines.aux_regions import regions_for_scenes
from darts.pipelines.cache.repair import aux_cubes
from darts.pipelines.cache.targets import (
    CubeTarget,
    StoreTarget,
    arcticdem_cube,
    cube_for_kind,
    cube_targets,
    scene_stores,
    store_of,
    tcvis_cube,
)
from darts.pipelines.runtime import Runtime, offline_runtime
from darts.settings.cache import CacheScope
from darts.settings.resolve import Resolved
from darts.settings.sections import Storage
from darts.sources.tcvis import TCVIS_PERIODS
from darts.store.datacube import Datacube
from darts.store.datacube.cube_copy import copy_tiles
from darts.store.datacube.reclaim import reclaim_space
from darts.store.datacube.verify import scan_records, verify_cube
from darts.store.errors import StoreError
from darts.store.inventory import scene_folders
from darts.store.scene_damage import assess
from darts.store.transfer import (
    CUBES_DIR,
    ExportedCube,
    Manifest,
    check_archive,
    export_scene,
    import_scene,
    import_tiles,
    publish,
    scene_dirs,
    staging_folder,
    unpacked,
    write_manifest,
)


@dataclass
class ExportReport:
    target: Path
    manifest: Manifest
    bytes: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": str(self.target),
            "scenes": [s.scene_id for s in self.manifest.scenes],
            "cubes": {f"{c.kind} {c.group}".strip(): list(c.tiles) for c in self.manifest.cubes},
            "files": len(self.manifest.files),
            "bytes": self.bytes,
            "notes": self.notes,
        }


def export_caches(
    settings: Resolved,
    runtime: Runtime,
    scope: CacheScope,
    target: Path,
    *,
    everything: bool,
    buffer_m: float,
) -> ExportReport:
    if not (everything or scope.scene_ids or scope.tile_ids):
        raise ConfigError("say what to export: --scene-ids, --tile-ids or --all")
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise ConfigError(f"--to {target} exists; choose a new folder or .tar file name")
    runtime = offline_runtime(runtime)  # an export reads what is here, and fetches nothing
    scenes = _scenes_to_export(settings, scope, everything)
    folder = staging_folder(target)
    notes: list[str] = []
    try:
        manifest = Manifest()
        items = []
        for store_target, scene_id in scenes:
            manifest.scenes.append(
                export_scene(store_target.store, store_target.source, scene_id, folder)
            )
            item = store_target.store.item(scene_id)
            if item and item.get("geometry"):
                items.append(item)
        wanted = _tiles_to_export(settings, runtime, scope, items, everything, buffer_m, notes)
        repositories: dict[str, Datacube] = {}
        for cube_target, cube, tiles in wanted:
            exported = folder / CUBES_DIR / cube_target.location.name
            copy = Datacube.open(exported, cube.spec, group=cube_target.key.group, create=True)
            copy_tiles(cube, copy, tiles)
            repositories.setdefault(exported.name, copy)
            manifest.cubes.append(
                ExportedCube(cube.spec.kind, exported.name, cube_target.key.group, tuple(tiles))
            )
        for copy in repositories.values():
            # One commit per tile copied: expire that history, the export needs the tip.
            reclaim_space(copy)
        write_manifest(folder, manifest)
        size = sum(entry.size for entry in manifest.files.values())
        if target.exists():
            target.rmdir()  # the empty folder it was allowed to be
        publish(folder, target, manifest)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return ExportReport(target, manifest, size, notes)


def _scenes_to_export(
    settings: Resolved, scope: CacheScope, everything: bool
) -> list[tuple[StoreTarget, str]]:
    chosen = []
    found: set[str] = set()
    for target in scene_stores(settings, scope.sources):
        for scene_id in scene_folders(target.store):
            if everything or scene_id in scope.scene_ids:
                chosen.append((target, scene_id))
                found.add(scene_id)
    unknown = [s for s in scope.scene_ids if s not in found]
    if unknown:
        raise ConfigError(
            f"scene(s) {', '.join(unknown)} are not in the scene stores (see `darts cache "
            "list`); nothing was exported"
        )
    return chosen


def _tiles_to_export(
    settings: Resolved,
    runtime: Runtime,
    scope: CacheScope,
    items: list[dict[str, Any]],
    everything: bool,
    buffer_m: float,
    notes: list[str],
) -> list[tuple[CubeTarget, Datacube, list[str]]]:
    """Per cube: every tile (``everything``), else the named ones and those the
    exported scenes need that the cube holds (a needed tile it lacks is noted)."""
    regions = regions_for_scenes(items)
    named = set(scope.tile_ids)
    needed: dict[tuple[Path, str], set[str]] = {}  # (repository, group) -> tiles
    chosen = []
    held: set[str] = set()
    with HttpClient(runtime.net) as http:
        for target in _run_cubes(settings) if regions else []:
            for need in aux_cubes(runtime, http, target).plan(regions, buffer_m):
                if need.key != target.key:
                    continue
                needed[(target.location, target.key.group)] = set(need.tiles)
                notes += [
                    f"{target.label} tile {tile} is needed by the exported scenes but not "
                    "staged here: stage it (`darts inference prep-data sentinel2 ... --aux`) "
                    "here before exporting, or on the other machine"
                    for tile in need.missing
                ]
    for target in cube_targets(settings):
        cube = target.open(runtime)
        if cube is None:
            continue
        records = scan_records(cube).records
        held |= set(records)
        want = needed.get((target.location, target.key.group), set())
        tiles = sorted(t for t in records if everything or t in named or t in want)
        if tiles:
            chosen.append((target, cube, tiles))
    unknown = sorted(named - held)
    if unknown:
        raise ConfigError(
            f"tile(s) {', '.join(unknown)} are in no cube (see `darts cache list`); nothing "
            "was exported"
        )
    return chosen


def _run_cubes(settings: Resolved) -> list[CubeTarget]:
    """The cubes a run of these scenes reads: the configured ArcticDEM resolution and
    every TCVIS period (the plan picks the periods of the scenes' years)."""
    resolution = settings.get(Storage).arcticdem_resolution
    return [arcticdem_cube(settings, resolution)] + [tcvis_cube(settings, p) for p in TCVIS_PERIODS]


@dataclass
class ImportReport:
    archive: Path
    scenes: dict[str, str] = field(default_factory=dict)  # "source scene" -> outcome
    tiles: dict[str, str] = field(default_factory=dict)  # "cube tile" -> outcome
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "archive": str(self.archive),
            "scenes": self.scenes,
            "tiles": self.tiles,
            "problems": self.problems,
            "ok": self.ok,
        }


def import_caches(settings: Resolved, runtime: Runtime, archive: Path) -> ImportReport:
    """Check the whole archive, then place its scenes and tiles; every entry placed is
    checked again where it landed."""
    runtime = offline_runtime(runtime)
    report = ImportReport(archive)
    with unpacked(archive, runtime.paths.large_dir) as folder:
        manifest = check_archive(folder, str(archive))
        # Every destination is resolved before anything is placed: a setting that
        # does not fit the archive stops the import with nothing changed.
        stores = {s.source: store_of(settings, s.source) for s in manifest.scenes}
        cubes = {
            (c.kind, c.group): cube_for_kind(settings, c.kind, c.group) for c in manifest.cubes
        }
        for scene, archived in scene_dirs(manifest, folder):
            target = stores[scene.source]
            key = f"{scene.source} scene {scene.scene_id}"
            try:
                report.scenes[key] = import_scene(archived, target.store, scene.scene_id)
            except StoreError as error:
                report.problems.append(f"{key}: not imported: {error}")
                continue
            after = assess(target.store, scene.scene_id)
            report.problems += [f"{key}: {p}" for p in after.problems]
        for exported in manifest.cubes:
            target = cubes[(exported.kind, exported.group)]
            source = Datacube.open(
                folder / exported.path, target.spec, group=exported.group, create=False
            )
            cube = target.open(runtime, create=True)
            assert cube is not None
            outcomes = import_tiles(source, cube, exported.tiles)
            report.tiles.update({f"{target.label} tile {t}": o for t, o in outcomes.items()})
            after = verify_cube(cube, tiles=exported.tiles)
            report.problems += [f"{target.label}: {p}" for p in after]
    return report
