"""Crash-safe file primitives: write-to-temp + fsync + rename.

A reader must never see half a file, and after a power cut a file that was
renamed into place must hold the bytes written before the rename. POSIX gives both
when the data is fsync'ed before ``os.replace`` and the directory is fsync'ed
after it (the rename itself lives in the directory).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

# Temp files carry this suffix so leftovers from a killed writer are easy to spot.
TEMP_SUFFIX = ".tmp"


def temp_name(final_name: str) -> str:
    """A unique hidden sibling name for ``final_name`` (pid + random: no collisions
    between processes or between threads of one process)."""
    return f".{final_name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def fsync_dir(path: Path) -> None:
    """Persist a directory's entries (creations, renames, removals)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory below ``root`` (and ``root`` itself).

    Used on a staged array before it is published: zarr writes chunk files without
    fsync, and a rename of an un-synced tree can survive a power cut while its
    files come back empty.
    """
    for dirpath, _dirnames, filenames in os.walk(root):
        for filename in filenames:
            fsync_file(Path(dirpath) / filename)
        fsync_dir(Path(dirpath))


def atomic_write_bytes(
    path: Path, data: bytes, *, fsync: bool = True, private: bool = False
) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file,
    never a mix; a crash leaves at most a hidden temp file (see :func:`is_temp_name`).
    ``private`` makes the file owner-only from its creation (keys, credentials)."""
    tmp = path.with_name(temp_name(path.name))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str, *, fsync: bool = True, private: bool = False) -> None:
    """`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(Path(path), text.encode("utf-8"), fsync=fsync, private=private)


def atomic_write_json(path: Path, document: Any, *, fsync: bool = True) -> None:
    # allow_nan=False: NaN/Infinity are not JSON, and other tools would refuse the file.
    text = json.dumps(document, indent=2, sort_keys=False, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"), fsync=fsync)
