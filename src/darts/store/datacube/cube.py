"""The procedural datacube: a large fixed grid, filled one source tile at a time.

A cube is one Zarr v3 group in an Icechunk repository (a local directory or
``s3://bucket/prefix``), holding one 2-D ``(y, x)`` array per variable over the whole
grid (layout: :mod:`darts.store.datacube.schema`). Tiles are fetched from a
:class:`TileSource` on demand and committed one per Icechunk commit, together with a
per-tile record (:mod:`darts.store.datacube.records`) that says the tile is complete.
Readers only ever trust the records: unwritten pixels read as fill values, and a region
whose tiles are not all recorded is refused offline rather than read (pitfall 5).

Writers and commits:

- Local repositories: Icechunk's local storage can silently lose one of two concurrent
  commits (pitfall 13), so every commit happens under an OS file lock in the cube's
  hidden folder beside the repository (``.<repo>.darts/locks/``, see
  :mod:`darts.store.sidecar`), on a session opened from the branch tip *under* the
  lock. That also makes partial-chunk writes safe: a tile that covers part of a chunk
  rewrites that chunk from the tip, so a neighbour's pixels already in it are kept.
- S3 repositories: no lock can span machines; commits use Icechunk's conditional
  writes and rebase only when nothing conflicts, and a conflicting commit is redone
  from scratch on a fresh session (bounded retries).
- Either way, each commit is verified on a freshly opened repository: the tile's record
  must be on the branch tip, else the write is retried and finally reported.

Fetching is de-duplicated too, not only writing: a fill claims each tile before it
fetches it (:mod:`darts.store.claims`), and a process that finds a tile claimed waits
for its record and reuses it. Opening a cube for writing removes what dead processes
of this host left in the hidden folder (tile buffers, claims) and the lock and scratch
folder an earlier darts version kept beside the cube.

CF georeferencing (``x``/``y`` coordinates, ``spatial_ref``; see
:mod:`darts.store.datacube.schema`) is written with the cube. A cube of an earlier
darts version lacks it and is read as it is (DARTS never reads it); its next tile
write adds it in the same commit, under the same lock, or
:meth:`Datacube.add_georeferencing` does so on its own.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

import icechunk
import numpy as np
import xarray as xr
import zarr
from zarr.buffer import default_buffer_prototype

from darts.grid.cube import Bounds, Window
from darts.net.icechunk_storage import (
    check_remote_access,
    icechunk_config,
    icechunk_storage,
    is_remote,
    parse_s3_repository,
)
from darts.store.claims import ClaimBoard
from darts.store.datacube.aio import run
from darts.store.datacube.errors import (
    CorruptCubeChunkError,
    CubeCommitError,
    CubeMismatchError,
    CubeNotFoundError,
    CubeRegionError,
    DamagedCubeError,
    DatacubeError,
    IncompleteCubeError,
    NotACubeError,
    storage_failure,
)
from darts.store.datacube.file_record import record_commit
from darts.store.datacube.fill import fill_tiles
from darts.store.datacube.read import DamagedChunk, read_windows
from darts.store.datacube.records import (
    TILES_GROUP,
    TileRecord,
    node_name,
    normalise_source,
    records_path,
)
from darts.store.datacube.schema import (
    add_georeferencing,
    create_cube_group,
    georeferencing_keys,
    spec_differences,
    stored_spec,
)
from darts.store.datacube.spec import CubeSpec, TileBuffer, TileFetch, TileSource
from darts.store.datacube.tile_copy import copy_tile
from darts.store.locks import hold_lock, remove_unused_lock
from darts.store.scratch import remove_legacy_scratch, remove_stale_buffers
from darts.store.sidecar import Sidecar, cube_sidecar, legacy_cube_lock, legacy_cube_scratch
from darts.store.waiting import DEFAULT_WAIT_S

if TYPE_CHECKING:
    from darts.net.settings import NetworkSettings, S3Settings

log = logging.getLogger(__name__)

BRANCH = "main"
# Commits that conflicted (S3) or did not show up on the tip are redone this often.
_MAX_COMMIT_ATTEMPTS = 8
# A writer holding the lock writes one tile (minutes at most for a 2 m tile); waiting
# an hour means something is stuck, and the caller gets an error instead of a hang.
# The same bound applies to waiting for a tile another process has claimed.
DEFAULT_LOCK_TIMEOUT_S = DEFAULT_WAIT_S
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
        sidecar: Sidecar,
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
        self._sidecar = sidecar
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
        sidecar = cube_sidecar(text)
        if path is not None:
            # In the hidden folder beside the repository, never inside it: a deleted
            # repository must not take the lock another process is waiting on.
            lock_path = sidecar.lock("commit")
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
            cube = cls._open(
                storage, config, spec=spec, location=text, group=group, path=path,
                sidecar=sidecar, lock_path=lock_path, lock_timeout_s=lock_timeout_s,
                create=create, not_found=not_found, s3=s3, net=net,
            )  # fmt: skip
        if create:  # opened for writing
            cube.remove_leftovers()
        return cube

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
        sidecar: Sidecar,
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
                config=config, sidecar=sidecar, lock_path=lock_path,
                lock_timeout_s=lock_timeout_s, s3=s3, net=net,
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
            cube._record_files()
        return cube

    def _inspect(self, store: icechunk.IcechunkStore) -> str:
        """ "ok" if the cube group exists with this spec, "absent" if it can be created;
        raises if the repository holds something else there."""
        try:
            root = zarr.open_group(store, mode="r")
            root_attrs = dict(root.attrs)
        except FileNotFoundError:
            return "absent"
        except (ValueError, TypeError, KeyError) as error:  # JSONDecodeError is a ValueError
            # Damaged metadata (a changed byte in the repository's snapshot) must not end
            # as an internal error, nor be taken for an empty repository.
            raise DamagedCubeError(
                f"the {self.description} at {self.location} cannot be read: its metadata is "
                f"damaged ({type(error).__name__}: {error}); `darts cache verify` lists the "
                "damage, `darts cache repair` says what to do"
            ) from None
        root_spec = stored_spec(root_attrs)
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
        """The tiles of ``tile_ids`` that have no usable record (in input order, no
        repeats): none, or one that does not parse (a damaged record is not trusted,
        so staging fetches the tile again and rewrites it)."""
        wanted = list(dict.fromkeys(tile_ids))
        if not wanted:
            return []
        self._check_remote("check which tiles the " + self.description + " holds")
        store, _ = self._tip_reader()
        prefix = records_path(self.group)
        # One small metadata read per tile (~0.3 ms) instead of listing every record:
        # a cube with thousands of tiles is asked about a handful per scene.
        keys = [f"{prefix}/{node_name(tile)}/zarr.json" for tile in wanted]
        documents = run(_get_all(store, keys))
        return [
            tile
            for tile, key, document in zip(wanted, keys, documents, strict=True)
            if not self._usable_record(document, key)
        ]

    def _usable_record(self, document: bytes | None, where: str) -> bool:
        if document is None:
            return False
        try:
            attributes = json.loads(document).get("attributes") or {}
            TileRecord.from_attrs(dict(attributes), where)
        except (ValueError, AttributeError, DatacubeError) as error:
            log.warning("%s: %s", self.description, error)
            return False
        return True

    @_translating("read a tile record of")
    def record(self, tile_id: str) -> TileRecord | None:
        """The record of ``tile_id`` on the branch tip, or None."""
        self._check_remote("read a tile record of the " + self.description)
        store, _ = self._tip_reader()
        return self._record_in(store, tile_id)

    def scratch_dir(self) -> Path:
        """Where tile buffers are staged: the cube's hidden folder, beside a local
        repository (same disk, nothing inside the repository itself), or a per-user
        folder of the system temp folder for S3."""
        return self._sidecar.scratch

    def claims(self) -> ClaimBoard:
        """Who is fetching which tile of this cube (group), across processes."""
        return ClaimBoard(self._sidecar.claims(self.group))

    @property
    def wait_s(self) -> float | None:
        """How long to wait for another process (its lock or its claim on a tile)."""
        return self._lock_timeout_s

    def remove_leftovers(self) -> None:
        """Remove what dead processes of this host left in the cube's hidden folder
        (tile buffers, claims), and the lock file and scratch folder an earlier darts
        version kept beside a local cube (the lock only if no process holds it)."""
        remove_stale_buffers(self.scratch_dir())
        self.claims().remove_dead()
        if self._lock_path is not None:
            path = Path(self.location)
            remove_unused_lock(legacy_cube_lock(path))
            remove_legacy_scratch(legacy_cube_scratch(path))

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
                if if_missing and (existing := self._trusted_record_in(session.store, tile_id)):
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
                    self._record_files()
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
                    self._record_files()
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
        return all(run(_exist(store, georeferencing_keys(self.group))))

    def _committed(self, record: TileRecord) -> bool:
        """Whether ``record`` is on the branch tip, seen by a freshly opened repository
        (nothing cached from the commit that should have put it there)."""
        fresh = icechunk.Repository.open(self._storage, self._config)
        store = fresh.readonly_session(branch=BRANCH).store
        return self._record_in(store, record.tile_id) == record

    def _trusted_record_in(self, store: icechunk.IcechunkStore, tile_id: str) -> TileRecord | None:
        """`_record_in`, but a damaged record is None: the tile is written again."""
        try:
            return self._record_in(store, tile_id)
        except DatacubeError as error:
            log.warning("%s: %s; writing the tile again", self.description, error)
            return None

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
        on_reused: Callable[[str, TileRecord], None] | None = None,
        fetch_workers: int = 2,
    ) -> list[TileRecord]:
        """Fetch and write every tile of ``tile_ids`` that has no record yet.

        Fetches overlap (``fetch_workers`` at once), writes are one at a time. A tile
        another process is fetching is not fetched again: the fill waits for its
        record (at most the cube's lock timeout) and reports it to ``on_reused``. A
        tile that fails does not stop the others; :class:`CubeFillError` then lists
        every failure. Returns the records written here, in the order of ``tile_ids``.
        """
        return fill_tiles(
            self, tile_ids, source, on_tile=on_tile, on_reused=on_reused, workers=fetch_workers
        )

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
        try:
            values = read_windows(store, arrays, window, divisors)  # only the chunks needed
        except DamagedChunk as damaged:
            raise self._corrupt(damaged) from None
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

    def _corrupt(self, damaged: DamagedChunk) -> CorruptCubeChunkError:
        """The cube's error for a damaged chunk, naming the tiles its pixels belong to."""
        chunk = f"chunk {damaged.key}" if damaged.key else "chunk"
        tiles: list[str] = []
        if damaged.index is not None:
            row, col = damaged.index
            edge = self.spec.chunk
            area = Window(row * edge, (row + 1) * edge, col * edge, (col + 1) * edge)
            tiles = sorted(
                tile_id
                for tile_id, record in self.records().items()
                if record.status == "filled" and not record.pixel_window.intersection(area).is_empty
            )
        return CorruptCubeChunkError(self.description, damaged.array, chunk, damaged.reason, tiles)

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

    # -- maintenance (`darts cache`: verify, repair, prune, export) -----------------------

    def tip_store(self) -> icechunk.IcechunkStore:
        """A read-only store on the branch tip: the snapshot :meth:`read` reads."""
        self._check_remote("read the " + self.description)
        return self._tip_reader()[0]

    @_translating("change")
    def commit_change(self, message: str, edit: Callable[[zarr.Group], object]) -> None:
        """One commit of ``edit`` applied to the cube group, on a session opened from the
        branch tip under the commit lock (so no tile write interleaves). ``edit`` runs
        again from a fresh tip when an S3 commit conflicts."""
        for attempt in range(1, _MAX_COMMIT_ATTEMPTS + 1):
            self._check_remote(f"change the {self.description}")
            with cube_lock(self._lock_path, self._lock_timeout_s, self.description):
                session = self._repo.writable_session(BRANCH)
                edit(zarr.open_group(session.store, path=self.group, mode="r+"))
                if not session.has_uncommitted_changes:
                    return
                try:
                    session.commit(
                        message,
                        metadata={"group": self.group},
                        rebase_with=icechunk.ConflictDetector() if self.is_remote else None,
                    )
                    self._record_files()
                    return
                except (icechunk.ConflictError, icechunk.RebaseFailedError):
                    pass
            _conflict_pause(attempt)
        raise CubeCommitError(
            f"could not change the {self.description}: concurrent writers kept "
            "conflicting. Run again"
        )

    @property
    def file_record(self) -> Path | None:
        """Where the record of the repository's files is kept (None: on S3, no record;
        see :mod:`darts.store.datacube.file_record`)."""
        return None if self._lock_path is None else self._sidecar.file_record

    def _record_files(self) -> None:
        """Record the files a commit just added (local repositories; call under the
        commit lock, after the commit)."""
        if self._lock_path is not None:
            record_commit(Path(self.location), self._sidecar.file_record)

    @contextmanager
    def exclusive(self) -> Iterator[icechunk.Repository]:
        """The repository while this process holds its commit lock: no darts process
        writes meanwhile (a writer's chunks exist before its commit, so garbage
        collection must not run beside one). Local repositories only: no lock spans the
        machines that share an S3 repository."""
        if self._lock_path is None:
            raise DatacubeError(
                f"the {self.description} is on S3, where no lock keeps other writers out; "
                "run this on a local cube"
            )
        with (
            cube_lock(self._lock_path, self._lock_timeout_s, self.description),
            _storage_errors("maintain", self.description, remote=False),
        ):
            yield self._repo

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


async def _get_all(store: icechunk.IcechunkStore, keys: list[str]) -> list[bytes | None]:
    """The bytes stored under each key (None: absent)."""
    prototype = default_buffer_prototype()
    found = await asyncio.gather(*(store.get(key, prototype=prototype) for key in keys))
    return [None if buffer is None else buffer.to_bytes() for buffer in found]


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
