"""The one hidden folder per store or cube for what DARTS keeps that is not data.

Locks, claims (who is fetching what), tile buffers, the ArcticDEM index cache and a
cube's file record belong to a store or cube but are not its data. Scattered beside the
data they were clutter at every path a user chose (a ``.lock`` per scene and per cube,
empty ``.scratch`` folders), so they all live in one hidden folder:

- a datacube (an Icechunk repository) ``<parent>/<name>``: ``<parent>/.<name>.darts/``,
  *beside* the repository, never inside it. Icechunk owns every file of its folder
  (its expiry and garbage collection list them), and a repository deleted by hand
  must not take with it the lock another process is waiting on;
- the scene store ``<store>``: ``<store>/.darts/``, inside the store root, where
  nothing but ``<scene>.zarr`` folders is read as a scene;
- a datacube on S3 has no local folder beside it: a per-user folder under the system
  temporary directory, keyed by the location, so fetch-once holds between the
  processes of one host.

Inside::

    locks/            flock files: a cube's commit lock, one per scene of a store
    claims/<group>/   which process fetches which tile (`darts.store.claims`)
    scratch/          tile buffers of running fills (`darts.store.scratch`)
    arcticdem_index/  the PGC mosaic index (ArcticDEM cube only)
    files.jsonl       every file of a local cube's repository: size and SHA-256
                      (`darts.store.datacube.file_record`)

Computing a path creates nothing. Locks, claims and buffers are transient; deleting
the folder while no darts process runs loses the index, fetched again when needed, and
a cube's file record, which is not transient: without it `darts cache verify` cannot
check the repository's files byte by byte (it says so) until the cube's next commit
records every file again, as it then is.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

LOCKS = "locks"
CLAIMS = "claims"
SCRATCH = "scratch"
ARCTICDEM_INDEX = "arcticdem_index"
FILE_RECORD = "files.jsonl"
_SUFFIX = ".darts"
# Claims of a cube's root group ("" is no folder name; groups cannot start with "_").
_ROOT_GROUP = "_root"


@dataclass(frozen=True)
class Sidecar:
    """The hidden folder of one store or cube, and the paths inside it."""

    root: Path

    @property
    def locks(self) -> Path:
        return self.root / LOCKS

    @property
    def scratch(self) -> Path:
        return self.root / SCRATCH

    @property
    def file_record(self) -> Path:
        return self.root / FILE_RECORD

    def lock(self, name: str) -> Path:
        return self.locks / f"{name}.lock"

    def claims(self, group: str = "") -> Path:
        return self.root / CLAIMS / (group or _ROOT_GROUP)


def cube_sidecar(location: str | Path) -> Sidecar:
    """The hidden folder of the cube at ``location`` (a path or ``s3://`` URL)."""
    text = str(location)
    if text.startswith("s3://"):
        key = hashlib.sha256(text.rstrip("/").encode()).hexdigest()[:16]
        return Sidecar(_user_temp() / "cubes" / key)
    path = Path(location).expanduser().absolute()
    return Sidecar(path.with_name(f".{path.name}{_SUFFIX}"))


def store_sidecar(root: Path) -> Sidecar:
    """The hidden folder of the scene store rooted at ``root``."""
    return Sidecar(Path(root) / _SUFFIX)


def arcticdem_index_dir(cube_location: str | Path) -> Path:
    """Where the ArcticDEM mosaic index for the cube at ``cube_location`` is kept."""
    return cube_sidecar(cube_location).root / ARCTICDEM_INDEX


# -- the layout of earlier versions (read, and cleaned up when found) -----------------


def legacy_cube_lock(path: Path) -> Path:
    """Where darts kept a cube's commit lock before: ``<cube>.lock`` beside it."""
    return path.with_name(path.name + ".lock")


def legacy_cube_scratch(path: Path) -> Path:
    """Where darts kept a cube's tile buffers before: ``.<cube>.scratch`` beside it."""
    return path.with_name(f".{path.name}.scratch")


def _user_temp() -> Path:
    # Per user: another user's folder under a shared /tmp would not be writable.
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"darts-{uid}"
