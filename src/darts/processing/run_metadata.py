"""``darts_inference.json``: a scene's metadata and its completion record.

The file is written last and atomically, listing every output file with its size
and SHA-256. Its presence, with every listed file present at the recorded size, is
what "this scene is done" means (pitfall 20: the reference checked for files the
export never wrote, so finished and crashed scenes looked alike). A scene whose
export crashed has no record and is redone.

The caller's metadata (scene id, parameters, models and their checksums, versions,
and a timestamp if it wants one) is stored as given; this module only adds the
``outputs`` list, sorted by file name, so the record does not depend on the order
the files were written in.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from darts.errors import DartsError
from darts.store.atomic import atomic_write_bytes, fsync_dir

RECORD_NAME = "darts_inference.json"
OUTPUTS_KEY = "outputs"
_CHUNK = 1 << 20


class ExportError(DartsError):
    """A scene result cannot be exported as asked."""


def file_entry(path: Path, export: str) -> dict[str, Any]:
    """``{"export", "file", "size", "sha256"}`` for a file in the scene folder."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return {
        "export": export,
        "file": path.name,
        "size": path.stat().st_size,
        "sha256": digest.hexdigest(),
    }


def file_entries(out_dir: Path, files: Mapping[str, Sequence[Path]]) -> list[dict[str, Any]]:
    """`file_entry` of every file of ``files`` (export key → paths in ``out_dir``)."""
    entries = [
        file_entry(path, export)
        for export, paths in files.items()
        for path in paths
        if path.parent == out_dir
    ]
    if len(entries) != sum(len(p) for p in files.values()):
        raise ExportError(f"every exported file must lie directly in {out_dir}")
    return entries


def write_record(
    out_dir: Path,
    metadata: Mapping[str, Any],
    files: Mapping[str, Sequence[Path]],
    *,
    known: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """Write the completion record for ``files`` (export key → paths in ``out_dir``).
    ``known``: entries already computed (by `file_entries`) for some of the files, so
    their bytes are not read twice; the rest are hashed here."""
    if OUTPUTS_KEY in metadata:
        raise ExportError(f"metadata must not contain {OUTPUTS_KEY!r}: the export fills it in")
    done = {(entry["export"], entry["file"]): dict(entry) for entry in known}
    rest = {
        export: [path for path in paths if (export, path.name) not in done]
        for export, paths in files.items()
    }
    entries = [*done.values(), *file_entries(out_dir, rest)]
    listed = {(export, path.name) for export, paths in files.items() for path in paths}
    if {(e["export"], e["file"]) for e in entries} != listed:
        raise ExportError("the known file entries must be entries of the files written")
    document = {**metadata, OUTPUTS_KEY: sorted(entries, key=lambda e: e["file"])}
    try:
        text = json.dumps(document, indent=2, allow_nan=False, default=_plain)
    except (TypeError, ValueError) as error:
        raise ExportError(f"metadata is not JSON-serialisable: {error}") from None
    path = out_dir / RECORD_NAME
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))
    return path


def _plain(value: Any) -> Any:
    """JSON for the values a caller naturally puts into metadata besides plain types."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        item = value.item()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"non-finite number {item}")
        return item
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, set | frozenset):
        # Sorted: a set's iteration order varies between runs (string hashing).
        return sorted(value)
    raise TypeError(f"{type(value).__name__} {value!r}")


def discard_record(out_dir: Path) -> None:
    """Remove the record before any output is rewritten, so a crash half-way through a
    re-export cannot leave an old record vouching for a mix of old and new files."""
    path = out_dir / RECORD_NAME
    if path.exists():
        path.unlink()
        fsync_dir(out_dir)


def read_record(out_dir: Path) -> dict[str, Any] | None:
    """The parsed record, or None when it is absent, unreadable or malformed."""
    try:
        document = json.loads((out_dir / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(document, dict):
        return None
    entries = document.get(OUTPUTS_KEY)
    if not isinstance(entries, list) or not all(_entry_ok(e) for e in entries):
        return None
    return document


def _entry_ok(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    name, size, sha = entry.get("file"), entry.get("size"), entry.get("sha256")
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and isinstance(size, int)
        and not isinstance(size, bool)
        and size >= 0
        and isinstance(sha, str)
    )


def is_complete(out_dir: Path, *, verify_checksums: bool = False) -> bool:
    """True when the record is present and parseable and every file it lists exists
    with the recorded size (and, if asked, the recorded SHA-256: reads every byte)."""
    document = read_record(out_dir)
    if document is None:
        return False
    for entry in document[OUTPUTS_KEY]:
        path = out_dir / entry["file"]
        try:
            if not path.is_file() or path.stat().st_size != entry["size"]:
                return False
        except OSError:
            return False
        if (
            verify_checksums
            and file_entry(path, entry.get("export", ""))["sha256"] != (entry["sha256"])
        ):
            return False
    return True
