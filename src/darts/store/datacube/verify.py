"""Checking a datacube in full: every recorded tile readable, and records and arrays agreeing.

A read touches only the chunks its window needs, so a damaged chunk stays unnoticed
until a run needs it, and then it stops that run. `darts cache verify` reads, through
the same read path as a run (:meth:`Datacube.read`, so every check the read path does
fires here too), every stored chunk of every recorded tile, one chunk of one variable at
a time (bounded memory, and each problem names its chunk). It also checks what a read
cannot see:

- a record whose window is not inside the grid, or (given the cube's tiling) is not
  the window of its tile;
- a tile recorded "filled" with valid pixels of which the cube holds no chunk at all;
- a chunk that holds data although every tile it touches is recorded "empty", or that
  lies outside every recorded tile (pixels nothing accounts for).

A problem names the recorded tiles it concerns: those are what a repair drops and
fetches again. A damaged chunk concerns every recorded tile it touches, since dropping
it loses their pixels in it.

What a read of the tip cannot see at all is checked on the repository as a whole
(:func:`verify_files`, :func:`lost_cube`): every file against the cube's file record
(`file_record`: snapshots, manifests, transaction logs, refs, and chunks only older
snapshots reach), and a repository whose history has tile commits for a cube whose
group its tip does not hold (a damaged tip snapshot reads as an empty repository). No
tile repair fixes those; the cube is staged again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote

import icechunk
import zarr

from darts.errors import DartsError
from darts.grid.cube import Window
from darts.net.icechunk_storage import icechunk_config, icechunk_storage
from darts.store.datacube.aio import run
from darts.store.datacube.errors import CubeStorageError, DatacubeError, storage_failure
from darts.store.datacube.file_record import FileCheck, check_files
from darts.store.datacube.records import REMOVAL_MESSAGE, TileRecord, records_path
from darts.store.errors import StoreLockTimeout
from darts.store.locks import hold_lock
from darts.store.sidecar import cube_sidecar

if TYPE_CHECKING:
    from darts.store.datacube.cube import Datacube

# How far back `lost_tiles` looks for a cube's newest tile commit.
_HISTORY_DEPTH = 200


class Tiling(Protocol):
    """Which cube pixels a tile covers (a `TileSource`'s pure half)."""

    def tile_window(self, tile_id: str) -> Window: ...


@dataclass(frozen=True)
class CubeProblem:
    """One thing wrong with a cube.

    tiles: the recorded tiles it concerns (what a repair fetches again); empty when it
        concerns the cube as a whole or pixels no record accounts for.
    what: the problem, as a sentence naming the tile, variable and chunk.
    chunk: the store key of a damaged chunk (a repair drops it before refilling).
    """

    tiles: tuple[str, ...]
    what: str
    chunk: str | None = None

    def __str__(self) -> str:
        return self.what


@dataclass(frozen=True)
class RecordScan:
    """The tile records of a cube: readable ones by tile id, and the tile ids of
    record nodes that could not be read (with why)."""

    records: dict[str, TileRecord]
    damaged: dict[str, str]


def scan_records(cube: Datacube, store: icechunk.IcechunkStore | None = None) -> RecordScan:
    """Every record node on the branch tip (or in ``store``'s snapshot); a damaged node
    is reported, not raised, so one bad record does not hide the others."""
    store = store if store is not None else cube.tip_store()
    try:
        tiles = zarr.open_group(store, path=records_path(cube.group), mode="r")
    except FileNotFoundError:
        return RecordScan({}, {})
    records: dict[str, TileRecord] = {}
    damaged: dict[str, str] = {}
    for name, node in tiles.groups():
        tile_id = unquote(name)  # node names are the tile ids, %-escaped
        try:
            record = TileRecord.from_attrs(dict(node.attrs), f"{name!r} of the {cube.description}")
        except DatacubeError as error:
            damaged[tile_id] = str(error)
            continue
        records[record.tile_id] = record
    return RecordScan(records, damaged)


def verify_cube(
    cube: Datacube, *, tiles: Iterable[str] | None = None, tiling: Tiling | None = None
) -> list[CubeProblem]:
    """Problems of the cube, or of the recorded tiles ``tiles`` only (None: all, and
    then also pixels outside every record); empty means healthy."""
    store = cube.tip_store()
    scan = scan_records(cube, store)
    wanted = set(scan.records) | set(scan.damaged) if tiles is None else set(tiles)
    problems = [
        CubeProblem((tile,), f"tile {tile}: {why}")
        for tile, why in sorted(scan.damaged.items())
        if tile in wanted
    ]
    chosen = {t: r for t, r in sorted(scan.records.items()) if t in wanted}
    grid = cube.spec.grid.full
    for tile, record in chosen.items():
        window = record.pixel_window
        if window.is_empty or window.intersection(grid) != window:
            problems.append(
                CubeProblem((tile,), f"tile {tile}: its window {window} is not in the grid")
            )
            continue
        if tiling is not None:
            try:
                expected = tiling.tile_window(tile)
            except ValueError as error:
                problems.append(
                    CubeProblem((tile,), f"tile {tile}: not a tile of this cube ({error})")
                )
                continue
            if expected != window:
                problems.append(
                    CubeProblem(
                        (tile,),
                        f"tile {tile}: recorded window {window}, its tile covers {expected}",
                    )
                )
    valid = {t: r for t, r in chosen.items() if r.pixel_window.intersection(grid) == r.pixel_window}
    problems += _check_chunks(cube, store, scan.records, valid, whole=tiles is None)
    return problems


def _check_chunks(
    cube: Datacube,
    store: icechunk.IcechunkStore,
    records: dict[str, TileRecord],
    chosen: dict[str, TileRecord],
    *,
    whole: bool,
) -> list[CubeProblem]:
    """Read every stored chunk of the chosen tiles; with ``whole``, also find chunks
    that no record (or only "empty" records) account for."""
    spec = cube.spec
    size = spec.chunk
    grid = spec.grid.full
    group = zarr.open_group(store, path=cube.group, mode="r")
    problems: list[CubeProblem] = []
    # Which recorded tiles touch each chunk cell: found once, not per chunk read.
    owners: dict[tuple[int, int], list[str]] = {}
    for tile, record in sorted(records.items()):
        for i, j, _cell in record.pixel_window.cells(size, size):
            owners.setdefault((i, j), []).append(tile)
    holding: set[str] = set()  # tiles of which at least one chunk is stored
    for variable in spec.variables:
        array = group[variable.name]
        assert isinstance(array, zarr.Array)
        prefix = f"{array.path}/"
        stored = set(run(_list(store, prefix))) - {f"{prefix}zarr.json"}
        checked: set[str] = set()
        for tile, record in chosen.items():
            for i, j, cell in record.pixel_window.cells(size, size):
                key = prefix + array.metadata.encode_chunk_key((i, j))
                if key not in stored:
                    continue
                holding.add(tile)
                if key in checked:
                    continue
                checked.add(key)
                touching = tuple(owners.get((i, j), ()))
                try:
                    cube.read(cell.intersection(grid), [variable.name])
                except Exception as error:  # whatever stops a read of it: it is damaged
                    where = ", ".join(touching)
                    problems.append(
                        CubeProblem(
                            touching,
                            f"tile(s) {where}: {variable.name} chunk {key} is unreadable: "
                            f"{_reason(error)}",
                            chunk=key,
                        )
                    )
        if whole:
            problems += _unaccounted(variable.name, prefix, stored, records, size, array)
    for tile, record in chosen.items():
        valid = record.source.get("valid_pixels")
        if (
            record.status == "filled"
            and isinstance(valid, int)
            and valid > 0
            and tile not in holding
        ):
            problems.append(
                CubeProblem(
                    (tile,),
                    f"tile {tile}: recorded as filled ({valid} valid pixels), but the cube "
                    "holds none of its chunks",
                )
            )
    return problems


def _unaccounted(
    name: str,
    prefix: str,
    stored: set[str],
    records: dict[str, TileRecord],
    size: int,
    array: zarr.Array,
) -> list[CubeProblem]:
    """Stored chunks outside every record, or touching only "empty" records."""
    covered: dict[str, set[str]] = {}  # chunk key -> statuses of the records touching it
    for record in records.values():
        for i, j, _cell in record.pixel_window.cells(size, size):
            key = prefix + array.metadata.encode_chunk_key((i, j))
            covered.setdefault(key, set()).add(record.status)
    problems = []
    for key in sorted(stored):
        statuses = covered.get(key)
        if statuses is None:
            problems.append(
                CubeProblem((), f"{name} chunk {key} holds data outside every recorded tile", key)
            )
        elif "filled" not in statuses:
            problems.append(
                CubeProblem(
                    (), f"{name} chunk {key} holds data although its tiles are recorded empty", key
                )
            )
    return problems


async def _list(store: icechunk.IcechunkStore, prefix: str) -> list[str]:
    return [key async for key in store.list_prefix(prefix)]


def _reason(error: BaseException) -> str:
    """Why a chunk could not be read, in one line. A storage error's own message ends
    with advice for an unreadable directory; the storage's first line says more here."""
    cause = error.__cause__
    if isinstance(error, CubeStorageError) and cause is not None:
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        if lines:
            return lines[0].removeprefix("x ").strip()
    if isinstance(error, DartsError):
        return str(error)
    return f"{type(error).__name__}: {error}"


# -- the repository as a whole -------------------------------------------------------------


def verify_files(repository: Path, *, lock_timeout_s: float | None) -> FileCheck:
    """Every file of the local cube repository against its file record, under the
    repository's commit lock (no commit is then between its files and their record)."""
    sidecar = cube_sidecar(repository)
    with _commit_lock(sidecar.lock("commit"), lock_timeout_s, f"cube at {repository}"):
        return check_files(Path(repository), sidecar.file_record)


def lost_tiles(repository: Path, group: str, held: set[str] | None) -> str | None:
    """Whether the tip lost what the history says it holds: the newest darts commit of
    ``group`` wrote a tile whose record the tip lacks (``held``: the tile ids of the
    tip's records, None when the tip holds no cube), or the history cannot be read.
    Only removals drop records, so the tip of an intact repository always holds the
    tile its newest commit wrote. Reads back to that commit, at most `_HISTORY_DEPTH`
    commits (a group never written, beside others, would otherwise read them all)."""
    text = str(repository)
    where = f"Icechunk repository at {text}"
    try:
        storage = icechunk_storage(text, s3=None, net=None, purpose="check the cube")
        repo = icechunk.Repository.open(storage, icechunk_config(text, None))
        newest = None
        for depth, info in enumerate(repo.ancestry(branch="main")):
            if depth >= _HISTORY_DEPTH:
                break
            metadata = info.metadata or {}
            if info.message.startswith(REMOVAL_MESSAGE) and metadata.get("group", group) == group:
                return None  # removals drop records: nothing to expect
            if metadata.get("group") == group and "tile_id" in metadata:
                newest = str(metadata["tile_id"])
                break
    except icechunk.IcechunkError as error:
        return str(storage_failure("read the history of", where, error, remote=False))
    if newest is None or (held is not None and newest in held):
        return None
    if held is None:
        return (
            f"its history has tile commits (the newest: tile {newest}), but the branch tip "
            "holds no cube: the tip snapshot is damaged"
        )
    return (
        f"the newest commit wrote tile {newest}, but the branch tip holds no record of it: "
        "the tip snapshot is damaged"
    )


@contextmanager
def _commit_lock(path: Path, timeout: float | None, what: str) -> Iterator[None]:
    """The commit lock, or nothing where it cannot be taken (a cube on a read-only
    disk, which no commit changes either)."""
    try:
        held = contextlib.ExitStack()
        held.enter_context(hold_lock(path, timeout, what))
    except StoreLockTimeout:
        raise
    except OSError:  # StoreLockTimeout is one too (a TimeoutError), hence the above
        yield
        return
    with held:
        yield
