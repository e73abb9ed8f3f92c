"""The procedural datacube: a large fixed grid, filled one source tile at a time.

A cube is one Zarr v3 group in an Icechunk repository (a local directory or
``s3://bucket/prefix``), holding one 2-D ``(y, x)`` array per variable over the whole
grid (layout: :mod:`darts.store.datacube_schema`). Tiles are fetched from a
:class:`TileSource` on demand and committed one per Icechunk commit, together with a
per-tile record (:mod:`darts.store.datacube_records`) that says the tile is complete.
Readers only ever trust the records: unwritten pixels read as fill values, and a region
whose tiles are not all recorded is refused offline rather than read (pitfall 5).

Writers and commits:

- Local repositories: Icechunk's local storage can silently lose one of two concurrent
  commits (pitfall 13), so every commit happens under an OS file lock next to the
  repository (``<repo>.lock``), on a session opened from the branch tip *under* the
  lock. That also makes partial-chunk writes safe: a tile that covers part of a chunk
  rewrites that chunk from the tip, so a neighbour's pixels already in it are kept.
- S3 repositories: no lock can span machines; commits use Icechunk's conditional
  writes and rebase only when nothing conflicts, and a conflicting commit is redone
  from scratch on a fresh session (bounded retries).
- Either way, each commit is verified on a freshly opened repository: the tile's record
  must be on the branch tip, else the write is retried and finally reported.

CF georeferencing (``x``/``y`` coordinates, ``spatial_ref``; see
:mod:`darts.store.datacube_schema`) is written with the cube. A cube of an earlier
darts version lacks it and is read as it is (DARTS never reads it); its next tile
write adds it in the same commit, under the same lock, or
:meth:`Datacube.add_georeferencing` does so on its own.
"""

from __future__ import annotations

import asyncio
import functools
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

import icechunk
import numpy as np
import xarray as xr
import zarr
from zarr.core.sync import sync

from darts.grid.cube import Bounds, Window
from darts.net.icechunk_storage import (
    check_remote_access,
    icechunk_config,
    icechunk_storage,
    is_remote,
    parse_s3_repository,
)
from darts.store.cube_spec import CubeSpec, TileBuffer, TileFetch, TileSource
from darts.store.datacube_copy import copy_tile
from darts.store.datacube_errors import (
    CubeCommitError,
    CubeFillError,
    CubeMismatchError,
    CubeNotFoundError,
    CubeRegionError,
    CubeStorageError,
    DatacubeError,
    IncompleteCubeError,
    NotACubeError,
    storage_failure,
)
from darts.store.datacube_read import read_windows
from darts.store.datacube_records import (
    TILES_GROUP,
    TileRecord,
    node_name,
    normalise_source,
    records_path,
)
from darts.store.datacube_schema import (
    add_georeferencing,
    create_cube_group,
    georeferencing_keys,
    spec_differences,
    stored_spec,
)
from darts.store.locks import hold_lock

if TYPE_CHECKING:
    from darts.net.settings import NetworkSettings, S3Settings

# The errors are re-exported so callers need one import for the whole datacube API.
__all__ = [
    "CubeCommitError",
    "CubeFillError",
    "CubeMismatchError",
    "CubeNotFoundError",
    "CubeRegionError",
    "CubeStorageError",
    "Datacube",
    "DatacubeError",
    "IncompleteCubeError",
    "NotACubeError",
    "TileRecord",
]

BRANCH = "main"
# Commits that conflicted (S3) or did not show up on the tip are redone this often.
_MAX_COMMIT_ATTEMPTS = 8
# A writer holding the lock writes one tile (minutes at most for a 2 m tile); waiting
# an hour means something is stuck, and the caller gets an error instead of a hang.
DEFAULT_LOCK_TIMEOUT_S = 3600.0
# Test hook, called with the tile id after a tile's pixels and record are written and
# before they are committed (the crash tests kill the process there).
_before_commit: Callable[[str], None] | None = None


P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def _storage_errors(action: str, cube: str, *, remote: bool) -> Iterator[None]:
    """Icechunk's own errors (a multi-line report each) as one readable DartsError."""
    try:
        yield
    except icechunk.IcechunkError as error:
        raise storage_failure(action, cube, error, remote=remote) from error


def _translating(
    action: str,
) -> Callable[[Callable[Concatenate[Datacube, P], R]], Callable[Concatenate[Datacube, P], R]]:
    def decorate(
        method: Callable[Concatenate[Datacube, P], R],
    ) -> Callable[Concatenate[Datacube, P], R]:
        @functools.wraps(method)
        def wrapper(self: Datacube, *args: P.args, **kwargs: P.kwargs) -> R:
            with _storage_errors(action, self.description, remote=self.is_remote):
                return method(self, *args, **kwargs)

        return wrapper

    return decorate


class Datacube:
    """One datacube (one group of one Icechunk repository). Create with :meth:`open`."""

    spec: CubeSpec
    location: str
    group: str

    def __init__(
        self,
        *,
        spec: CubeSpec,
        location: str,
        group: str,
        repo: icechunk.Repository,
        storage: icechunk.Storage,
        config: icechunk.RepositoryConfig,
        lock_path: Path | None,
        lock_timeout_s: float | None,
        s3: S3Settings | None,
        net: NetworkSettings | None,
    ) -> None:
        self.spec = spec
        self.location = location
        self.group = group
        self._repo = repo
        self._storage = storage
        self._config = config
        self._lock_path = lock_path
        self._lock_timeout_s = lock_timeout_s
        self._s3 = s3
        self._net = net
        # The branch tip's snapshot id, a read-only store on it and its opened arrays:
        # reused by reads until the tip moves (opening the group and its arrays costs
        # a few ms of metadata per read, as much as a small window's pixels).
        self._reader: tuple[str, icechunk.IcechunkStore, dict[str, zarr.Array]] | None = None

    # -- opening ----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        location: str | Path,
        spec: CubeSpec,
        *,
        group: str = "",
        create: bool = True,
        s3: S3Settings | None = None,
        net: NetworkSettings | None = None,
        lock_timeout_s: float | None = DEFAULT_LOCK_TIMEOUT_S,
    ) -> Datacube:
        """Open the cube at ``location`` (``group``: "" for the repository root, or one
        top-level group such as "2000-2019"), creating it when absent and ``create``.

        Raises :class:`CubeMismatchError` if the stored cube was made with another
        spec, :class:`NotACubeError` if the location holds something else, and
        :class:`CubeNotFoundError` if it is absent and ``create`` is false.
        """
        _check_group_name(group)
        remote = is_remote(location)
        if remote:
            text = str(location).rstrip("/")
            parse_s3_repository(text)
            path, lock_path = None, None
        else:
            path = Path(location).expanduser().absolute()
            text = str(path)
            # Next to the repository, never inside it: a deleted repository must not
            # take the lock that another process is waiting on with it.
            lock_path = path.with_name(path.name + ".lock")
            if path.exists() and not path.is_dir():
                raise NotACubeError(
                    f"datacube location {path} is a file, not a directory; point the "
                    "cube location at a directory"
                )
        what = _describe(spec.kind, text, group)
        not_found = CubeNotFoundError(
            f"there is no {what}; fill it first (online, e.g. `darts inference "
            "prep-data sentinel2 --aux ...`) or point the cube location at an "
            "existing cube"
        )
        # Icechunk makes the directory of local storage as soon as it looks at it.
        if path is not None and not create and not path.exists():
            raise not_found
        storage = icechunk_storage(text, s3=s3, net=net, purpose=f"open the {what}")
        config = icechunk_config(text, net)
        with _storage_errors("open", what, remote=remote):
            return cls._open(
                storage, config, spec=spec, location=text, group=group, path=path,
                lock_path=lock_path, lock_timeout_s=lock_timeout_s, create=create,
                not_found=not_found, s3=s3, net=net,
            )  # fmt: skip

    @classmethod
    def _open(
        cls,
        storage: icechunk.Storage,
        config: icechunk.RepositoryConfig,
        *,
        spec: CubeSpec,
        location: str,
        group: str,
        path: Path | None,
        lock_path: Path | None,
        lock_timeout_s: float | None,
        create: bool,
        not_found: CubeNotFoundError,
        s3: S3Settings | None,
        net: NetworkSettings | None,
    ) -> Datacube:
        what = _describe(spec.kind, location, group)

        def make(repo: icechunk.Repository) -> Datacube:
            return cls(
                spec=spec, location=location, group=group, repo=repo, storage=storage,
                config=config, lock_path=lock_path, lock_timeout_s=lock_timeout_s,
                s3=s3, net=net,
            )  # fmt: skip

        # Fast path, no lock: an existing, matching cube (what every reader sees).
        if icechunk.Repository.exists(storage):
            cube = make(icechunk.Repository.open(storage, config))
            if cube._inspect(cube._repo.readonly_session(branch=BRANCH).store) == "ok":
                return cube
        if not create:
            raise not_found
        # Creation is serialised like commits, so two processes creating at once end
        # up with one repository and one cube.
        with cube_lock(lock_path, lock_timeout_s, what):
            repo = _open_or_create_repository(storage, config, path, what)
            cube = make(repo)
            cube._create_group()
        return cube

    def _inspect(self, store: icechunk.IcechunkStore) -> str:
        """ "ok" if the cube group exists with this spec, "absent" if it can be created;
        raises if the repository holds something else there."""
        try:
            root = zarr.open_group(store, mode="r")
        except FileNotFoundError:
            return "absent"
        root_spec = stored_spec(dict(root.attrs))
        where = f"Icechunk repository at {self.location}"
        if not self.group:
            if root_spec is None:
                children = sorted(root.group_keys())
                if children:
                    raise NotACubeError(
                        f"the {where} holds groups {', '.join(children)} but no cube at "
                        "its root; a root cube would nest them. Open one of those groups "
                        "or choose another location"
                    )
                return "absent"
            node_spec = root_spec
        else:
            if root_spec is not None:
                raise NotACubeError(
                    f"the {where} holds a {root_spec.get('kind')} cube at its root; a cube "
                    f"in group {self.group!r} would be nested inside it. Choose another "
                    "location for this cube"
                )
            try:
                node = root[self.group]
            except KeyError:
                return "absent"
            node_spec = stored_spec(dict(node.attrs)) if isinstance(node, zarr.Group) else None
            if node_spec is None:
                raise NotACubeError(
                    f"{self.group!r} in the {where} is not a DARTS datacube; it is left "
                    "untouched. Choose another group or location"
                )
        differences = spec_differences(node_spec, self.spec)
        if differences:
            group = f" (group {self.group!r})" if self.group else ""
            raise CubeMismatchError(f"datacube at {self.location}{group}", differences)
        return "ok"

    def _create_group(self) -> None:
        for _ in range(_MAX_COMMIT_ATTEMPTS):
            session = self._repo.writable_session(BRANCH)
            if self._inspect(session.store) == "ok":
                return
            root = zarr.open_group(session.store, mode="a")
            create_cube_group(root, self.group, self.spec)
            try:
                session.commit(f"darts: create {self.description}")
            except icechunk.ConflictError:
                _conflict_pause()  # another process created something: look again
        if self._inspect(self._repo.readonly_session(branch=BRANCH).store) != "ok":
            raise CubeCommitError(
                f"could not create the {self.description}: other writers kept changing "
                "the repository. Try again"
            )

    # -- what is there ----------------------------------------------------------------

    @property
    def description(self) -> str:
        """For messages: "arcticdem-10m datacube at /data/aux/arcticdem (group 'x')"."""
        return _describe(self.spec.kind, self.location, self.group)

    @property
    def is_remote(self) -> bool:
        return self._lock_path is None

    @_translating("list the tiles of")
    def records(self) -> dict[str, TileRecord]:
        """Every tile record on the branch tip, by tile id."""
        self._check_remote("list the tiles of the " + self.description)
        tiles = self._tiles_group(self._repo.readonly_session(branch=BRANCH).store)
        if tiles is None:
            return {}
        out: dict[str, TileRecord] = {}
        for name, node in tiles.groups():
            record = TileRecord.from_attrs(dict(node.attrs), f"{name!r} of the {self.description}")
            out[record.tile_id] = record
        return out

    @_translating("check the tiles of")
    def missing(self, tile_ids: Iterable[str]) -> list[str]:
        """The tiles of ``tile_ids`` that have no record (in input order, no repeats)."""
        wanted = list(dict.fromkeys(tile_ids))
        if not wanted:
            return []
        self._check_remote("check which tiles the " + self.description + " holds")
        store, _ = self._tip_reader()
        prefix = records_path(self.group)
        # One metadata-key lookup per tile (~0.2 ms) instead of listing every record:
        # a cube with thousands of tiles is asked about a handful per scene.
        keys = [f"{prefix}/{node_name(tile)}/zarr.json" for tile in wanted]
        present = sync(_exist(store, keys))
        return [tile for tile, found in zip(wanted, present, strict=True) if not found]

    def scratch_dir(self) -> Path:
        """Where tile buffers are staged: beside a local repository (same disk, and
        nothing inside the repository itself), the system temp folder for S3."""
        if self._lock_path is None:
            return Path(tempfile.gettempdir()) / "darts-cube-scratch"
        path = Path(self.location)
        return path.with_name(f".{path.name}.scratch")

    def _tiles_group(self, store: icechunk.IcechunkStore) -> zarr.Group | None:
        try:
            return zarr.open_group(store, path=records_path(self.group), mode="r")
        except FileNotFoundError:
            return None

    # -- writing ----------------------------------------------------------------------

    @_translating("write into")
    def write_tile(
        self, tile_id: str, buffer: TileBuffer, fetch: TileFetch, *, if_missing: bool = False
    ) -> TileRecord:
        """Commit one fetched tile: its pixels (unless "empty") and its record, in one
        commit; returns the record once it is verified on the branch tip.

        With ``if_missing``, a tile that another writer committed meanwhile is left as
        it is and its record returned: checked on the tip under the lock (or redone after
        an S3 conflict), so overlapping fills write every tile exactly once."""
        self._check_buffer(tile_id, buffer, fetch)
        source = normalise_source(tile_id, fetch.source)
        what = self.description
        for attempt in range(1, _MAX_COMMIT_ATTEMPTS + 1):
            record = TileRecord.now(tile_id, fetch.status, buffer.window, source)
            self._check_remote(f"write tile {tile_id} into the {what}")
            with cube_lock(self._lock_path, self._lock_timeout_s, what):
                # Opened under the lock, so it starts from the latest tip: partial
                # chunks are merged with what other tiles already wrote into them.
                session = self._repo.writable_session(BRANCH)
                cube = zarr.open_group(session.store, path=self.group, mode="r+")
                if if_missing and (existing := self._record_in(session.store, tile_id)):
                    return existing
                message = f"darts: tile {tile_id} ({fetch.status})"
                if not self._georeferenced(session.store):
                    # A cube of an earlier darts version: it gets its coordinates now,
                    # once, in the tile's commit (so under the same lock).
                    add_georeferencing(cube, self.spec)
                    message += " + CF georeferencing"
                if fetch.status == "filled":
                    copy_tile(cube, buffer, self.spec)
                tiles = cube.require_group(TILES_GROUP)
                tiles.require_group(node_name(tile_id)).attrs.put(record.to_attrs())
                if _before_commit is not None:
                    _before_commit(tile_id)
                try:
                    session.commit(
                        message,
                        metadata={"tile_id": tile_id, "group": self.group},
                        # Rebase onto concurrent S3 commits only when they touched
                        # nothing of ours (else the whole write is redone below).
                        rebase_with=icechunk.ConflictDetector() if self.is_remote else None,
                    )
                except (icechunk.ConflictError, icechunk.RebaseFailedError):
                    conflicted = True
                else:
                    conflicted = False
            if conflicted:
                _conflict_pause(attempt)  # outside the lock: others may go meanwhile
            elif self._committed(record):
                return record
        raise CubeCommitError(
            f"tile {tile_id} of the {what} did not stay committed after "
            f"{_MAX_COMMIT_ATTEMPTS} attempts (concurrent writers kept conflicting, or "
            "commits were lost). Run again; if it persists, check that no other program "
            "writes this repository"
        )

    @_translating("add georeferencing to")
    def add_georeferencing(self) -> bool:
        """Add the CF georeferencing (``x``/``y``, ``spatial_ref``, CF attributes) to a
        cube made by an earlier darts version, in a commit of its own; its pixels and
        records stay as they are. False if the cube has it already (nothing written).

        Only needed for a cube that gets no more tiles: the next tile write adds it
        anyway."""
        what = self.description
        for attempt in range(1, _MAX_COMMIT_ATTEMPTS + 1):
            self._check_remote(f"add georeferencing to the {what}")
            with cube_lock(self._lock_path, self._lock_timeout_s, what):
                session = self._repo.writable_session(BRANCH)
                if self._georeferenced(session.store):
                    return False
                add_georeferencing(
                    zarr.open_group(session.store, path=self.group, mode="r+"), self.spec
                )
                try:
                    session.commit(
                        "darts: add CF georeferencing",
                        rebase_with=icechunk.ConflictDetector() if self.is_remote else None,
                    )
                except (icechunk.ConflictError, icechunk.RebaseFailedError):
                    conflicted = True
                else:
                    conflicted = False
            if conflicted:
                _conflict_pause(attempt)
                continue
            fresh = icechunk.Repository.open(self._storage, self._config)
            if self._georeferenced(fresh.readonly_session(branch=BRANCH).store):
                return True
        raise CubeCommitError(
            f"could not add the georeferencing to the {what}: concurrent writers kept "
            "conflicting, or commits were lost. Run again"
        )

    def _georeferenced(self, store: icechunk.IcechunkStore) -> bool:
        """Whether the cube in ``store``'s snapshot has its CF georeferencing (all of
        it or none: it is added in one commit)."""
        return all(sync(_exist(store, georeferencing_keys(self.group))))

    def _committed(self, record: TileRecord) -> bool:
        """Whether ``record`` is on the branch tip, seen by a freshly opened repository
        (nothing cached from the commit that should have put it there)."""
        fresh = icechunk.Repository.open(self._storage, self._config)
        store = fresh.readonly_session(branch=BRANCH).store
        return self._record_in(store, record.tile_id) == record

    def _record_in(self, store: icechunk.IcechunkStore, tile_id: str) -> TileRecord | None:
        """The record of ``tile_id`` in ``store``'s snapshot, if there is one."""
        path = f"{records_path(self.group)}/{node_name(tile_id)}"
        try:
            node = zarr.open_group(store, path=path, mode="r")
        except FileNotFoundError:
            return None
        return TileRecord.from_attrs(dict(node.attrs), path)

    def _check_buffer(self, tile_id: str, buffer: TileBuffer, fetch: TileFetch) -> None:
        if fetch.status not in ("filled", "empty"):
            raise ValueError(f"tile {tile_id!r}: unknown fetch status {fetch.status!r}")
        window = buffer.window
        if window.is_empty or window.intersection(self.spec.grid.full) != window:
            raise ValueError(
                f"tile {tile_id!r}: window {window} is empty or outside the "
                f"{self.description} ({self.spec.grid.height}×{self.spec.grid.width} px)"
            )
        for variable in self.spec.variables:
            array = buffer.arrays.get(variable.name)
            if array is None:
                raise ValueError(f"tile {tile_id!r}: the buffer has no {variable.name!r}")
            if array.shape != window.shape or array.dtype != np.dtype(variable.dtype):
                raise ValueError(
                    f"tile {tile_id!r}: buffer {variable.name!r} is {array.dtype}"
                    f"{array.shape}, the cube wants {variable.dtype}{window.shape}"
                )

    def fill(
        self,
        tile_ids: Sequence[str],
        source: TileSource,
        *,
        on_tile: Callable[[str, TileRecord], None] | None = None,
        fetch_workers: int = 2,
    ) -> list[TileRecord]:
        """Fetch and write every tile of ``tile_ids`` that has no record yet.

        Fetches overlap (``fetch_workers`` at once), writes are one at a time. A tile
        that fails does not stop the others; :class:`CubeFillError` then lists every
        failure. Returns the records written, in the order of ``tile_ids``.
        """
        from darts.store.datacube_fill import fill_tiles

        return fill_tiles(self, tile_ids, source, on_tile=on_tile, workers=fetch_workers)

    # -- reading ----------------------------------------------------------------------

    @_translating("read")
    def read(self, window: Window, variables: Sequence[str] | None = None) -> xr.Dataset:
        """The pixels of ``window`` as a Dataset with dims ("y", "x") and pixel-centre
        coordinates; raw dtypes, unwritten pixels read as each variable's fill value."""
        grid = self.spec.grid
        if window.is_empty or window.intersection(grid.full) != window:
            raise CubeRegionError(
                f"pixel window {window} is empty or not inside the {self.description} "
                f"({grid.height}×{grid.width} px)"
            )
        names = self._variable_names(variables)
        self._check_remote("read the " + self.description)
        store, opened = self._tip_reader()
        arrays = {name: opened[name] for name in names}
        variables = {name: self.spec.variable(name) for name in names}
        divisors = {name: v.scale for name, v in variables.items() if v.scale is not None}
        values = read_windows(store, arrays, window, divisors)  # only the chunks needed
        data_vars: dict[str, xr.Variable] = {}
        for name, variable in variables.items():
            attrs = {**variable.attrs, "nodata": variable.fill_value}
            data_vars[name] = xr.Variable(("y", "x"), values[name], attrs=attrs)
        transform = grid.window_transform(window)
        return xr.Dataset(
            data_vars,
            coords={"y": grid.y_coords(window), "x": grid.x_coords(window)},
            attrs={
                "crs": grid.crs,
                "transform": [float(v) for v in tuple(transform)[:6]],
                "cube_kind": self.spec.kind,
            },
        )

    def _tip_reader(self) -> tuple[icechunk.IcechunkStore, dict[str, zarr.Array]]:
        """A read-only store on the branch tip and the cube's arrays opened on it;
        the same ones as last time while the tip has not moved."""
        snapshot = self._repo.lookup_branch(BRANCH)
        reader = self._reader
        if reader is not None and reader[0] == snapshot:
            return reader[1], reader[2]
        store = self._repo.readonly_session(snapshot_id=snapshot).store
        cube = zarr.open_group(store, path=self.group, mode="r")
        arrays: dict[str, zarr.Array] = {}
        for variable in self.spec.variables:
            array = cube[variable.name]
            assert isinstance(array, zarr.Array)
            arrays[variable.name] = array
        self._reader = (snapshot, store, arrays)  # one assignment: safe across threads
        return store, arrays

    def load(
        self,
        bounds: Bounds,
        buffer: float = 0.0,
        *,
        source: TileSource,
        fetch: bool,
        variables: Sequence[str] | None = None,
    ) -> xr.Dataset:
        """The cube over ``bounds`` grown by ``buffer`` (CRS units), making sure every
        tile it needs is recorded first: fetched when ``fetch``, else
        :class:`IncompleteCubeError` listing all missing tiles (never fill values)."""
        grid = self.spec.grid
        window = grid.window(bounds, buffer)
        if window.is_empty:
            raise CubeRegionError(
                f"the region {tuple(bounds)} (buffer {buffer:g}) does not overlap the "
                f"{self.description}, which covers {grid.bounds} in {grid.crs}. Check "
                "the region's coordinate reference system"
            )
        missing = self.missing(source.tiles_for(window))
        if missing:
            if not fetch:
                raise IncompleteCubeError(self.description, missing, source.description)
            self.fill(missing, source)
        return self.read(window, variables)

    def _variable_names(self, variables: Sequence[str] | None) -> list[str]:
        known = [v.name for v in self.spec.variables]
        if variables is None:
            return known
        unknown = [name for name in variables if name not in known]
        if unknown:
            raise DatacubeError(
                f"the {self.description} has no variable(s) {', '.join(unknown)}; "
                f"it has {', '.join(known)}"
            )
        return list(variables)

    def _check_remote(self, purpose: str) -> None:
        if self._lock_path is None:
            check_remote_access(self.location, s3=self._s3, net=self._net, purpose=purpose)

    def __repr__(self) -> str:
        return f"Datacube({self.description})"


@contextmanager
def cube_lock(lock_path: Path | None, timeout: float | None, what: str) -> Iterator[None]:
    """The repository's commit lock (local repositories), or nothing (S3)."""
    if lock_path is None:
        yield
        return
    with hold_lock(lock_path, timeout, what):
        yield


def _open_or_create_repository(
    storage: icechunk.Storage, config: icechunk.RepositoryConfig, path: Path | None, what: str
) -> icechunk.Repository:
    if icechunk.Repository.exists(storage):
        return icechunk.Repository.open(storage, config)
    if path is not None and path.is_dir() and any(path.iterdir()):
        raise NotACubeError(
            f"{path} exists and is not an Icechunk repository, so it cannot hold the "
            f"{what}; it is left untouched. Point the cube location at a new or empty "
            "directory"
        )
    try:
        return icechunk.Repository.create(storage, config)
    except icechunk.IcechunkError:
        # On S3 another process may have created it a moment ago (no lock there).
        if icechunk.Repository.exists(storage):
            return icechunk.Repository.open(storage, config)
        raise


async def _exist(store: icechunk.IcechunkStore, keys: list[str]) -> list[bool]:
    return list(await asyncio.gather(*(store.exists(key) for key in keys)))


def _conflict_pause(attempt: int = 1) -> None:
    # Jittered, growing: writers that collided should not collide again in lock-step.
    time.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))


def _check_group_name(group: str) -> None:
    if group and ("/" in group or group.startswith(("_", ".")) or group.strip() != group):
        raise ValueError(
            f"cube group must be '' (the root) or one top-level name without '/', not "
            f"starting with '_' or '.', got {group!r}"
        )


def _describe(kind: str, location: str, group: str) -> str:
    return f"{kind} datacube at {location}" + (f" (group {group!r})" if group else "")
