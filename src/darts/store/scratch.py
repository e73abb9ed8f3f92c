"""Scratch folders of tile buffers, named after the process that owns them.

A fill stages each fetched tile in a disk-backed buffer folder under the cube's hidden
folder (``<sidecar>/scratch``, see `darts.store.sidecar`). A process killed with SIGKILL
cannot remove its folders, and tile buffers are large (≈ 250 MB for a 10 m ArcticDEM
tile), so every folder carries its owner's host name and process id, and whenever a
cube is opened for writing or a prep-data aux stage runs, the folders of processes of
this host that no longer exist are removed. Folders of other hosts (a cube on a shared
file system) are never touched: whether their owner lives cannot be known from here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
from pathlib import Path

from darts.store.liveness import is_alive

log = logging.getLogger(__name__)

_PREFIX = ".tile-"
_HOST_SAFE = re.compile(r"[^A-Za-z0-9.]+")


def _host() -> str:
    # Dashes separate the name's fields, so the host is reduced to letters, digits, dots.
    return _HOST_SAFE.sub("_", socket.gethostname()) or "host"


def buffer_prefix() -> str:
    """Prefix for this process's buffer folders: ``.tile-<host>-<pid>-``."""
    return f"{_PREFIX}{_host()}-{os.getpid()}-"


def _owner_pid(name: str, host: str) -> int | None:
    """The pid in a buffer folder name of ``host``; None for other hosts or names."""
    head = f"{_PREFIX}{host}-"
    if not name.startswith(head):
        return None
    pid, _, _rest = name[len(head) :].partition("-")
    return int(pid) if pid.isdigit() else None


def remove_stale_buffers(scratch_dir: Path) -> list[Path]:
    """Remove the buffer folders under ``scratch_dir`` left by dead processes of this
    host; returns what was removed."""
    if not scratch_dir.is_dir():
        return []
    host = _host()
    removed: list[Path] = []
    for entry in scratch_dir.iterdir():
        pid = _owner_pid(entry.name, host)
        if pid is None or pid == os.getpid() or is_alive(pid):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry)
    if removed:
        log.info("removed %d tile buffer(s) of killed fills under %s", len(removed), scratch_dir)
    return removed


def remove_legacy_scratch(scratch_dir: Path) -> None:
    """Clean a scratch folder of an earlier layout (``.<cube>.scratch`` beside the
    cube): its dead processes' buffers go, and the folder itself once it is empty."""
    remove_stale_buffers(scratch_dir)
    with contextlib.suppress(OSError):  # not empty (a live fill of an older darts)
        scratch_dir.rmdir()
