"""Inter-process locks for store entries.

One lock file per entry, kept *next to* the entry (never inside it) so deleting a
broken entry cannot delete the lock that another process is waiting on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from darts.store.errors import StoreLockTimeout


@contextmanager
def hold_lock(lock_path: Path, timeout: float | None, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path``; ``timeout=None`` waits forever.

    The lock is an OS ``flock``: a holder that dies (even by SIGKILL) releases it,
    so waiting without a timeout cannot hang on a crashed process.

    Re-entrant within one thread (``is_singleton`` gives every caller in this
    process the same lock object, and filelock counts nested acquisitions); other
    threads and other processes wait. This lets ``SceneStore.write_bands`` take the
    lock itself while a caller that already holds it for a check-then-download
    sequence does not deadlock.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(lock_path, is_singleton=True)
    try:
        lock.acquire(timeout=-1 if timeout is None else timeout)
    except filelock.Timeout:
        raise StoreLockTimeout(
            f"timed out after {timeout:g} s waiting for the lock on {what} ({lock_path}); "
            "another process is writing it. Wait for it to finish, or pass a longer timeout"
        ) from None
    try:
        yield
    finally:
        lock.release()
