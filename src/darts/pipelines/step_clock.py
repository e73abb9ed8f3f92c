"""Wall time per pipeline step, for results tables and summaries."""

from __future__ import annotations

import time


class StepClock:
    """``with clock("step"):`` adds the step's wall seconds (to the millisecond) to
    ``into``; a step run twice counts both times."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into = into

    def __call__(self, step: str) -> StepClock:
        self._step = step
        return self

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self._started
        self.into[self._step] = round(self.into.get(self._step, 0.0) + elapsed, 3)
