"""Whether the process that left something behind still runs.

Claims and scratch folders carry their owner's host and process id. On the same host
the kernel answers: a process id that does not exist, or belongs to a zombie, is dead.
A process id is reused eventually, so where ``/proc`` exists the owner's start time
(clock ticks since boot) is recorded too, and a live process started at another time
is not the owner. Whether a process of another host lives cannot be asked from here;
callers decide that from a heartbeat instead.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def this_host() -> str:
    return socket.gethostname()


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), or None
    when unknown (no ``/proc``, or no such process)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may hold spaces:
    # state is field 3, starttime field 22.
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _is_zombie(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rfind(")") + 2 :].startswith("Z")


def is_alive(pid: int, start: int | None = None) -> bool:
    """Whether process ``pid`` of this host runs and, when ``start`` is given and the
    system tells start times, is the process that started then."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    if _is_zombie(pid):  # killed, not yet reaped by its parent
        return False
    if start is not None:
        now = process_start(pid)
        if now is not None and now != start:
            return False  # the id was reused by a later process
    return True
