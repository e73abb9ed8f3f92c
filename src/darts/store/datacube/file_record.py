"""A record of every file of a local cube's Icechunk repository: path, size, SHA-256.

Icechunk checks the chunks a read touches (CRC-32C), but nothing checks the rest of the
repository: a changed byte in a snapshot, a manifest, a transaction log, the branch ref
or a chunk only an older snapshot reaches goes unnoticed until something needs it (a
damaged tip snapshot even makes the whole cube look empty). So every commit to a local
cube appends the files it added to this record, and `darts cache verify` compares the
repository against it byte by byte.

The record is ``files.jsonl`` in the cube's hidden folder (`darts.store.sidecar`),
beside the repository and never inside it (Icechunk owns every file there). One JSON
line per file version: ``{"path", "size", "sha256", "check"}``, where ``check`` is a
CRC-32 of the line's bytes before it, so a damaged line is told apart from a damaged file. Lines
are only appended (and fsync'ed) under the cube's commit lock; a later line for the same
path wins. A process killed mid-append leaves a last line without its newline: readers
ignore it, and the next append cuts it off first.

What Icechunk writes:

- ``chunks/``, ``manifests/``, ``transactions/``, ``snapshots/`` are named by their id
  and written once, so a commit hashes only the files not yet recorded. Snapshot
  expiry (`reclaim`) is the one thing that rewrites snapshot files in place: the record
  is then rewritten (atomically) from the files' stat before and after;
- everything else (the branch ref ``refs/branch.main/ref.json``, a ``config.yaml``) is
  overwritten by commits and small, so it is hashed again at every commit.

Only a commit (or garbage collection) writes the record, under the lock; a commit whose
process dies before its record is appended leaves files the record does not know (and a
branch ref naming a snapshot it does not know): those are leftovers of an interrupted
commit, not damage, and the next commit records them.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from darts.store.atomic import atomic_write_bytes, fsync_dir

# Written once under an id; only snapshot expiry rewrites (snapshot) files in place.
_WRITE_ONCE = ("chunks/", "manifests/", "transactions/", "snapshots/")
_REFS = "refs/"
_BLOCK = 1 << 20
# Each line ends with a CRC-32 of what precedes this (a C-speed check: the record of a
# large cube is read at every commit).
_CHECK = b', "check": "'


@dataclass(frozen=True)
class FileEntry:
    """One file of the repository as recorded."""

    path: str  # relative to the repository, "/"-separated
    size: int
    sha256: str

    def line(self) -> bytes:
        body = json.dumps({"path": self.path, "size": self.size, "sha256": self.sha256})
        head = body[:-1].encode()  # without the closing brace
        return head + _CHECK + f'{zlib.crc32(head):08x}"}}\n'.encode()


@dataclass
class FileRecord:
    """The record as read: the latest entry of each path, and the numbers of lines that
    are damaged (not a torn last line, which is ignored)."""

    exists: bool
    entries: dict[str, FileEntry] = field(default_factory=dict)
    damaged_lines: list[int] = field(default_factory=list)
    torn_at: int | None = None  # byte offset of a torn last line, if there is one


@dataclass
class FileCheck:
    """What a check of the repository against its record found."""

    recorded: bool  # False: there is no record, nothing was checked
    damage: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    files_checked: int = 0
    damaged_files: list[str] = field(default_factory=list)  # their relative paths

    @property
    def only_chunks(self) -> bool:
        """Whether all the damage is in chunk files (not in the record itself, nor in
        the snapshots, manifests and refs that say what the cube is)."""
        return len(self.damaged_files) == len(self.damage) and all(
            path.startswith("chunks/") for path in self.damaged_files
        )


def read_record(path: Path) -> FileRecord:
    """The record at ``path`` (``exists`` False when there is none)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return FileRecord(exists=False)
    record = FileRecord(exists=True)
    complete = data.rfind(b"\n") + 1
    if complete < len(data):
        record.torn_at = complete  # a killed append: ignored, cut off by the next one
    for number, raw in enumerate(data[:complete].splitlines(), start=1):
        entry = _parse(raw)
        if entry is None:
            record.damaged_lines.append(number)
        else:
            record.entries[entry.path] = entry
    return record


def record_commit(repository: Path, path: Path) -> int:
    """Append the files the last commit(s) added to ``repository`` (and its rewritable
    files, hashed again). Call under the cube's commit lock, after the commit. Returns
    the number of lines appended. ``path``: the record file."""
    record = read_record(path)
    new: list[FileEntry] = []
    for relative, full in _files(repository):
        known = record.entries.get(relative)
        if known is not None and relative.startswith(_WRITE_ONCE):
            continue
        entry = _entry(relative, full)
        if entry != known:
            new.append(entry)
    if not new and record.exists and record.torn_at is None:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not record.exists
    with open(path, "ab") as handle:
        if record.torn_at is not None:
            handle.truncate(record.torn_at)
        handle.write(b"".join(entry.line() for entry in new))
        handle.flush()
        os.fsync(handle.fileno())
    if created:
        fsync_dir(path.parent)
    return len(new)


Stat = dict[str, tuple[int, int]]


def stat_files(repository: Path) -> Stat:
    """Size and mtime of every file of ``repository`` (taken before garbage collection)."""
    out: Stat = {}
    for relative, full in _files(repository):
        info = full.stat()
        out[relative] = (info.st_size, info.st_mtime_ns)
    return out


def rewrite_after_collection(
    repository: Path, path: Path, before: Stat, *, forget_missing: bool = False
) -> None:
    """Rewrite the record after snapshot expiry and garbage collection (under the lock):
    recorded files that went during them are dropped, files they rewrote or added are
    hashed, everything else keeps its entry, so damage from before stays visible.
    Replaced atomically; no record is made where there was none. ``forget_missing``
    also drops recorded files that were missing already: for a repair, once the tip
    reads whole (so nothing it reaches is among them) and the history is collected."""
    record = read_record(path)
    if not record.exists:
        return
    after = stat_files(repository)
    entries = dict(record.entries)
    gone = (entries.keys() if forget_missing else before.keys()) - after.keys()
    for relative in gone:
        entries.pop(relative, None)  # removed by the collection
    for relative, stat in after.items():
        if relative not in entries or before.get(relative) != stat:
            entries[relative] = _entry(relative, repository / relative)
    atomic_write_bytes(path, b"".join(entries[p].line() for p in sorted(entries)))


def check_files(repository: Path, path: Path) -> FileCheck:
    """Every file of ``repository`` against the record: missing, changed or damaged is
    damage; a file the record does not know is a leftover of an interrupted commit."""
    record = read_record(path)
    if not record.exists:
        return FileCheck(recorded=False)
    check = FileCheck(recorded=True)
    check.damage += [f"line {n} of its file record {path} is damaged" for n in record.damaged_lines]
    present = dict(_files(repository))
    unknown = sorted(set(present) - set(record.entries))
    for relative, entry in sorted(record.entries.items()):
        full = present.get(relative)
        if full is None:
            check.damage.append(f"file {relative} is missing (recorded, {entry.size} bytes)")
            check.damaged_files.append(relative)
            continue
        check.files_checked += 1
        found = _entry(relative, full)
        if found.size != entry.size:
            check.damage.append(
                f"file {relative}: content differs from the record ({found.size} bytes, "
                f"recorded {entry.size})"
            )
            check.damaged_files.append(relative)
        elif found.sha256 != entry.sha256:
            if relative.startswith(_REFS) and _names_unrecorded(full, unknown):
                # The ref moved to a snapshot committed after the last append: a writer
                # died between its commit and its record.
                check.leftovers.append(f"file {relative} names a commit not yet recorded")
                continue
            check.damage.append(f"file {relative}: content differs from the record (SHA-256)")
            check.damaged_files.append(relative)
    check.leftovers += [f"file {relative} is not in the record" for relative in unknown]
    return check


def _names_unrecorded(ref: Path, unknown: Iterable[str]) -> bool:
    """Whether the branch ref ``ref`` names a snapshot file the record does not know."""
    try:
        snapshot = json.loads(ref.read_bytes()).get("snapshot")
    except (ValueError, AttributeError):
        return False
    return isinstance(snapshot, str) and f"snapshots/{snapshot}" in set(unknown)


def _files(repository: Path) -> list[tuple[str, Path]]:
    """Every regular file below ``repository``: (relative "/"-path, full path), sorted.
    (Directory entries' own types, no stat per file: this runs at every commit.)"""
    out: list[tuple[str, str]] = []
    pending = [("", str(repository))]
    while pending:
        prefix, folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                pending.append((f"{prefix}{entry.name}/", entry.path))
            elif entry.is_file(follow_symlinks=False):
                out.append((f"{prefix}{entry.name}", entry.path))
    out.sort()
    return [(relative, Path(full)) for relative, full in out]


def _entry(relative: str, full: Path) -> FileEntry:
    digest = hashlib.sha256()
    size = 0
    with open(full, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
            size += len(block)
    return FileEntry(relative, size, digest.hexdigest())


def _parse(raw: bytes) -> FileEntry | None:
    cut = raw.rfind(_CHECK)
    if cut < 0 or raw[cut + len(_CHECK) : cut + len(_CHECK) + 8] != b"%08x" % zlib.crc32(raw[:cut]):
        return None
    try:
        document = json.loads(raw)
        path, size, sha256 = document["path"], document["size"], document["sha256"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(path, str) or not isinstance(size, int) or not isinstance(sha256, str):
        return None
    return FileEntry(path, size, sha256)
