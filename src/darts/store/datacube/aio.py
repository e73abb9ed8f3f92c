"""The event loop the cube's store coroutines run on, from synchronous code.

Icechunk's store (a zarr ``Store``) is asynchronous: chunk fetches and key lookups are
coroutines. They run on one event loop of our own, in a daemon thread made on first
use (and again in a forked child, which inherits the loop object but not its thread),
so that any thread can wait for them, including one where the caller already runs an
event loop (a notebook), where ``asyncio.run`` would refuse. zarr keeps such a loop
too, but only behind its private ``zarr.core.sync`` module, which darts does not use.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: tuple[int, asyncio.AbstractEventLoop] | None = None  # (pid, loop)

# How long, at interpreter exit, icechunk's threads get to finish handing back results.
SETTLE_S = 0.05


def event_loop() -> asyncio.AbstractEventLoop:
    """The running loop to hand coroutines to (``asyncio.run_coroutine_threadsafe``)."""
    global _loop
    with _lock:
        if _loop is None or _loop[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="darts-cube-fetch", daemon=True).start()
            _loop = (os.getpid(), loop)
        return _loop[1]


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``coroutine``'s result, waited for in the calling thread (not on the loop's own
    thread: that would wait for itself)."""
    loop = event_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coroutine.close()
        raise RuntimeError("aio.run called on the cube's own event loop: it would wait for itself")
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result()


def _settle_at_exit() -> None:
    """Gives icechunk's threads a moment, with the GIL free, before the interpreter's
    teardown.

    Icechunk completes a call from one of its own threads, which sets the result on the
    event loop and then writes a wake-up byte with the GIL released. If the caller has
    already moved on and the interpreter is being torn down when the write returns, that
    thread is ended from inside Rust code and the process aborts (a few exits in a
    hundred on a busy machine). Sleeping here, before the teardown starts, lets such a
    thread take the GIL back and finish. This lowers the chance for scripts using the
    API; the ``darts`` script avoids the teardown altogether (`darts.process_exit`).
    """
    if "icechunk" in sys.modules:
        time.sleep(SETTLE_S)


atexit.register(_settle_at_exit)
