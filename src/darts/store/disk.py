"""The local disk refusing: which OS errors are facts about the machine, and checking
that a command's output directories can be written before it starts.

A full disk, a used-up quota, a read-only mount, a missing permission or a file where a
directory should be are not bugs in DARTS: the user can fix each, and each should end
the command with one line naming the path and what to do, not a traceback or a list of
identical per-scene failures. `disk_problem` recognises them (also inside the chains and
texts of libraries that wrap the OS error: zarr, icechunk, GDAL); `check_writable_dir`
finds the two commonest ones (not a directory, not writable) before any download.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

from darts.errors import StorageError

_FREE = "free space there or point DARTS at another disk (`darts debug-paths` lists the paths)"
_WRITABLE = (
    "choose a directory this user can write, or fix its permissions "
    "(`darts debug-paths` lists the paths)"
)

# errno -> (what it means, what to do)
_KNOWN: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", _FREE),
    errno.EDQUOT: ("the disk quota is used up", _FREE),
    errno.EFBIG: ("the file size limit was reached", "raise the limit (ulimit -f) or " + _FREE),
    errno.EROFS: ("the file system is read-only", _WRITABLE),
    errno.EACCES: ("permission denied", _WRITABLE),
    errno.EPERM: ("operation not permitted", _WRITABLE),
    errno.ENOTDIR: (
        "a part of the path is a file, not a directory",
        "move the file away or choose another path",
    ),
    errno.EISDIR: ("it is a directory, not a file", "give the path of a file"),
    errno.EEXIST: (
        "a file is in the way of a directory",
        "move the file away or choose another path",
    ),
    errno.ENAMETOOLONG: ("the path is too long", "choose a shorter path"),
    errno.ELOOP: ("too many levels of symbolic links", "fix the symbolic links in the path"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) and run again"),
    errno.ENFILE: ("too many open files on this machine", "run again later"),
    errno.EIO: ("an input/output error of the device", "check the disk, then run again"),
}
# Libraries that flatten an OS error into text: Rust's io::Error ("... (os error 28)"),
# Python's own ("[Errno 28] ..."), GDAL and libtiff, which pass on strerror's words,
# and SQLite (GeoPackages), which says SQLITE_FULL in its own.
_ERRNO_IN_TEXT = re.compile(r"\(os error (\d+)\)|\[Errno (\d+)\]")
_WORDS = {
    **{os.strerror(code): code for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)},
    "database or disk is full": errno.ENOSPC,
}


@dataclass(frozen=True)
class DiskProblem:
    """A recognised OS error: its code, the path involved (if known) and what to do."""

    code: int
    path: str | None
    reason: str
    hint: str

    def message(self, what: str | None = None) -> str:
        """One line: ``<what or path>: <reason>; <hint>``."""
        subject = what or (f"cannot use {self.path}" if self.path else "the local disk refused")
        if what and self.path and self.path not in what:
            subject = f"{what} ({self.path})"
        return f"{subject}: {self.reason}; {self.hint}"


def disk_problem(error: BaseException) -> DiskProblem | None:
    """The disk problem behind ``error`` (itself, its causes, or their text), or None
    when it is something else: then it is not for this module to explain."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < 16:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _KNOWN:
            reason, hint = _KNOWN[current.errno]
            path = current.filename
            return DiskProblem(current.errno, os.fsdecode(path) if path else None, reason, hint)
        code = _code_in_text(str(current))
        if code is not None:
            reason, hint = _KNOWN[code]
            return DiskProblem(code, None, reason, hint)
        current = current.__cause__ or current.__context__
    return None


def _code_in_text(text: str) -> int | None:
    for match in _ERRNO_IN_TEXT.finditer(text):
        code = int(match.group(1) or match.group(2))
        if code in _KNOWN:
            return code
    for words, code in _WORDS.items():
        if words in text:
            return code
    return None


def storage_error(problem: DiskProblem, what: str | None = None) -> StorageError:
    return StorageError(problem.message(what))


def check_writable_dir(path: Path, what: str, set_by: str | None = None) -> None:
    """Raise `StorageError` unless ``path`` is a directory this process may write into,
    or could be created (its nearest existing ancestor is one). Creates nothing, so a
    dry run and a refused run leave the disk as they found it.

    ``what`` names the directory's role ("raw-data store"), ``set_by`` the setting that
    chose it ("set by command line (--raw-data-store)"), so the user knows what to change.
    """
    path = Path(path)
    if str(path).startswith("s3:"):
        return  # a remote store: the object store answers for it
    existing = path
    while not existing.exists() and existing.parent != existing:
        if existing.is_symlink():  # a dangling link: mkdir would fail on it
            break
        existing = existing.parent
    setting = f" ({set_by})" if set_by else ""
    # "<what> <path> is ..." or "<what> <path> cannot be created: <ancestor> is ..."
    subject = f"{what} {path}"
    if existing != path:
        subject += f" cannot be created: {existing}"
    if existing.is_symlink() and not existing.exists():
        raise StorageError(
            f"{subject} is a broken symbolic link{setting}; fix the link or choose another "
            "directory"
        )
    if not existing.is_dir():
        raise StorageError(
            f"{subject} is a file, not a directory{setting}; move the file away or "
            "choose another directory"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        reason = "is on a read-only file system" if _read_only(existing) else "is not writable"
        raise StorageError(f"{subject} {reason}{setting}; {_WRITABLE}")


def check_writable_file(
    path: Path, what: str, set_by: str | None = None, *, in_place: bool = False
) -> None:
    """Raise `StorageError` unless a file can be written at ``path``: not a directory,
    and its folder writable or creatable. With ``in_place`` (a log appended to) an
    existing file need only be writable itself; otherwise the file is replaced
    atomically, through a temporary file in its folder."""
    path = Path(path)
    setting = f" ({set_by})" if set_by else ""
    if path.is_dir():
        raise StorageError(f"{what} {path} is a directory{setting}; give the path of a file")
    if in_place and path.exists():
        if not os.access(path, os.W_OK):
            raise StorageError(f"{what} {path} is not writable{setting}; {_WRITABLE}")
        return
    check_writable_dir(path.parent, f"the folder of the {what}", set_by)


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
