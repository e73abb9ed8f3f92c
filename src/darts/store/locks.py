"""Inter-process locks for store entries.

One lock file per entry, kept in the hidden folder of its store or cube
(`darts.store.sidecar`), never inside the entry, so deleting a broken entry cannot
delete the lock that another process is waiting on.

A lock is an OS ``flock``: the kernel releases it when its holder dies (even by
SIGKILL), so a waiter never waits for a dead process. A live holder that is slow is
waited for with a bound, and the wait is logged with who holds the lock: the holder
writes its host, process id and start time into the lock file.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import filelock

from darts.store.errors import StoreLockTimeout
from darts.store.waiting import WaitLog

# A blocked acquisition wakes this often to log the wait.
_WAIT_SLICE_S = 5.0


@contextmanager
def hold_lock(lock_path: Path, timeout: float | None, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path``; ``timeout=None`` waits forever.

    Re-entrant within one thread (``is_singleton`` gives every caller in this
    process the same lock object, and filelock counts nested acquisitions); other
    threads and other processes wait. This lets ``SceneStore.write_bands`` take the
    lock itself while a caller that already holds it for a check-then-download
    sequence does not deadlock.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(lock_path, is_singleton=True)
    _acquire(lock, lock_path, timeout, what)
    outermost = lock.lock_counter == 1
    try:
        if outermost:
            _write_holder(lock_path)
        yield
    finally:
        if outermost:
            _clear_holder(lock_path)
        lock.release()


def _acquire(lock: filelock.BaseFileLock, path: Path, timeout: float | None, what: str) -> None:
    with contextlib.suppress(filelock.Timeout):
        lock.acquire(timeout=0)
        return
    wait = WaitLog(what, timeout)
    while True:
        remaining = None if timeout is None else timeout - wait.elapsed_s
        if remaining is not None and remaining <= 0:
            raise StoreLockTimeout(
                f"timed out after {timeout:g} s waiting for the lock on {what}; another "
                f"process is writing it ({holder_of(path)}). A dead process's lock is "
                "released at once, so this one is still running: let it finish and run "
                "again, or wait longer with --lock-wait"
            )
        wait.tick(f"another process holds its lock ({holder_of(path)})")
        step = _WAIT_SLICE_S if remaining is None else min(_WAIT_SLICE_S, remaining)
        with contextlib.suppress(filelock.Timeout):
            lock.acquire(timeout=step)
            return


def holder_of(lock_path: Path) -> str:
    """Who holds the lock, as its holder wrote it: "process 12 on host h since …"."""
    try:
        info = json.loads(lock_path.read_text())
        return f"process {int(info['pid'])} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


def _write_holder(lock_path: Path) -> None:
    # Only for the messages of waiters: a failure here must not fail the lock.
    since = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    text = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": since})
    with contextlib.suppress(OSError):
        fd = os.open(lock_path, os.O_WRONLY)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, text.encode())
        finally:
            os.close(fd)


def _clear_holder(lock_path: Path) -> None:
    with contextlib.suppress(OSError):
        os.truncate(lock_path, 0)


def remove_unused_lock(lock_path: Path) -> bool:
    """Remove a lock file that no process holds (one left by an earlier layout);
    True if it was removed. A held one is left alone."""
    if not lock_path.is_file():
        return False
    lock = filelock.FileLock(lock_path, is_singleton=True)
    try:
        lock.acquire(timeout=0)
    except (filelock.Timeout, OSError):
        return False
    try:
        lock_path.unlink(missing_ok=True)
        return True
    except OSError:
        return False
    finally:
        lock.release()
