"""Set-up of the worker processes of a local cluster (a Dask preload module).

A local cluster's workers share the terminal's process group with the command, so
Ctrl-C reaches them too. The command handles it (it cancels the run and shuts the
cluster down); a worker that took the interrupt as its own would die first, with a
traceback of its own on the terminal. Workers therefore ignore SIGINT; they are
stopped by their nanny, which the client closes.
"""

from __future__ import annotations

import signal
from typing import Any


def dask_setup(worker: Any) -> None:
    """Called by Dask in each worker process as it starts (the main thread)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
