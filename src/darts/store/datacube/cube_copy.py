"""Copying recorded tiles from one datacube into another of the same kind.

What `darts cache export` uses to build a cube holding only the tiles some scenes need,
and `darts cache import` to merge such a cube into a machine's own. A tile goes through
the cubes' ordinary read and write paths: its window is read from the source a chunk
row at a time (so every chunk passes the read path's checks, in bounded memory) into a
tile buffer, and written into the target as one tile commit with its record (status
and source description kept). Values stored scaled round-trip exactly: a read divides
the stored whole numbers, the write multiplies and rounds them back.

Chunk bytes are not copied as they are, because the two cubes may store chunks with
different codecs (compression is not part of a cube's identity).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from darts.grid.cube import Window
from darts.store.datacube.errors import CubeMismatchError, DatacubeError
from darts.store.datacube.schema import SPEC_KEY, spec_differences, spec_to_attrs
from darts.store.datacube.spec import TileFetch, tile_buffer
from darts.store.datacube.verify import scan_records

if TYPE_CHECKING:
    from darts.store.datacube.cube import Datacube
    from darts.store.datacube.records import TileRecord


def copy_tiles(
    source: Datacube,
    target: Datacube,
    tile_ids: Iterable[str],
    *,
    on_tile: Callable[[str, bool], None] | None = None,
) -> list[str]:
    """Copy the records and pixels of ``tile_ids`` from ``source`` into ``target``;
    a tile the target has a record of is left as it is. Returns the tiles copied.
    ``on_tile(tile, copied)`` is called after each tile."""
    differences = spec_differences(spec_to_attrs(source.spec)[SPEC_KEY], target.spec)
    if differences:
        raise CubeMismatchError(target.description, differences)
    records = scan_records(source).records
    wanted = list(dict.fromkeys(tile_ids))
    absent = [t for t in wanted if t not in records]
    if absent:
        raise DatacubeError(
            f"the {source.description} has no record of tile(s) {', '.join(absent)}"
        )
    copied: list[str] = []
    for tile in target.missing(wanted):
        _copy_tile(source, target, records[tile])
        copied.append(tile)
        if on_tile is not None:
            on_tile(tile, True)
    if on_tile is not None:
        for tile in wanted:
            if tile not in copied:
                on_tile(tile, False)
    return copied


def _copy_tile(source: Datacube, target: Datacube, record: TileRecord) -> None:
    window = record.pixel_window
    names = [v.name for v in target.spec.variables]
    with tile_buffer(target.spec, window, target.scratch_dir()) as buffer:
        if record.status == "filled":
            step = target.spec.chunk
            row = window.row0
            while row < window.row1:
                # Chunk rows of the cube grid: each chunk is read once, whole across.
                end = min(window.row1, (row // step + 1) * step)
                part = Window(row, end, window.col0, window.col1)
                values = source.read(part, names)
                rows = slice(row - window.row0, end - window.row0)
                for name in names:
                    buffer.arrays[name][rows, :] = values[name].values
                row = end
        buffer.flush()
        target.write_tile(
            record.tile_id, buffer, TileFetch(record.status, dict(record.source)), if_missing=True
        )
