"""Claims: one process fetches a tile, the others wait for it and reuse it.

Before a process fetches a cube tile it claims it; another process that wants the same
tile finds the claim, waits for the tile's record to appear, and reads the tile instead
of fetching it again. Concurrent ``prep-data`` runs over overlapping regions thus fetch
every byte once (the commit lock alone only de-duplicated the writes).

A claim is a small file in the cube's hidden folder (`darts.store.sidecar`), made
atomically by hard-linking a complete temporary file to its name: the link fails if
the name exists, on local file systems and NFS alike (where ``O_EXCL`` once was not
atomic), and a reader never sees a half-written claim. It names its claimant: host,
process id, the process's start time and a random token. While the claimant fetches,
it touches the file every `HEARTBEAT_S` seconds.

A claimant that died leaves its claim behind; the next process that wants the tile
takes it over:

- same host: the claimant's process no longer exists (or its id now belongs to a
  process started later) — known at once;
- another host (a cube on a shared file system), whose processes cannot be asked: the
  heartbeat has not moved for ``stale_after_s`` while this process watched it. Only
  this process's clock is used, so clocks of different hosts need not agree.

Taking over moves the stale claim aside by ``rename`` (one mover wins) and checks that
what it moved is the claim it judged stale; a fresh claim moved by mistake in a race
is linked back. Two processes may, in that rare race, both fetch a tile: the commit
lock still writes it once. Claims are about not fetching twice, never about
correctness.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from darts.store.liveness import is_alive, process_start, this_host

log = logging.getLogger(__name__)

SUFFIX = ".claim"
# The claimant touches its claim this often while it fetches...
HEARTBEAT_S = 10.0
# ...and a claim of another host whose heartbeat stood still this long is abandoned.
STALE_AFTER_S = 120.0
# Errors of file systems without hard links: fall back to O_EXCL there.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}


@dataclass(frozen=True)
class Claimant:
    """Who holds a claim, as written in its file."""

    host: str
    pid: int
    since: str  # ISO 8601, UTC, for messages
    token: str
    start: int | None = None  # the process's start time in ticks since boot (Linux)

    @classmethod
    def me(cls) -> Claimant:
        pid = os.getpid()
        since = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return cls(this_host(), pid, since, secrets.token_hex(8), process_start(pid))

    def describe(self) -> str:
        return f"process {self.pid} on {self.host} since {self.since}"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def parse(cls, text: str) -> Claimant | None:
        try:
            raw = json.loads(text)
            start = raw.get("start")
            return cls(
                str(raw["host"]),
                int(raw["pid"]),
                str(raw["since"]),
                str(raw["token"]),
                None if start is None else int(start),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


# Whoever holds an unreadable claim (an O_EXCL claim being written, or damage).
_UNKNOWN = Claimant("unknown host", 0, "unknown", "")


class HeldClaim:
    """A claim this process holds; its heartbeat runs until :meth:`release`."""

    def __init__(self, path: Path, claimant: Claimant, heartbeat_s: float) -> None:
        self.path = path
        self.claimant = claimant
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(heartbeat_s,), name="darts-claim-heartbeat", daemon=True
        )
        self._thread.start()

    def _beat(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            if _read(self.path) != self.claimant:
                log.warning(
                    "the claim %s was taken over by another process; this one goes on, "
                    "and the tile is written once either way",
                    self.path,
                )
                return
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        """Stop the heartbeat and remove the claim, unless another process took it."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        _remove_if(self.path, self.claimant.token)

    def __enter__(self) -> HeldClaim:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class ClaimBoard:
    """The claims of one folder (one cube group), by key (a file-name-safe tile id)."""

    def __init__(
        self,
        root: Path,
        *,
        heartbeat_s: float = HEARTBEAT_S,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        self.root = Path(root)
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        # key -> (token, mtime) last seen, and when (monotonic) it was first seen so:
        # how long another host's heartbeat has stood still.
        self._seen: dict[str, tuple[tuple[str, int], float]] = {}
        self._lock = threading.Lock()

    def path(self, key: str) -> Path:
        return self.root / f"{key}{SUFFIX}"

    def try_claim(self, key: str) -> HeldClaim | Claimant:
        """Claim ``key``: the held claim, or the live claimant that holds it. A dead
        claimant's claim is taken over."""
        path = self.path(key)
        me = Claimant.me()
        for _ in range(3):  # a claim released or broken meanwhile: try again
            if _create(path, me):
                with self._lock:
                    self._seen.pop(key, None)
                return HeldClaim(path, me, self.heartbeat_s)
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # released just now
            holder = _read(path) or _UNKNOWN
            if not self._dead(key, holder, stat.st_mtime_ns):
                return holder
            log.info("taking over the claim %s of %s, which is dead", path, holder.describe())
            _remove_if(path, holder.token)
        return _read(path) or _UNKNOWN

    def _dead(self, key: str, holder: Claimant, mtime_ns: int) -> bool:
        if holder.host == this_host() and holder.pid > 0:
            return not is_alive(holder.pid, holder.start)
        # Another host (or an unreadable claim): dead once its heartbeat stood still
        # for stale_after_s on this process's clock.
        now = time.monotonic()
        state = (holder.token, mtime_ns)
        with self._lock:
            seen = self._seen.get(key)
            if seen is None or seen[0] != state:
                self._seen[key] = (state, now)
                return False
            return now - seen[1] >= self.stale_after_s

    def remove_dead(self) -> list[Path]:
        """Remove the claims of dead processes of this host (and temporary files of
        claims never made); returns what was removed."""
        if not self.root.is_dir():
            return []
        host = this_host()
        removed = []
        for entry in self.root.iterdir():
            if entry.name.endswith(SUFFIX):
                holder = _read(entry)
                if holder is None or holder.host != host or is_alive(holder.pid, holder.start):
                    continue
                if _remove_if(entry, holder.token):
                    removed.append(entry)
            elif entry.name.endswith(".tmp") and _older_than(entry, self.stale_after_s):
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed.append(entry)
        return removed


def _create(path: Path, me: Claimant) -> bool:
    """Make the claim file atomically; False if a claim exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = me.to_json()
    temporary = path.with_name(f"{path.name}.{me.token}.tmp")
    temporary.write_text(text)
    try:
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    except OSError as error:
        if error.errno not in _NO_LINKS:
            raise
    finally:
        temporary.unlink(missing_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    return True


def _read(path: Path) -> Claimant | None:
    try:
        return Claimant.parse(path.read_text())
    except OSError:
        return None


def _remove_if(path: Path, token: str) -> bool:
    """Remove the claim at ``path`` if it is still the one with ``token``.

    Moved aside first (``rename`` is atomic: of two removers one gets it), then
    checked: a newer claim moved by mistake goes back, unless yet another was made."""
    aside = path.with_name(f"{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    moved = _read(aside)
    try:
        if (moved.token if moved is not None else "") == token:  # "": an unreadable one
            return True
        with contextlib.suppress(OSError):  # FileExistsError: a newer one was made
            os.link(aside, path)
        return False
    finally:
        aside.unlink(missing_ok=True)


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False
