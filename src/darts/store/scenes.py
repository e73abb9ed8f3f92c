"""The raw-data store for optical scenes: one Zarr v3 group per scene.

Layout under the store root (``<DARTS_DATA_DIR>/sentinel2/<source>/``)::

    <scene_id>.zarr/               one zarr v3 group per scene
      zarr.json                    group metadata, consolidated: lists the arrays
      darts_scene.json             commit record: the truth about what is stored
      x/ y/ spatial_ref/           coordinates and CRS (written with the first band)
      <band>/                      one 2-D array per band, e.g. B02/ or SCL/
      .staging/                    bands being written (anything here is unfinished)
    .darts/locks/<scene_id>.lock   inter-process lock, beside (not in) the scene, in the
                                   store's one hidden folder (darts.store.sidecar)

How a band gets in, and why each step is there (see docs pitfalls 1–3):

1. under the scene lock, so two stagers of one scene cannot interleave;
2. leftovers of earlier crashes are removed first;
3. the band is written into ``.staging/``, read back and compared, fsync'ed and
   fingerprinted (names, sizes, SHA-256 of every file);
4. it is published by one ``os.rename`` into ``<band>/``;
5. the group metadata is rewritten to list it;
6. the commit record is atomically replaced with one that lists it: the commit.

A process killed anywhere leaves either the old record (the band does not
exist, and its folder is a leftover) or the new one (the band is complete).
Readers trust only the record; ``open`` also checks that every file the record
lists is present with its size, so a deleted chunk is an error, not zeros, and
every chunk ends with its CRC-32C, checked whenever it is read
(:mod:`darts.store.checksum`), so changed bytes are an error, not other pixels.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from pyproj import CRS
from zarr.abc.codec import BytesBytesCodec
from zarr.codecs import BloscCodec

from darts.grid.errors import GridError, InconsistentGridError
from darts.grid.scene import DIMS, GRID_MAPPING, Grid, grid_of_band
from darts.store.arrays import ArraySpec, write_staged_array
from darts.store.atomic import fsync_dir, is_temp_name
from darts.store.attrs import band_attributes, fill_value_for, to_json_value
from darts.store.band_reader import read_bands
from darts.store.checked_store import CheckedSceneStore
from darts.store.checksum import CODEC_NAME as CHECKSUM_NAME
from darts.store.checksum import codec as checksum_codec
from darts.store.checksum import has_checksum
from darts.store.encoding import DEFAULT_ENCODING, BandEncoding
from darts.store.errors import (
    CorruptChunkError,
    CorruptDataError,
    DamagedSceneError,
    GridMismatchError,
    MissingBandsError,
    StoreError,
    StoreLockTimeout,
)
from darts.store.georef import band_attrs, spatial_ref_attrs
from darts.store.group import GROUP_METADATA, listed_arrays, listed_metadata, write_group
from darts.store.locks import hold_lock, remove_unused_lock
from darts.store.manifest import check_manifest, manifest_digest
from darts.store.record import RECORD_NAME, ArrayRecord, CommitRecord, read_record, write_record
from darts.store.sidecar import store_sidecar
from darts.store.waiting import DEFAULT_WAIT_S

__all__ = [
    "DEFAULT_ENCODING",
    "BandEncoding",
    "CorruptChunkError",
    "CorruptDataError",
    "DamagedSceneError",
    "GridMismatchError",
    "MissingBandsError",
    "SceneStore",
    "StoreError",
    "StoreLockTimeout",
]

SCENE_SUFFIX = ".zarr"
LOCK_SUFFIX = ".lock"
STAGING = ".staging"
COORDINATES = ("y", "x", GRID_MAPPING)

# Ids and band names become folder names: keep them to one safe path component.
_SCENE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
_BAND_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")

Fetch = Callable[[list[str]], tuple[Mapping[str, Any], Mapping[str, xr.DataArray]]]


def _checkpoint(stage: str, name: str) -> None:
    """Fault-injection seam: called after each durable step of a band write.

    A no-op; the crash tests replace it in a child process to kill that process
    at an exact point ("step", "staged", "published", "listed", "committed").
    """


@dataclass(frozen=True)
class _PreparedBand:
    name: str
    data: xr.DataArray
    grid: Grid
    spec: ArraySpec


class SceneStore:
    """Scenes kept on local disk, complete band by band, safe to share between processes."""

    def __init__(
        self,
        root: Path,
        encoding: BandEncoding = DEFAULT_ENCODING,
        *,
        fsync: bool = True,
        verify_writes: bool = True,
        lock_wait_s: float | None = DEFAULT_WAIT_S,
    ) -> None:
        """``fsync`` makes commits survive power loss (a killed process needs no
        fsync); ``verify_writes`` reads each band back before publishing it;
        ``lock_wait_s`` bounds how long staging waits for another process staging
        the same scene (None: no bound)."""
        self.root = Path(root)
        self.encoding = encoding
        self.fsync = fsync
        self.verify_writes = verify_writes
        self.lock_wait_s = lock_wait_s

    # -- paths (pure) ---------------------------------------------------------------

    def scene_path(self, scene_id: str) -> Path:
        """The scene's zarr group folder; computing it creates nothing."""
        if not _SCENE_ID.match(scene_id):
            raise StoreError(
                f"invalid scene id {scene_id!r}: use letters, digits, '_', '-', '.' "
                "(up to 200 characters, starting with a letter or digit)"
            )
        return self.root / f"{scene_id}{SCENE_SUFFIX}"

    def lock_path(self, scene_id: str) -> Path:
        self.scene_path(scene_id)  # checks the id
        return store_sidecar(self.root).lock(scene_id)

    def _legacy_lock_path(self, scene_id: str) -> Path:
        """Where an earlier darts version kept the lock: beside the scene."""
        scene_dir = self.scene_path(scene_id)
        return scene_dir.with_name(scene_dir.name + LOCK_SUFFIX)

    # -- reading the record -----------------------------------------------------------

    def commit_record(self, scene_id: str) -> CommitRecord | None:
        return read_record(self.scene_path(scene_id))

    def stored_bands(self, scene_id: str) -> set[str]:
        """Bands that are completely written and committed (per the commit record)."""
        record = self.commit_record(scene_id)
        return set(record.bands) if record else set()

    def missing_bands(self, scene_id: str, bands: Iterable[str]) -> list[str]:
        """The requested bands that are not committed, in request order, without repeats."""
        stored = self.stored_bands(scene_id)
        return [b for b in dict.fromkeys(bands) if b not in stored]

    def item(self, scene_id: str) -> dict[str, Any] | None:
        """The STAC item kept with the scene (None if the scene is not stored)."""
        record = self.commit_record(scene_id)
        return record.item if record else None

    def scenes(self) -> list[str]:
        """Ids of scenes that have a commit record (sorted)."""
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name[: -len(SCENE_SUFFIX)]
            for entry in self.root.iterdir()
            if entry.name.endswith(SCENE_SUFFIX) and (entry / RECORD_NAME).is_file()
        )

    # -- locking ----------------------------------------------------------------------

    def lock(self, scene_id: str, timeout: float | None = None) -> AbstractContextManager[None]:
        """Exclusive inter-process lock on one scene (re-entrant within a thread).

        Hold it around "check what is missing → download → write_bands" so that of
        two processes staging the same scene one downloads and the other waits and
        then finds the bands present. ``timeout=None`` waits forever (a dead
        holder releases the lock automatically); otherwise :class:`StoreLockTimeout`.
        """
        return hold_lock(self.lock_path(scene_id), timeout, f"scene {scene_id!r}")

    # -- writing ----------------------------------------------------------------------

    def write_bands(
        self, scene_id: str, item: Mapping[str, Any], bands: Mapping[str, xr.DataArray]
    ) -> list[str]:
        """Add bands to a scene; bands it already has are skipped. Returns the names
        actually written.

        Each array must be 2-D (y, x) with coordinates, on the same grid as the
        scene's other bands (e.g. 20 m SCL resampled to 10 m first). Its values are
        stored exactly as given (dtype included); CRS comes from the array's
        attributes or the item.
        """
        scene_dir = self.scene_path(scene_id)
        item_doc = _item_document(item)
        for name in bands:
            _check_band_name(name)
        with self.lock(scene_id):
            self.cleanup_leftovers(scene_id)
            remove_unused_lock(self._legacy_lock_path(scene_id))
            record = read_record(scene_dir)
            if record is not None:
                _check_same_product(scene_id, record.item, item_doc)
            new = [n for n in bands if record is None or n not in record.bands]
            if not new:
                return []
            # Validate everything before the first byte is written.
            prepared = [self._prepare(n, bands[n], item_doc) for n in new]
            grid = record.grid if record is not None else prepared[0].grid
            for band in prepared:
                if not band.grid.matches(grid):
                    raise GridMismatchError(
                        f"band {band.name!r} of scene {scene_id!r} is on grid "
                        f"{band.grid.describe()}, but the scene's grid is {grid.describe()}; "
                        "resample it onto the scene grid before storing it"
                    )
            staging = scene_dir / STAGING
            staging.mkdir(parents=True, exist_ok=True)
            if record is None:
                coords = self._publish_coordinates(scene_dir, staging, grid, prepared[0].data)
                record = CommitRecord(scene_id, grid, item_doc, bands={}, coords=coords)
            for band in prepared:
                band_record = self._publish(scene_dir, staging, band.name, band.spec, band.data)
                record = record.with_band(band.name, band_record, item_doc)
                # Listing before committing keeps record ⊆ listing (see group.py).
                write_group(scene_dir, record.arrays(), _group_attributes(record), fsync=self.fsync)
                _checkpoint("listed", band.name)
                write_record(scene_dir, record, fsync=self.fsync)
                _checkpoint("committed", band.name)
            _remove_if_empty(staging)
            return new

    def ensure_bands(
        self, scene_id: str, bands: Sequence[str], fetch: Fetch, *, timeout: float | None = None
    ) -> list[str]:
        """Make sure ``bands`` are stored, calling ``fetch(missing)`` at most once.

        ``fetch`` gets the missing band names and returns ``(item, arrays)``. Under
        the scene lock, so concurrent callers for one scene download once: the
        others wait, then find the bands present. Returns the bands fetched here.
        """
        if not self.missing_bands(scene_id, bands):
            return []
        with self.lock(scene_id, timeout):
            missing = self.missing_bands(scene_id, bands)
            if not missing:
                return []
            item, arrays = fetch(list(missing))
            absent = [b for b in missing if b not in arrays]
            if absent:
                raise StoreError(
                    f"fetching scene {scene_id!r} did not deliver band(s) {', '.join(absent)}"
                )
            self.write_bands(scene_id, item, {b: arrays[b] for b in missing})
            return missing

    def discard_bands(self, scene_id: str, bands: Iterable[str]) -> None:
        """Remove bands (e.g. ones ``verify`` found damaged) so they can be staged again."""
        scene_dir = self.scene_path(scene_id)
        with self.lock(scene_id):
            record = read_record(scene_dir)
            drop = [b for b in dict.fromkeys(bands) if record is not None and b in record.bands]
            if record is None or not drop:
                return
            # Removal runs the publish order backwards: un-commit, un-list, delete.
            record = record.without_bands(drop)
            write_record(scene_dir, record, fsync=self.fsync)
            write_group(scene_dir, record.arrays(), _group_attributes(record), fsync=self.fsync)
            for name in drop:
                shutil.rmtree(scene_dir / name, ignore_errors=True)

    # -- reading data -----------------------------------------------------------------

    def open(
        self, scene_id: str, bands: Sequence[str], *, load: bool = False, check: bool = True
    ) -> xr.Dataset:
        """Exactly the requested bands (in that order) as DN, with x/y/spatial_ref.

        Lazy by default (nothing is read until values are used); ``load=True`` reads
        everything now. ``check`` compares the files of the requested bands with
        the commit record (presence and size, a few ``stat`` calls), so a lost
        chunk raises :class:`DamagedSceneError` instead of reading back as nodata.
        Every chunk read, now or later, has its CRC-32C checked first: one whose
        bytes changed raises :class:`CorruptChunkError` (a ``DamagedSceneError``)
        naming the band and chunk, never wrong pixels. Missing bands raise
        :class:`MissingBandsError` naming them.
        """
        requested = list(dict.fromkeys(bands))
        if not requested:
            raise ValueError("open() needs at least one band name")
        scene_dir = self.scene_path(scene_id)
        record = read_record(scene_dir)
        stored = set(record.bands) if record else set()
        missing = [b for b in requested if b not in stored]
        if record is None or missing:
            raise MissingBandsError(scene_id, missing, stored)
        if check:
            problems = self._check_arrays(scene_dir, record, requested, content=False)
            if problems:
                raise DamagedSceneError(scene_id, problems, scene_dir)
        # Every chunk zarr reads comes through this store, which checks its CRC-32C
        # first and names the scene, array and chunk of one that fails.
        zarr_store = CheckedSceneStore(
            scene_dir, scene_id=scene_id, checked=_checksummed(scene_dir)
        )
        try:
            dataset = xr.open_zarr(
                zarr_store,
                consolidated=True,
                chunks=None,
                # DN stay DN: no masking, no scaling (see darts.processing.reflectance).
                mask_and_scale=False,
                decode_times=False,
                zarr_format=3,
            )
            selected = dataset[requested]
        except (KeyError, OSError, ValueError) as error:
            problem = f"zarr metadata unreadable: {error}"
            raise DamagedSceneError(scene_id, [problem], scene_dir) from None
        selected.attrs = dict(dataset.attrs)
        if not load:
            return selected
        # Whole bands: read the chunk files the record lists directly (about twice as
        # fast as through zarr); other layouts go through zarr.
        arrays = read_bands(scene_dir, {name: record.bands[name] for name in requested}, scene_id)
        if arrays is None:
            return selected.load()
        loaded = selected.copy(data={name: arrays[name] for name in requested})
        for name in requested:
            loaded[name].encoding = dict(selected[name].encoding)
        return loaded

    # -- checking and repairing ---------------------------------------------------------

    def verify(self, scene_id: str, *, content: bool = True) -> list[str]:
        """Problems found in a scene, as sentences; empty means healthy.

        Checks every committed array's files against the commit record (sizes and,
        with ``content``, SHA-256), the group metadata, and reports leftovers of
        interrupted writes (which ``cleanup_leftovers`` removes).
        """
        scene_dir = self.scene_path(scene_id)
        if not scene_dir.exists():
            return [f"scene {scene_id!r} is not in the store"]
        with self._lock_if_free(scene_id) as locked:
            try:
                record = read_record(scene_dir)
            except StoreError as error:
                return [str(error)]
            problems: list[str] = []
            if record is None:
                problems.append("no commit record: nothing in this scene folder is committed")
            else:
                problems += self._check_arrays(scene_dir, record, list(record.bands), content)
                problems += self._check_group(scene_dir, record)
            leftovers = _leftovers(scene_dir, record)
            problems += [f"leftover: {why}" for _path, why in leftovers]
            if leftovers and not locked:
                problems.append(
                    "note: another process holds the scene lock, so some leftovers may be "
                    "a write in progress"
                )
            return problems

    def cleanup_leftovers(self, scene_id: str) -> int:
        """Remove what interrupted writes left behind; returns how many leftovers
        were fixed. Committed bands are never touched."""
        scene_dir = self.scene_path(scene_id)
        with self.lock(scene_id):
            if not scene_dir.is_dir():
                return 0
            record = read_record(scene_dir)
            fixed = 0
            if record is not None and listed_arrays(scene_dir) != set(record.arrays()):
                # Un-list before deleting folders, so no listed array ever lacks data.
                write_group(scene_dir, record.arrays(), _group_attributes(record), fsync=self.fsync)
                fixed += 1
            for path, _why in _leftovers(scene_dir, record):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
                fixed += 1
            _remove_if_empty(scene_dir / STAGING)
            if record is None:
                _remove_if_empty(scene_dir)
            elif fixed and self.fsync:
                fsync_dir(scene_dir)
            return fixed

    # -- internals ----------------------------------------------------------------------

    def _prepare(self, name: str, data: xr.DataArray, item: Mapping[str, Any]) -> _PreparedBand:
        if not isinstance(data, xr.DataArray):
            raise StoreError(f"band {name!r} must be an xarray.DataArray, got {type(data)}")
        dtype = np.dtype(data.dtype)
        if dtype.kind not in "uif":
            raise StoreError(f"band {name!r} has dtype {dtype}; only numeric bands can be stored")
        try:
            grid = grid_of_band(name, data, item)
        except InconsistentGridError as error:
            raise GridMismatchError(str(error)) from None
        except GridError as error:
            raise StoreError(str(error)) from None
        if 0 in grid.shape:
            raise StoreError(f"band {name!r} is empty")
        attributes = band_attributes(name, data.attrs)
        fill_value = fill_value_for(name, dtype, attributes.get("nodata"))
        attributes.update(band_attrs(grid))
        spec = ArraySpec(
            shape=grid.shape,
            dtype=dtype,
            chunks=self.encoding.chunks_for(grid.shape),
            fill_value=fill_value,
            compressors=self.encoding.compressors(dtype),
            attributes=attributes,
            dimension_names=DIMS,
        )
        return _PreparedBand(name, data, grid, spec)

    def _publish(
        self, scene_dir: Path, staging: Path, name: str, spec: ArraySpec, values: Any
    ) -> ArrayRecord:
        """Stage, verify and rename one array into ``scene_dir/name``."""
        target = staging / f"{name}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            files = write_staged_array(
                target,
                spec,
                values,
                verify=self.verify_writes,
                fsync=self.fsync,
                after_step=lambda: _checkpoint("step", name),
            )
            _checkpoint("staged", name)
            # The target name cannot exist: cleanup removed uncommitted folders under
            # this same lock, and committed names were filtered out by the caller.
            os.rename(target, scene_dir / name)
            if self.fsync:
                fsync_dir(scene_dir)
                fsync_dir(staging)
            _checkpoint("published", name)
        finally:
            if target.exists():
                shutil.rmtree(target, ignore_errors=True)
        return ArrayRecord(
            dtype=spec.dtype.str,
            shape=spec.shape,
            chunks=spec.chunks,
            fill_value=to_json_value(spec.fill_value),
            encoding=self._describe(spec),
            files=files,
            digest=manifest_digest(files),
        )

    def _coordinate_codecs(self) -> tuple[BytesBytesCodec, ...]:
        # Coordinates are not compressed (pixel centres barely compress), but checked.
        return (checksum_codec(),) if self.encoding.checksum else ()

    def _describe(self, spec: ArraySpec) -> dict[str, Any]:
        """The encoding as the commit record holds it."""
        if any(isinstance(c, BloscCodec) for c in spec.compressors):
            return self.encoding.describe()
        return {"checksum": CHECKSUM_NAME} if spec.compressors else {}

    def _publish_coordinates(
        self, scene_dir: Path, staging: Path, grid: Grid, band: xr.DataArray
    ) -> dict[str, ArrayRecord]:
        crs = CRS.from_wkt(grid.crs_wkt)
        coords: dict[str, ArrayRecord] = {}
        for dim in DIMS:
            values = np.asarray(band.coords[dim].values, dtype="float64")
            spec = ArraySpec(
                shape=values.shape,
                dtype=values.dtype,
                chunks=values.shape,
                fill_value=float("nan"),
                compressors=self._coordinate_codecs(),
                attributes=_axis_attributes(dim, crs),
                dimension_names=(dim,),
            )
            coords[dim] = self._publish(scene_dir, staging, dim, spec, values)
        spec = ArraySpec(
            shape=(),
            dtype=np.dtype("int64"),
            chunks=(),
            fill_value=0,
            compressors=self._coordinate_codecs(),
            attributes=spatial_ref_attrs(grid),
            dimension_names=(),
        )
        coords[GRID_MAPPING] = self._publish(
            scene_dir, staging, GRID_MAPPING, spec, np.zeros((), "int64")
        )
        return coords

    def _check_arrays(
        self, scene_dir: Path, record: CommitRecord, bands: list[str], content: bool
    ) -> list[str]:
        problems: list[str] = []
        for kind, names, table in (
            ("coordinate", list(record.coords), record.coords),
            ("band", bands, record.bands),
        ):
            for name in names:
                found = check_manifest(scene_dir / name, table[name].files, content=content)
                problems += [f"{kind} {name!r}: {p}" for p in found]
        return problems

    def _check_group(self, scene_dir: Path, record: CommitRecord) -> list[str]:
        listed = listed_arrays(scene_dir)
        if listed is None:
            return [f"group metadata {GROUP_METADATA} is missing or unreadable"]
        committed = set(record.arrays())
        problems = [
            f"group metadata does not list committed array {name!r}"
            for name in sorted(committed - listed)
        ]
        problems += [
            f"leftover: group metadata lists uncommitted array {name!r}"
            for name in sorted(listed - committed)
        ]
        return problems

    @contextmanager
    def _lock_if_free(self, scene_id: str) -> Iterator[bool]:
        """The lock if nobody else holds it (a consistent snapshot), else go on
        without it; a read-only store cannot be locked at all."""
        with ExitStack() as stack:
            try:
                stack.enter_context(self.lock(scene_id, timeout=0))
                locked = True
            except OSError:  # StoreLockTimeout is a TimeoutError, hence an OSError
                locked = False
            yield locked


def _leftovers(scene_dir: Path, record: CommitRecord | None) -> list[tuple[Path, str]]:
    """Entries of a scene folder that no commit accounts for, with the reason.

    Without a record nothing is committed, so everything is a leftover, the group
    metadata first (it is removed first, so no listed array ever lacks data).
    """
    if not scene_dir.is_dir():
        return []
    committed = set(record.arrays()) if record else set()
    keep = {RECORD_NAME, GROUP_METADATA} if record else set()
    found: list[tuple[Path, str]] = []
    for entry in sorted(scene_dir.iterdir(), key=lambda p: (p.name != GROUP_METADATA, p.name)):
        name = entry.name
        if name in keep or name in committed:
            continue
        if name == STAGING and entry.is_dir():
            inside = sorted(entry.iterdir())
            found += [(p, f"unfinished write {STAGING}/{p.name}") for p in inside]
            continue
        if is_temp_name(name):
            found.append((entry, f"unfinished metadata write {name}"))
        elif entry.is_dir():
            found.append((entry, f"array folder {name}/ is not in the commit record"))
        else:
            found.append((entry, f"file {name} is not part of a committed scene"))
    return found


def _checksummed(scene_dir: Path) -> frozenset[str]:
    """The arrays the group metadata lists whose chunks end with a CRC-32C (all of
    them for a scene written since the checksum was added, none before)."""
    listed = listed_metadata(scene_dir) or {}
    return frozenset(
        name for name, meta in listed.items() if has_checksum(meta.get("codecs") or [])
    )


def _remove_if_empty(path: Path) -> None:
    with suppress(OSError):  # not empty, or already gone: both fine
        path.rmdir()


def _check_band_name(name: str) -> None:
    if not isinstance(name, str) or not _BAND_NAME.match(name) or name in COORDINATES:
        raise StoreError(
            f"invalid band name {name!r}: use letters, digits, '_' and '-' (not x, y or "
            f"{GRID_MAPPING})"
        )


def _item_document(item: Any) -> dict[str, Any]:
    """The item as a plain JSON document (pystac items are accepted too)."""
    if hasattr(item, "to_dict") and not isinstance(item, Mapping):
        item = item.to_dict()
    if not isinstance(item, Mapping):
        raise StoreError(f"the STAC item must be a mapping, got {type(item)}")
    document = to_json_value(item)
    assert isinstance(document, dict)
    return document


def _check_same_product(scene_id: str, stored: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    # Two products of one acquisition (e.g. reprocessed baselines) differ in values;
    # mixing their bands in one scene would be silent corruption.
    old_id, new_id = stored.get("id"), new.get("id")
    if old_id and new_id and old_id != new_id:
        raise StoreError(
            f"scene {scene_id!r} holds bands of item {old_id!r}; refusing to add bands of "
            f"item {new_id!r}. Store them under their own scene id"
        )


def _axis_attributes(dim: str, crs: CRS) -> dict[str, Any]:
    if crs.is_geographic:
        name = "longitude" if dim == "x" else "latitude"
        return {"standard_name": name, "units": "degrees_east" if dim == "x" else "degrees_north"}
    unit = crs.axis_info[0].unit_name if crs.axis_info else "metre"
    return {
        "standard_name": f"projection_{dim}_coordinate",
        "long_name": f"{dim} coordinate of projection (pixel centre)",
        "units": unit,
    }


def _group_attributes(record: CommitRecord) -> dict[str, Any]:
    properties = record.item.get("properties") or {}
    attributes: dict[str, Any] = {
        "darts:scene_id": record.scene_id,
        "darts:item_id": record.item.get("id"),
        "datetime": properties.get("datetime"),
        "proj:code": record.grid.crs_code,
        "proj:shape": list(record.grid.shape),
        "proj:transform": list(record.grid.transform),
        "proj:wkt2": record.grid.crs_wkt,
        "GeoTransform": record.grid.geotransform(),
    }
    return {k: v for k, v in attributes.items() if v is not None}
