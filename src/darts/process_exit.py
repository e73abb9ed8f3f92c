"""Ending the ``darts`` process with its own exit code, whatever native threads still run.

Icechunk completes its asynchronous calls from its own (tokio) threads: such a thread
hands the result to the Python event loop and then writes a wake-up byte to the loop,
releasing the GIL for that write. When the call was the command's last one, the main
thread may already be tearing the interpreter down by the time the write returns, and
a thread that asks for the GIL back then is ended from inside Rust code, which aborts
the process (SIGABRT or SIGSEGV, a few runs in a hundred on a busy machine). The
command had finished and said so, yet its exit code said it crashed: a batch
scheduler would mark a successful job failed.

So the script ends without the interpreter's teardown: every exit handler still runs
(logging's flush and close, temporary directories, handlers registered by libraries),
the standard streams are flushed, and then the process ends with ``os._exit``. Only the
teardown after the handlers — garbage collection and module clean-up, where the crash
happens and which has no effect outside the process — is skipped.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn


def run_then_exit(main: Callable[[], int | None]) -> NoReturn:
    """Run ``main`` and end the process with its return value as the exit code (an
    exception that escapes it: as Python would, a traceback and code 1)."""
    outcome = {"code": 1}

    def end() -> None:
        # Registered before anything ``main`` registers, so it runs after every such
        # handler (they run last-in, first-out).
        logging.shutdown()  # a log handler registered before this one would be skipped
        for stream in (sys.stdout, sys.stderr):
            # A closed or replaced stream has nothing left to flush.
            with contextlib.suppress(OSError, ValueError, AttributeError):
                stream.flush()
        os._exit(outcome["code"])

    atexit.register(end)
    try:
        returned = main()
    except SystemExit as exc:
        outcome["code"] = _exit_code(exc.code)
        raise
    except KeyboardInterrupt:
        outcome["code"] = 130
        raise
    outcome["code"] = _exit_code(returned)
    sys.exit(outcome["code"])


def _exit_code(value: object) -> int:
    """The code ``sys.exit(value)`` ends the process with (Python itself prints a
    message given instead of a number)."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    return 1
