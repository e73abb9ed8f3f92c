"""Progress as plain lines, for where bars are noise: a batch job's log, a pipe.

Bars redraw themselves with carriage returns, which a file keeps as one unreadable
line per refresh. Without a terminal, a command instead writes a line on stderr when a
scene is done and, during a long scene, at most every ``interval_s`` seconds:

    progress: staging 3/10 scenes, 1.2 GB of 4.5 GB downloaded
    progress: inference 2/5 scenes (S2B_…: patches 96/196)

so a job log shows where a run is without growing by a line per patch. The lines are
also written to the log file (logger ``darts.progress``, INFO).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from darts.pipelines.events import (
    BatchDone,
    Event,
    RunStarted,
    SceneFinished,
    SceneStaged,
    StagingStarted,
)
from darts.pipelines.staging import StageProgress

log = logging.getLogger("darts.progress")

# Often enough to see a run move, rarely enough that a day-long run logs ~3000 lines.
DEFAULT_INTERVAL_S = 30.0


class ProgressLines:
    """An event sink (``on_event``) that prints progress lines; thread-safe enough for
    the fetch threads' `StageProgress` (a line may be skipped, never garbled)."""

    def __init__(
        self,
        interval_s: float = DEFAULT_INTERVAL_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[str], None] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._write = write or _to_stderr
        self._last = clock()
        self._staging: tuple[int, int] | None = None  # scenes, bytes planned
        self._staged = 0
        self._bytes: dict[str, int] = {}
        self._run_scenes: int | None = None
        self._finished = 0
        self._batches: tuple[str, int, int] | None = None

    def on_event(self, event: Event | StageProgress) -> None:
        if isinstance(event, StagingStarted):
            self._staging = (event.scenes, event.bytes)
        elif isinstance(event, StageProgress):
            self._bytes[event.scene_id] = event.bytes_done
            self._maybe(self._staging_line)
        elif isinstance(event, SceneStaged):
            self._staged += 1
            self._emit(self._staging_line())
        elif isinstance(event, RunStarted):
            self._run_scenes = event.scenes
        elif isinstance(event, BatchDone):
            self._batches = (event.scene_id, event.done, event.total)
            self._maybe(self._run_line)
        elif isinstance(event, SceneFinished):
            self._finished += 1
            self._batches = None
            self._emit(self._run_line())

    # -- lines ------------------------------------------------------------------------

    def _staging_line(self) -> str:
        scenes, planned = self._staging or (0, 0)
        done = sum(self._bytes.values())
        return (
            f"staging {self._staged}/{scenes} scenes, {human_size(done)} of {human_size(planned)} "
            "downloaded"
        )

    def _run_line(self) -> str:
        line = f"inference {self._finished}/{self._run_scenes or 0} scenes"
        if self._batches is not None:
            scene, done, total = self._batches
            line += f" ({scene}: patch batches {done}/{total})"
        return line

    def _maybe(self, line: Callable[[], str]) -> None:
        if self._clock() - self._last >= self.interval_s:
            self._emit(line())

    def _emit(self, text: str) -> None:
        self._last = self._clock()
        log.info(text)
        self._write(f"progress: {text}")


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def human_size(n: int) -> str:
    """``n`` bytes in decimal units, one decimal (``1.2 GB``)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
