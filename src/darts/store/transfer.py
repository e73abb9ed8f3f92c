"""Carrying staged data to another machine: one folder (or tar archive) with a manifest.

Layout of an export, the same as a data directory's, so it is readable as one::

    darts-cache-manifest.json                 what is inside, and every file's SHA-256
    sentinel2/<source>/<scene id>.zarr/       committed scene content only
    auxiliary/<cube>.icechunk/                 Icechunk repositories (the tiles asked for)

Export copies a scene's committed files under its lock after a full check (a damaged
scene is refused, not carried along), and builds cubes holding just the chosen tiles
(`datacube.cube_copy`). The manifest lists every file with its size and SHA-256.

Import checks *every byte* against the manifest first, and refuses the whole archive on
the first mismatch (nothing is placed). Data then goes in through the stores' own write
paths, never by copying files over: scene bands through `SceneStore.write_bands`
(atomic, verified commits), cube tiles through tile commits. So an entry the target
already has healthy is never overwritten; a damaged one is dropped and replaced.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from darts import __version__
from darts.errors import DartsError
from darts.store.atomic import atomic_write_json, fsync_dir
from darts.store.datacube.cube_copy import copy_tiles
from darts.store.datacube.tile_removal import remove_tiles
from darts.store.datacube.verify import scan_records, verify_cube
from darts.store.errors import StoreError
from darts.store.group import GROUP_METADATA
from darts.store.manifest import FileEntry, build_manifest, file_digest
from darts.store.record import RECORD_NAME, read_record, utc_now
from darts.store.scene_damage import clear
from darts.store.scenes import SCENE_SUFFIX, SceneStore

if TYPE_CHECKING:
    from darts.store.datacube.cube import Datacube

MANIFEST_NAME = "darts-cache-manifest.json"
FORMAT = "darts-cache-export"
FORMAT_VERSION = 1
SCENES_DIR = "sentinel2"
CUBES_DIR = "auxiliary"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")


class ArchiveError(DartsError):
    """An export cannot be used: unreadable, not an export, or damaged."""


class ExportError(DartsError):
    """Something chosen for export is damaged: nothing damaged is carried along."""


@dataclass(frozen=True)
class ExportedScene:
    source: str
    scene_id: str
    bands: tuple[str, ...]

    @property
    def path(self) -> str:
        return f"{SCENES_DIR}/{self.source}/{self.scene_id}{SCENE_SUFFIX}"


@dataclass(frozen=True)
class ExportedCube:
    kind: str  # the cube spec's kind: "arcticdem-10m", "tcvis"
    folder: str  # the repository's folder name under auxiliary/
    group: str
    tiles: tuple[str, ...]

    @property
    def path(self) -> str:
        return f"{CUBES_DIR}/{self.folder}"


@dataclass
class Manifest:
    scenes: list[ExportedScene] = field(default_factory=list)
    cubes: list[ExportedCube] = field(default_factory=list)
    files: dict[str, FileEntry] = field(default_factory=dict)
    created_at: str = field(default_factory=utc_now)
    darts_version: str = __version__

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "created_at": self.created_at,
            "darts_version": self.darts_version,
            "scenes": [
                {"source": s.source, "scene_id": s.scene_id, "bands": list(s.bands), "path": s.path}
                for s in self.scenes
            ],
            "cubes": [
                {
                    "kind": c.kind,
                    "path": c.path,
                    "group": c.group,
                    "tiles": list(c.tiles),
                }
                for c in self.cubes
            ],
            "files": {rel: [e.size, e.sha256] for rel, e in sorted(self.files.items())},
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Manifest:
        if doc.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} manifest (format {doc.get('format')!r})")
        if doc.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"manifest version {doc.get('version')!r}; this darts reads version "
                f"{FORMAT_VERSION}"
            )
        scenes = [
            ExportedScene(
                _safe(str(s["source"])),
                _safe(str(s["scene_id"])),
                tuple(_safe(str(b)) for b in s["bands"]),
            )
            for s in doc["scenes"]
        ]
        cubes = [
            ExportedCube(
                str(c["kind"]),
                _folder_of(str(c["path"])),
                str(c["group"]),
                tuple(str(t) for t in c["tiles"]),
            )
            for c in doc["cubes"]
        ]
        files = {str(rel): FileEntry(int(s), str(h)) for rel, (s, h) in doc["files"].items()}
        for rel in files:
            _check_relative(rel)
        return cls(scenes, cubes, files, str(doc["created_at"]), str(doc["darts_version"]))

    def roots(self) -> list[str]:
        """The folders the manifest accounts for: every file in them is listed."""
        return [s.path for s in self.scenes] + sorted({c.path for c in self.cubes})


# -- exporting ---------------------------------------------------------------------


def export_scene(store: SceneStore, source: str, scene_id: str, folder: Path) -> ExportedScene:
    """Copy the scene's committed content into ``folder``'s layout, under the scene's
    lock and after a full check; a damaged scene raises `ExportError`."""
    scene = store.scene_path(scene_id)
    with store.lock(scene_id):
        problems = store.verify(scene_id, content=True)
        record = read_record(scene) if not problems else None
        if problems or record is None:
            raise ExportError(
                f"scene {scene_id!r} ({source}) is damaged, so nothing was exported: "
                f"{'; '.join(problems) or 'no commit record'}. Repair it first: "
                "`darts cache repair`"
            )
        exported = ExportedScene(source, scene_id, tuple(sorted(record.bands)))
        target = folder / exported.path
        for name, array in record.arrays().items():
            for rel in array.files:
                _copy_file(scene / name / rel, target / name / rel)
        for name in (GROUP_METADATA, RECORD_NAME):
            _copy_file(scene / name, target / name)
    return exported


def write_manifest(folder: Path, manifest: Manifest) -> Manifest:
    """Fingerprint every file under the manifest's folders (the copies, read back) and
    write the manifest into ``folder``."""
    files: dict[str, FileEntry] = {}
    for root in manifest.roots():
        for rel, entry in build_manifest(folder / root).items():
            files[f"{root}/{rel}"] = entry
    manifest.files = files
    atomic_write_json(folder / MANIFEST_NAME, manifest.to_json(), fsync=True)
    return manifest


def publish(folder: Path, target: Path, manifest: Manifest) -> Path:
    """Move a finished export folder to ``target``: a folder, or a tar archive when
    ``target`` ends in ``.tar`` (holding the manifest and the files it lists). Either
    appears at once, complete (written beside it, then renamed)."""
    if target.suffix == ".tar":
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
                archive.add(folder / MANIFEST_NAME, arcname=MANIFEST_NAME)
                for rel in sorted(manifest.files):
                    archive.add(folder / rel, arcname=rel, recursive=False)
            with open(partial, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
    else:
        os.rename(folder, target)
    fsync_dir(target.parent)
    return target


def staging_folder(target: Path) -> Path:
    """A fresh folder beside ``target`` to build the export in (same filesystem, so
    publishing is a rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))


# -- importing ---------------------------------------------------------------------


@contextmanager
def unpacked(archive: Path, scratch: Path) -> Iterator[Path]:
    """The export's folder: ``archive`` itself, or a tar archive extracted into a
    temporary folder under ``scratch`` (removed afterwards). Members that would land
    outside that folder, links and devices are refused."""
    if archive.is_dir():
        yield archive
        return
    if not archive.is_file():
        raise ArchiveError(
            f"{archive} does not exist: give the folder or .tar that `darts cache export` wrote"
        )
    scratch.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".darts-import-", dir=scratch))
    try:
        try:
            with tarfile.open(archive, "r:") as tar:
                tar.extractall(folder, filter="data")
        except (tarfile.TarError, EOFError, OSError, ValueError) as error:
            raise ArchiveError(
                f"archive {archive} cannot be read ({error}); it is damaged or not a tar "
                "archive written by `darts cache export`. Nothing was imported"
            ) from None
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_archive(folder: Path, name: str) -> Manifest:
    """The manifest, once every file it lists has its size and SHA-256 and the folders
    it accounts for hold nothing else; otherwise `ArchiveError` naming the first
    problem (and how many there are)."""
    path = folder / MANIFEST_NAME
    try:
        manifest = Manifest.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ArchiveError(
            f"{name} has no {MANIFEST_NAME}: it was not written by `darts cache export`. "
            "Nothing was imported"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ArchiveError(
            f"the manifest of {name} is unreadable ({error}); the archive is damaged. "
            "Nothing was imported"
        ) from None
    problems: list[str] = []
    for rel, entry in sorted(manifest.files.items()):
        file = folder / rel
        if not file.is_file():
            problems.append(f"file {rel} is missing")
        elif file.stat().st_size != entry.size:
            problems.append(
                f"file {rel} has {file.stat().st_size} bytes, the manifest says {entry.size}"
            )
        elif file_digest(file) != entry.sha256:
            problems.append(f"file {rel} differs from the manifest (sha256)")
    listed = set(manifest.files)
    for root in manifest.roots():
        base = folder / root
        if not base.is_dir():
            continue  # its files are reported missing above
        for dirpath, _dirs, filenames in os.walk(base):
            for filename in filenames:
                rel = (Path(dirpath) / filename).relative_to(folder).as_posix()
                if rel not in listed:
                    problems.append(f"file {rel} is not in the manifest")
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise ArchiveError(
            f"{name} is damaged: {problems[0]}{more}. Nothing was imported; export it "
            "again from the source machine"
        )
    return manifest


def import_scene(archive: SceneStore, target: SceneStore, scene_id: str) -> str:
    """Put the archived scene's bands into ``target`` through its write path; returns
    what happened ("imported", "completed", "kept", "replaced"). A healthy scene keeps
    every band it has; a damaged one is cleared first."""
    outcome = "imported"
    if target.scene_path(scene_id).exists():
        damage = clear(target, scene_id)
        outcome = "completed" if damage.healthy else "replaced"
    record = archive.commit_record(scene_id)
    if record is None:
        raise StoreError(f"the archive has no commit record for scene {scene_id!r}")
    missing = target.missing_bands(scene_id, sorted(record.bands))
    if not missing:
        return "kept"
    dataset = archive.open(scene_id, missing, load=True)
    target.write_bands(scene_id, record.item, {band: dataset[band] for band in missing})
    return outcome


def import_tiles(archive: Datacube, target: Datacube, tiles: Sequence[str]) -> dict[str, str]:
    """Copy the archived cube's ``tiles`` into ``target``; returns per tile "imported",
    "kept" (the target has it healthy) or "replaced" (the target's was damaged). A
    damaged target tile is replaced only when every tile its damage touches is in the
    archive (else dropping it would lose a neighbour's pixels): it stays damaged, and
    `darts cache verify` lists it."""
    wanted = list(dict.fromkeys(tiles))
    scan = scan_records(target)
    present = [t for t in wanted if t in scan.records or t in scan.damaged]
    problems = verify_cube(target, tiles=present) if present else []
    carried = set(wanted)
    fixable = [p for p in problems if p.tiles and set(p.tiles) <= carried]
    replaced = sorted({t for p in fixable for t in p.tiles})
    if replaced:
        windows = {t: r.pixel_window for t, r in scan_records(archive).records.items()}
        remove_tiles(
            target,
            replaced,
            drop_chunks=[p.chunk for p in fixable if p.chunk],
            windows={t: windows[t] for t in replaced if t in windows},
        )
    copied = set(copy_tiles(archive, target, wanted))
    return {
        t: ("replaced" if t in replaced else "imported") if t in copied else "kept" for t in wanted
    }


def _copy_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def _safe(name: str) -> str:
    """A source, scene id or band name from a manifest: one plain path component."""
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a valid name")
    return name


def _check_relative(rel: str) -> None:
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts or not parts:
        raise ValueError(f"file path {rel!r} leaves the archive")


def _folder_of(path: str) -> str:
    _check_relative(path)
    parts = Path(path).parts
    if len(parts) != 2 or parts[0] != CUBES_DIR:
        raise ValueError(f"cube path {path!r} is not {CUBES_DIR}/<folder>")
    return _safe(parts[1])


def scene_dirs(manifest: Manifest, folder: Path) -> Sequence[tuple[ExportedScene, SceneStore]]:
    """Each archived scene with the store (inside the archive folder) that holds it."""
    return [
        (scene, SceneStore(folder / SCENES_DIR / scene.source, fsync=False))
        for scene in manifest.scenes
    ]
