"""``world.json``: what a built world contains, for tests, servers and people.

Written last: its presence means the build finished. ``total_bytes`` and
``file_count`` cover every file of the world except ``world.json`` itself.
"""

from __future__ import annotations

from typing import Any

from darts.sandbox.layout import WORLD_FORMAT_VERSION
from darts.sandbox.world.field import WorldField
from darts.sandbox.world.jobs import DemJob, JobResult, MosaicJob, SceneJob, TcvisJob
from darts.sandbox.world.regions import footprint_3413
from darts.sandbox.world.spec import WorldSpec


def document(
    spec: WorldSpec,
    seed: int,
    world: WorldField,
    results: list[JobResult],
    slump_count: int,
    total_bytes: int,
    file_count: int,
) -> dict[str, Any]:
    tiles = []
    for window in spec.windows:
        grid = window.grid(10)
        tiles.append(
            {
                "id": window.tile,
                "epsg": window.epsg,
                "transform": [float(v) for v in grid.transform[:6]],
                "shape": [grid.height, grid.width],
            }
        )
    scenes = []
    for result in results:
        if isinstance(result.job, SceneJob):
            for s in result.value:  # type: ignore[attr-defined]
                scenes.append(
                    {
                        "id": s.id,
                        "tile": s.tile,
                        "datetime": s.datetime,
                        "platform": s.platform,
                        "eo:cloud_cover": float(s.cloud_cover),
                        "eo:snow_cover": float(s.snow_cover),
                    }
                )
    scenes.sort(key=lambda s: (s["tile"], s["datetime"], s["id"]))
    mosaics = sorted(str(r.value) for r in results if isinstance(r.job, MosaicJob) and r.value)
    dem_tiles: dict[str, list[str]] = {"2m": [], "10m": [], "32m": []}
    for result in results:
        if isinstance(result.job, DemJob):
            dem_tiles[f"{result.job.tile.res}m"].append(result.job.tile.item_id)
    tcvis_items = sorted(
        str(i)
        for r in results
        if isinstance(r.job, TcvisJob)
        for i in r.value  # type: ignore[attr-defined]
    )
    main = footprint_3413(spec.main)
    in_main = sum(1 for s in world.slumps if main.contains(s.polygon()))
    return {
        "name": spec.name,
        "seed": seed,
        "format_version": WORLD_FORMAT_VERSION,
        "tiles": tiles,
        "main_tile": spec.main.tile,
        "scenes": scenes,
        "mosaics": mosaics,
        "dem_tiles": {k: sorted(v) for k, v in dem_tiles.items()},
        "tcvis_items": tcvis_items,
        "slump_count": slump_count,
        "slumps_in_main_window": in_main,
        "total_bytes": total_bytes,
        "file_count": file_count,
    }
