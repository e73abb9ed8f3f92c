"""What the pipelines report while they work, as typed events.

A caller passes ``on_event``; the pipelines call it with one of these, and a progress
display (or a log, or a test) picks what it needs by type. Events are sent from the
pipeline's own thread, except `StageProgress`, which comes from fetch threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from darts.pipelines.staging import StageProgress

if TYPE_CHECKING:
    from darts.pipelines.prep_data import SceneOutcome
    from darts.pipelines.sequential import SceneResult


@dataclass(frozen=True)
class Note:
    """Something a user should know about the whole run (shown once)."""

    text: str


@dataclass(frozen=True)
class ScenesFound:
    count: int


@dataclass(frozen=True)
class StagingStarted:
    scenes: int
    bytes: int


@dataclass(frozen=True)
class SceneStarted:
    scene_id: str
    bytes: int = 0


@dataclass(frozen=True)
class SceneOnWorker:
    """A Dask worker began a scene (again, if an earlier worker died in it)."""

    scene_id: str
    worker: str
    pid: int


@dataclass(frozen=True)
class SceneStaged:
    outcome: SceneOutcome


@dataclass(frozen=True)
class AuxPlanned:
    needs: list[dict[str, Any]]


@dataclass(frozen=True)
class AuxTileDone:
    cube: str
    tile: str


@dataclass(frozen=True)
class RunStarted:
    scenes: int
    run_dir: str


@dataclass(frozen=True)
class BatchDone:
    scene_id: str
    done: int
    total: int


@dataclass(frozen=True)
class SceneFinished:
    result: SceneResult


Event = (
    Note
    | ScenesFound
    | StagingStarted
    | SceneStarted
    | SceneOnWorker
    | StageProgress
    | SceneStaged
    | AuxPlanned
    | AuxTileDone
    | RunStarted
    | BatchDone
    | SceneFinished
)
EventSink = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The sink of a caller that wants no events."""
