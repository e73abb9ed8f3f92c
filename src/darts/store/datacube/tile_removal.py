"""Removing tiles from a datacube: their records and pixels go in one commit.

Used to prune tiles and to repair damaged ones (dropped, then fetched again). Nothing is
deleted by hand under the repository: the change is an ordinary Icechunk commit through
zarr, so readers see the tiles either complete or gone, never half of them, and the
bytes become unreachable history that `reclaim` (Icechunk's own expiry and garbage
collection) frees.

A chunk can hold pixels of several tiles (tile and chunk edges need not align). A chunk
that touches no tile that stays "filled" is deleted whole; in one that does, only the
removed tiles' pixels are set back to the fill value, so the neighbour keeps its
pixels. A damaged chunk cannot be rewritten in part (it would have to be decoded), so
it is only ever deleted, and every tile it touches must be among those removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import zarr

from darts.grid.cube import Window
from darts.store.datacube.aio import run
from darts.store.datacube.errors import DatacubeError
from darts.store.datacube.records import REMOVAL_MESSAGE, TILES_GROUP, TileRecord, node_name
from darts.store.datacube.verify import scan_records

if TYPE_CHECKING:
    from darts.store.datacube.cube import Datacube


@dataclass(frozen=True)
class Removal:
    """What one removal did: the tiles whose records were dropped, and how many chunks
    were deleted whole or rewritten in part."""

    tiles: tuple[str, ...]
    chunks_deleted: int
    chunks_rewritten: int


def remove_tiles(
    cube: Datacube,
    tile_ids: Iterable[str],
    *,
    drop_chunks: Iterable[str] = (),
    windows: Mapping[str, Window] | None = None,
) -> Removal:
    """Drop the records of ``tile_ids`` and their pixels, and delete ``drop_chunks``
    (store keys of damaged chunks), in one commit.

    ``windows`` gives the pixels of tiles whose record cannot be read (from the cube's
    tiling); such a tile's record node is dropped and its pixels cleared like any
    other's. Tiles without a record are ignored."""
    wanted = list(dict.fromkeys(tile_ids))
    dropped = set(drop_chunks)
    extra = dict(windows or {})
    outcome: list[Removal] = []

    def edit(group: zarr.Group) -> None:
        outcome.clear()
        scan = scan_records(cube, group.store)
        removing = {t: scan.records[t].pixel_window for t in wanted if t in scan.records}
        removing |= {t: extra[t] for t in wanted if t in scan.damaged and t in extra}
        unreadable = [t for t in wanted if t in scan.damaged and t not in extra]
        if unreadable:
            raise ValueError(f"tile(s) {', '.join(unreadable)}: a damaged record needs a window")
        kept = [r.pixel_window for t, r in scan.records.items() if t not in removing and _filled(r)]
        deleted, rewritten = _clear(cube, group, list(removing.values()), kept, dropped)
        if removing:
            tiles = group[TILES_GROUP]
            assert isinstance(tiles, zarr.Group)
            for tile in removing:
                del tiles[node_name(tile)]
        outcome.append(Removal(tuple(removing), deleted, rewritten))

    if not wanted and not dropped:
        return Removal((), 0, 0)
    named = ", ".join(wanted[:10]) + (f" and {len(wanted) - 10} more" if len(wanted) > 10 else "")
    cube.commit_change(f"{REMOVAL_MESSAGE} {named or '-'}", edit)
    left = set(scan_records(cube).records) & set(outcome[0].tiles)
    if left:
        raise DatacubeError(
            f"the records of tile(s) {', '.join(sorted(left))} of the {cube.description} are "
            "still there after their removal was committed; run again"
        )
    return outcome[0]


def _filled(record: TileRecord) -> bool:
    return record.status == "filled"


def _clear(
    cube: Datacube,
    group: zarr.Group,
    removing: list[Window],
    kept: list[Window],
    dropped: set[str],
) -> tuple[int, int]:
    """Delete or partly overwrite the chunks of the removed windows; delete ``dropped``."""
    spec = cube.spec
    size = spec.chunk
    deleted = rewritten = 0
    store = group.store
    for variable in spec.variables:
        array = group[variable.name]
        assert isinstance(array, zarr.Array)
        prefix = f"{array.path}/"
        parts: dict[str, list[Window]] = {}  # chunk key -> the removed pixels in it
        for window in removing:
            for i, j, cell in window.cells(size, size):
                key = prefix + array.metadata.encode_chunk_key((i, j))
                parts.setdefault(key, []).append(window.intersection(cell))
        kept_keys = {
            prefix + array.metadata.encode_chunk_key((i, j))
            for window in kept
            for i, j, _cell in window.cells(size, size)
        }
        for key in sorted(dropped):
            if not key.startswith(prefix):
                continue
            if key in kept_keys:
                raise ValueError(f"chunk {key} also holds pixels of tiles that are kept")
            if run(store.exists(key)):
                run(store.delete(key))
                deleted += 1
            parts.pop(key, None)
        for key, pieces in sorted(parts.items()):
            if not run(store.exists(key)):
                continue  # never written: already all fill values
            if key not in kept_keys:  # no pixel of a kept tile in it
                run(store.delete(key))
                deleted += 1
                continue
            for piece in pieces:
                array[piece.slices] = variable.stored_fill
            rewritten += 1
    return deleted, rewritten
