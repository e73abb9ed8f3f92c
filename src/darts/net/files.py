"""Atomic file writes for downloads.

A download is written to a hidden temporary file in the destination folder and moved
into place with `os.replace` only after it was verified. A crash, a dropped connection
or a checksum mismatch therefore never leaves a partial file under the final name
(which a later run would take for a finished download). The temp file lives in the same
folder so the rename stays on one filesystem and is atomic.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_file(destination: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a binary file; on normal exit it replaces `destination`, on error it vanishes.

    Verify the content *inside* the `with` block: raising there discards the temp file.
    """
    dest = Path(destination)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            # Data must be on disk before the rename makes it visible, or a power loss
            # could leave the final name pointing at an empty file.
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(dest.parent)


def _fsync_dir(folder: Path) -> None:
    # Persist the rename itself. Not possible on every platform/filesystem; best effort.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
