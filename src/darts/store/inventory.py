"""What the caches hold: scenes with their bands, size and staging date; cube tiles with
the area they cover. Read only: listing takes no lock and changes nothing.

A scene's *staged* date is when its last array was committed (the commit record's
``committed_at``); pruning by age and by size budget goes by it. A scene folder whose
record cannot be read is listed too, with the problem, so that nothing on disk is
invisible to `darts cache list`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer
from shapely.geometry import box

from darts.grid.cube import CubeGrid, Window
from darts.store.atomic import is_temp_name
from darts.store.errors import StoreError
from darts.store.record import read_record
from darts.store.scenes import SCENE_SUFFIX, SceneStore

if TYPE_CHECKING:
    from darts.store.datacube.cube import Datacube

_GEOD = Geod(ellps="WGS84")
# Outline points per tile edge when its area is measured on the ellipsoid.
_EDGE_POINTS = 16


def tree_bytes(path: Path) -> int:
    """Bytes of every file below ``path`` (sizes as listed; links not followed)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            try:
                total += (Path(dirpath) / name).lstat().st_size
            except FileNotFoundError:  # removed while we looked
                continue
    return total


@dataclass(frozen=True)
class SceneEntry:
    """One scene folder of a store."""

    source: str
    scene_id: str
    path: Path
    bands: tuple[str, ...]
    bytes: int
    staged_at: str | None  # ISO 8601 UTC of the last commit; None without a record
    problem: str | None = None  # why its record cannot be used

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "scene_id": self.scene_id,
            "path": str(self.path),
            "bands": list(self.bands),
            "bytes": self.bytes,
            "staged_at": self.staged_at,
            "problem": self.problem,
        }


def scene_folders(store: SceneStore) -> list[str]:
    """Ids of every scene folder in the store, committed or not (sorted)."""
    if not store.root.is_dir():
        return []
    return sorted(
        entry.name[: -len(SCENE_SUFFIX)]
        for entry in store.root.iterdir()
        if entry.name.endswith(SCENE_SUFFIX) and entry.is_dir() and not is_temp_name(entry.name)
    )


def scene_entry(store: SceneStore, source: str, scene_id: str) -> SceneEntry:
    path = store.scene_path(scene_id)
    size = tree_bytes(path)
    try:
        record = read_record(path)
    except StoreError as error:
        return SceneEntry(source, scene_id, path, (), size, None, str(error))
    if record is None:
        return SceneEntry(source, scene_id, path, (), size, None, "no commit record")
    stamps = [array.committed_at for array in record.arrays().values()]
    return SceneEntry(source, scene_id, path, tuple(sorted(record.bands)), size, max(stamps))


def scene_entries(store: SceneStore, source: str) -> list[SceneEntry]:
    return [scene_entry(store, source, scene_id) for scene_id in scene_folders(store)]


def store_leftovers(store: SceneStore) -> list[Path]:
    """Entries of the store folder that interrupted writes or removals left (hidden
    temp names): nothing refers to them."""
    if not store.root.is_dir():
        return []
    return sorted(entry for entry in store.root.iterdir() if is_temp_name(entry.name))


@dataclass(frozen=True)
class CubeEntry:
    """One cube (one group of a repository) and what its tile records cover."""

    label: str
    kind: str
    location: str
    group: str
    filled: tuple[str, ...]
    empty: tuple[str, ...]
    area_km2: float
    written: tuple[str, str] | None  # (oldest, newest) record time
    damaged_records: tuple[str, ...] = field(default=())

    @property
    def tiles(self) -> int:
        return len(self.filled) + len(self.empty)

    def to_json(self) -> dict[str, Any]:
        return {
            "cube": self.label,
            "kind": self.kind,
            "location": self.location,
            "group": self.group,
            "tiles": self.tiles,
            "filled": list(self.filled),
            "empty": list(self.empty),
            "area_km2": round(self.area_km2, 3),
            "oldest_tile": self.written[0] if self.written else None,
            "newest_tile": self.written[1] if self.written else None,
            "damaged_records": list(self.damaged_records),
        }


def cube_entry(cube: Datacube, label: str, tiles: Iterable[str] | None = None) -> CubeEntry:
    """The cube's records, or those of ``tiles`` only."""
    from darts.store.datacube.verify import scan_records

    scan = scan_records(cube)
    records = scan.records
    if tiles is not None:
        wanted = set(tiles)
        records = {t: r for t, r in records.items() if t in wanted}
    grid = cube.spec.grid
    area = sum(window_area_km2(grid, r.pixel_window) for r in records.values())
    stamps = sorted(r.written_at for r in records.values())
    return CubeEntry(
        label=label,
        kind=cube.spec.kind,
        location=cube.location,
        group=cube.group,
        filled=tuple(sorted(t for t, r in records.items() if r.status == "filled")),
        empty=tuple(sorted(t for t, r in records.items() if r.status == "empty")),
        area_km2=area,
        written=(stamps[0], stamps[-1]) if stamps else None,
        damaged_records=tuple(sorted(t for t in scan.damaged if tiles is None or t in wanted)),
    )


def window_area_km2(grid: CubeGrid, window: Window) -> float:
    """The area a window of the grid covers on the WGS84 ellipsoid, in km²."""
    if window.is_empty:
        return 0.0
    outline = box(*grid.bounds_of(window))
    # Densified, so that edges follow the grid's lines (parallels, for a lon/lat grid)
    # rather than geodesics between corners.
    outline = outline.segmentize(max(outline.length / (4 * _EDGE_POINTS), 1e-9))
    crs = CRS.from_user_input(grid.crs)
    if not crs.is_geographic:
        to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        outline = shapely.transform(
            outline, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1]))
        )
    area, _perimeter = _GEOD.geometry_area_perimeter(outline)
    return abs(area) / 1e6
