"""The commit record of a scene: the single source of truth for what is stored.

``<scene>.zarr/darts_scene.json`` lists the committed arrays with their shape,
dtype, chunking and file manifest, the scene grid, and the STAC item. It is
replaced atomically, so the moment it is renamed into place *is* the commit. Any
array folder it does not list is a leftover, whatever zarr metadata says.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from darts.grid.scene import Grid
from darts.store.atomic import atomic_write_json
from darts.store.errors import StoreError
from darts.store.manifest import HASH_ALGORITHM, FileEntry

RECORD_NAME = "darts_scene.json"
FORMAT = "darts-scene-store"
FORMAT_VERSION = 1


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ArrayRecord:
    dtype: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    fill_value: Any
    encoding: dict[str, Any]
    files: dict[str, FileEntry]
    digest: str
    committed_at: str = field(default_factory=utc_now)

    def to_json(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "shape": list(self.shape),
            "chunks": list(self.chunks),
            "fill_value": self.fill_value,
            "encoding": self.encoding,
            "digest": self.digest,
            "committed_at": self.committed_at,
            "files": {rel: [e.size, e.sha256] for rel, e in self.files.items()},
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ArrayRecord:
        return cls(
            dtype=str(doc["dtype"]),
            shape=tuple(int(v) for v in doc["shape"]),
            chunks=tuple(int(v) for v in doc["chunks"]),
            fill_value=doc["fill_value"],
            encoding=dict(doc["encoding"]),
            files={rel: FileEntry(int(s), str(h)) for rel, (s, h) in doc["files"].items()},
            digest=str(doc["digest"]),
            committed_at=str(doc["committed_at"]),
        )


@dataclass(frozen=True)
class CommitRecord:
    scene_id: str
    grid: Grid
    item: dict[str, Any]
    bands: dict[str, ArrayRecord]
    coords: dict[str, ArrayRecord]
    updated_at: str = field(default_factory=utc_now)

    def arrays(self) -> dict[str, ArrayRecord]:
        """Every committed array folder, coordinates first (the zarr group lists these)."""
        return {**self.coords, **self.bands}

    def with_band(self, name: str, band: ArrayRecord, item: dict[str, Any]) -> CommitRecord:
        return replace(self, bands={**self.bands, name: band}, item=item, updated_at=utc_now())

    def without_bands(self, names: Iterable[str]) -> CommitRecord:
        drop = set(names)
        kept = {k: v for k, v in self.bands.items() if k not in drop}
        return replace(self, bands=kept, updated_at=utc_now())

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "scene_id": self.scene_id,
            "updated_at": self.updated_at,
            "hash_algorithm": HASH_ALGORITHM,
            "grid": self.grid.to_json(),
            "coords": {k: v.to_json() for k, v in self.coords.items()},
            "bands": {k: v.to_json() for k, v in self.bands.items()},
            "item": self.item,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> CommitRecord:
        if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"not a {FORMAT} v{FORMAT_VERSION} record "
                f"(format={doc.get('format')!r}, version={doc.get('format_version')!r})"
            )
        return cls(
            scene_id=str(doc["scene_id"]),
            grid=Grid.from_json(doc["grid"]),
            item=dict(doc["item"]),
            bands={k: ArrayRecord.from_json(v) for k, v in doc["bands"].items()},
            coords={k: ArrayRecord.from_json(v) for k, v in doc["coords"].items()},
            updated_at=str(doc["updated_at"]),
        )


def read_record(scene_dir: Path) -> CommitRecord | None:
    """The scene's commit record, None if it has none; an unreadable record raises,
    because guessing would mean either trusting or deleting data we cannot account for."""
    path = scene_dir / RECORD_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        document = json.loads(text)
        if not isinstance(document, dict):
            raise TypeError(f"a JSON {type(document).__name__}, not an object")
        _check_own_digest(document)
        return CommitRecord.from_json(document)
    except json.JSONDecodeError as error:
        problem = f"not complete JSON: {error.msg} (line {error.lineno}, column {error.colno})"
    except KeyError as error:
        problem = f"field {error.args[0]!r} is missing"
    except (ValueError, TypeError, IndexError) as error:
        problem = str(error) or type(error).__name__
    # What to do names only commands that exist: both drop the scene and stage it again.
    scene_id = scene_dir.name.removesuffix(".zarr")
    raise StoreError(
        f"commit record {path} is unreadable ({problem}); `darts cache repair` or "
        f"`darts inference prep-data sentinel2 --scene-ids {scene_id} --optical` stages the "
        "scene again"
    )


def write_record(scene_dir: Path, record: CommitRecord, *, fsync: bool) -> None:
    document = record.to_json()
    document[OWN_DIGEST] = _own_digest(document)
    atomic_write_json(scene_dir / RECORD_NAME, document, fsync=fsync)


# The record's SHA-256 of its own content (every other field, in a canonical JSON form):
# a changed byte that still parses (a digit of a size, a letter of the STAC item) would
# otherwise be trusted. Records written before it have none and are read as they are.
OWN_DIGEST = "record_sha256"


def _own_digest(document: Mapping[str, Any]) -> str:
    content = {k: v for k, v in document.items() if k != OWN_DIGEST}
    # Through JSON and back first, so the digest is of what a reader will parse.
    canonical = json.dumps(
        json.loads(json.dumps(content)), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check_own_digest(document: Mapping[str, Any]) -> None:
    stored = document.get(OWN_DIGEST)
    if stored is not None and stored != _own_digest(document):
        raise ValueError("its content does not match its own SHA-256 (a byte has changed)")
