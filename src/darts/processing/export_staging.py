"""Crash-safe publication of one export file: write under a hidden temp name, rename.

A scene's output folder must never hold a half-written file under its final name:
``darts_inference.json`` lists files by name and size, and a reader (a GIS, the
"already done?" check) must see either the previous file or the complete new one.

The temp name keeps the final extension because some writers pick their format or
complain by extension (GDAL's GeoPackage driver warns about anything but ``.gpkg``).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from darts.store.atomic import fsync_dir, fsync_file

# ``.{stem}.{pid}.{8 hex}.tmp`` followed by the extension and any side file a writer
# adds while working (SQLite ``-journal``, GDAL ``.ovr.tmp``): a prefix match finds all.
_STAGED = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp")


def staged_name(final: Path) -> Path:
    """A unique hidden sibling of ``final`` (pid + random: unique across processes and
    threads) that keeps its extension."""
    token = f"{os.getpid()}.{secrets.token_hex(4)}"
    return final.with_name(f".{final.stem}.{token}.tmp{final.suffix}")


def is_staged_name(name: str) -> bool:
    return _STAGED.match(name) is not None


@contextmanager
def staged(final: Path) -> Iterator[Path]:
    """Yield a temp path to write; on success fsync it and rename it to ``final``.

    On any error the temp file and its side files are removed and ``final`` is left
    as it was. The directory is fsync'ed once per scene by the caller (:func:`sync_dir`)
    before the completion record is written, not after every file.
    """
    tmp = staged_name(final)
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"the writer for {final.name} produced no file")
        fsync_file(tmp)
        os.replace(tmp, final)
    except BaseException:
        for leftover in tmp.parent.glob(f"{tmp.name}*"):
            leftover.unlink(missing_ok=True)
        raise


def sync_dir(path: Path) -> None:
    fsync_dir(path)


def remove_staged(folder: Path) -> list[Path]:
    """Delete temp files a crashed writer left in ``folder``; returns what was removed.

    Only safe while no other process exports into the same folder, which the
    pipeline guarantees by giving each scene its own folder and one writer.
    """
    removed = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and is_staged_name(entry.name):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
