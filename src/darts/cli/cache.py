"""``darts cache list|verify|repair|prune|export|import``: parse, call, print, exit code.

Exit codes: 0 healthy / done; 1 problems found or left (each listed on its own line);
2 bad input or an unusable archive (one line, from the error)."""

from __future__ import annotations

import json
import sys
from typing import Any

from darts.cli.parser import CommandContext
from darts.errors import ConfigError
from darts.settings.cache import (
    CacheDryRun,
    CacheExport,
    CacheImport,
    CacheOutput,
    CachePrune,
    CacheScope,
)
from darts.settings.resolve import Resolved


def _settings(ctx: CommandContext) -> Resolved:
    return ctx.settings  # type: ignore[return-value]


def _runtime(settings: Resolved):
    from darts.pipelines.runtime import runtime_of

    return runtime_of(settings)


# -- list ------------------------------------------------------------------------------


def list_caches(ctx: CommandContext) -> int:
    from darts.pipelines.cache.listing import list_caches as build

    settings = _settings(ctx)
    listing = build(settings, _runtime(settings), settings.get(CacheScope))
    if settings.get(CacheOutput).json:
        _print_json(listing.to_json())
        return 0
    for store in listing.stores:
        print(f"{store.target.source} scene store: {store.target.store.root}")
        if store.scenes:
            rows = [("scene", "bands", "size", "staged")]
            for entry in store.scenes:
                rows.append(
                    (
                        entry.scene_id,
                        ",".join(entry.bands) or f"- ({entry.problem})",
                        size_text(entry.bytes),
                        entry.staged_at or "-",
                    )
                )
            table(rows, indent="  ")
        print(f"  {len(store.scenes)} scene(s), {size_text(store.bytes)}")
        for path in store.leftovers:
            print(f"  leftover {path.name}: `darts cache repair` removes it")
    if listing.cubes:
        print("cubes:")
        rows = [("cube", "location", "tiles", "filled", "empty", "area")]
        for cube in listing.cubes:
            entry = cube.entry
            if entry is None:
                rows.append((cube.target.label, str(cube.target.location), "-", "-", "-", "-"))
                continue
            rows.append(
                (
                    cube.target.label,
                    str(cube.target.location),
                    str(entry.tiles),
                    str(len(entry.filled)),
                    str(len(entry.empty)),
                    f"{entry.area_km2:,.0f} km²",
                )
            )
        table(rows, indent="  ")
        for cube in listing.cubes:
            if cube.problem:
                print(f"  {cube.target.label}: {cube.problem}")
            elif cube.entry is not None and cube.entry.damaged_records:
                damaged = ", ".join(cube.entry.damaged_records)
                print(f"  {cube.target.label}: damaged record(s) of tile(s) {damaged}")
        for location, size in listing.repository_bytes.items():
            print(f"  repository {location}: {size_text(size)}")
    print(
        f"total: {listing.scene_count} scene(s), {size_text(listing.scene_bytes)}; "
        f"{len(listing.cubes)} cube(s), {listing.tiles} tile(s), {listing.area_km2:,.0f} km², "
        f"{size_text(listing.cube_bytes)}; {size_text(listing.scene_bytes + listing.cube_bytes)} "
        "on disk"
    )
    return 0


# -- verify ----------------------------------------------------------------------------


def verify_caches(ctx: CommandContext) -> int:
    from darts.pipelines.cache.checking import verify_caches as check

    settings = _settings(ctx)
    result = check(settings, _runtime(settings), settings.get(CacheScope))
    if settings.get(CacheOutput).json:
        _print_json(result.to_json())
        return 0 if result.ok else 1
    for line in result.lines():
        print(line)
    for note in result.notes():
        print(f"note: {note}")
    print(result.summary())
    if not result.ok:
        print(
            "damaged: run `darts cache repair` to fetch exactly the damaged parts again "
            "(with --offline it says what to stage again)",
            file=sys.stderr,
        )
        return 1
    return 0


# -- repair ----------------------------------------------------------------------------


def repair_caches(ctx: CommandContext) -> int:
    from darts.pipelines.cache.repair import repair_caches as repair
    from darts.settings.processing import Terrain

    settings = _settings(ctx)
    report = repair(
        settings,
        _runtime(settings),
        settings.get(CacheScope),
        dry_run=settings.get(CacheDryRun).dry_run,
        buffer_m=settings.get(Terrain).aux_buffer_m,
    )
    for entry in report.entries:
        print(f"{entry.what}: {entry.damage}: {entry.outcome}")
    for path in report.leftovers:
        verb = "would be removed" if report.dry_run else "removed"
        print(f"leftover {path}: {verb}")
    for note in report.notes:
        print(f"note: {note}")
    if report.commands:
        print("stage again with (on a machine with internet):")
        for command in report.commands:
            print(f"  {command}")
    if not report.entries and not report.leftovers:
        print("nothing to repair: the caches are healthy")
    if report.ok:
        return 0
    if report.offline and not report.dry_run:
        print(
            "offline: the damaged data was dropped; stage it again with the command(s) above",
            file=sys.stderr,
        )
    return 1


# -- prune -----------------------------------------------------------------------------


def prune_caches(ctx: CommandContext) -> int:
    from darts.pipelines.cache.pruning import execute_prune, plan_prune
    from darts.store.prune import PruneCriteria

    settings = _settings(ctx)
    scope = settings.get(CacheScope)
    options = settings.get(CachePrune)
    criteria = PruneCriteria(
        scene_ids=tuple(scope.scene_ids),
        tile_ids=tuple(scope.tile_ids),
        older_than_days=options.older_than,
        max_bytes=options.max_bytes,
    )
    plan = plan_prune(settings, _runtime(settings), scope, criteria)
    if settings.get(CacheDryRun).dry_run:
        for target, pick in plan.scenes:
            entry = pick.entry
            print(
                f"would remove {target.source} scene {entry.scene_id} ({pick.reason}): "
                f"{size_text(entry.bytes)}"
            )
        for cube in plan.cubes:
            for tile in cube.picks:
                print(f"would remove {cube.target.label} tile {tile.tile_id} ({tile.reason})")
        cube_bytes = sum(cube.bytes_estimate for cube in plan.cubes)
        print(
            f"dry run: {len(plan.scenes)} scene(s) ({size_text(plan.scene_bytes)}) and "
            f"{sum(len(c.picks) for c in plan.cubes)} tile(s) (about {size_text(cube_bytes)}) "
            f"would go; {size_text(plan.scene_bytes + cube_bytes)} freed"
        )
        return 0
    if plan.empty:
        print("nothing to prune")
        return 0
    outcome = execute_prune(plan)
    for line in outcome.removed:
        print(f"removed {line}")
    for line in outcome.failed:
        print(line, file=sys.stderr)
    print(f"freed {size_text(outcome.bytes_freed)}")
    return 1 if outcome.failed else 0


# -- export and import -----------------------------------------------------------------


def export_caches(ctx: CommandContext) -> int:
    from darts.pipelines.cache.transfer import export_caches as export
    from darts.settings.processing import Terrain

    settings = _settings(ctx)
    options = settings.get(CacheExport)
    if options.to is None:
        raise ConfigError("say where the export goes: --to DIR or --to FILE.tar")
    report = export(
        settings,
        _runtime(settings),
        settings.get(CacheScope),
        options.to,
        everything=options.all,
        buffer_m=settings.get(Terrain).aux_buffer_m,
    )
    manifest = report.manifest
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    tiles = sum(len(cube.tiles) for cube in manifest.cubes)
    print(
        f"exported {len(manifest.scenes)} scene(s) and {tiles} cube tile(s) "
        f"({len(manifest.files)} files, {size_text(report.bytes)}) to {report.target}"
    )
    print(f"on the other machine: darts cache import {report.target}")
    return 0


def import_caches(ctx: CommandContext) -> int:
    from darts.pipelines.cache.transfer import import_caches as place

    settings = _settings(ctx)
    archive = settings.get(CacheImport).archive
    if archive is None:
        raise ConfigError("say what to import: `darts cache import FROM` (a folder or .tar)")
    report = place(settings, _runtime(settings), archive)
    for what, outcome in {**report.scenes, **report.tiles}.items():
        print(f"{what}: {outcome}")
    for problem in report.problems:
        print(problem, file=sys.stderr)
    counts: dict[str, int] = {}
    for outcome in (*report.scenes.values(), *report.tiles.values()):
        counts[outcome] = counts.get(outcome, 0) + 1
    summary = ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "nothing"
    print(f"import from {archive}: {summary}")
    return 0 if report.ok else 1


# -- helpers ---------------------------------------------------------------------------


def _print_json(document: dict[str, Any]) -> None:
    print(json.dumps(document, indent=2))


def table(rows: list[tuple[str, ...]], indent: str = "") -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        cells = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        print(indent + cells.rstrip())
        if index == 0:
            print(indent + "  ".join("-" * w for w in widths))


def size_text(n: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
