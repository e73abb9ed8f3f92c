"""Errors raised by the on-disk stores.

Every error derives from :class:`StoreError`, so callers that only want to report
"the store could not do that" catch one type; the subclasses also derive from the
matching built-in (``KeyError``, ``ValueError``, ``TimeoutError``) so generic code
that already handles those keeps working. Damaged data (:class:`CorruptDataError`)
is also a :class:`~darts.errors.DartsError`: the user acts on it, by staging again.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from darts.errors import DartsError


class StoreError(Exception):
    """Something in a store is missing, inconsistent or unusable."""


class MissingBandsError(StoreError, KeyError):
    """Requested bands are not committed for a scene.

    ``missing`` lists them in the order they were requested, so the caller can stage
    exactly those; ``stored`` lists what the scene does have.
    """

    def __init__(self, scene_id: str, missing: Iterable[str], stored: Iterable[str] = ()) -> None:
        self.scene_id = scene_id
        self.missing = list(missing)
        self.stored = sorted(stored)
        if self.stored:
            have = f"it has {', '.join(self.stored)}"
        else:
            have = "the scene is not in the store"
        message = (
            f"scene {scene_id!r} is missing band(s) {', '.join(self.missing)} ({have}); "
            "stage them first (prep-data) or run online"
        )
        super().__init__(message)

    # KeyError's own __str__ shows repr(args[0]) (quotes, escaped text); a readable
    # sentence is what a user at the terminal needs.
    def __str__(self) -> str:
        return str(self.args[0])


class GridMismatchError(StoreError, ValueError):
    """A band is not on the scene's grid (shape, transform or CRS differ)."""


class CorruptDataError(StoreError, DartsError):
    """Stored bytes no longer match what was written (a checksum, a size, a file that
    is gone): such data is never returned. A :class:`DartsError`, so the command line
    prints the message (which says what to do) as one line."""


class DamagedSceneError(CorruptDataError):
    """Committed data on disk no longer matches its commit record."""

    def __init__(
        self, scene_id: str, problems: Iterable[str], scene_dir: Path | None = None
    ) -> None:
        self.scene_id = scene_id
        self.problems = list(problems)
        self.scene_dir = scene_dir
        listed = "; ".join(self.problems)
        super().__init__(
            f"scene {scene_id!r} is damaged: {listed}; its data is not used. Run "
            "`darts cache repair` to stage the damaged bands again (`darts cache verify` "
            "lists all damage)"
        )


class CorruptChunkError(DamagedSceneError):
    """One chunk file of a committed array fails its checksum or does not decode."""

    def __init__(
        self, scene_id: str, array: str, chunk: str, reason: str, scene_dir: Path | None = None
    ) -> None:
        self.array = array
        self.chunk = chunk
        self.reason = reason
        kind = "coordinate" if array in ("x", "y", "spatial_ref") else "band"
        super().__init__(scene_id, [f"{kind} {array!r} chunk {chunk}: {reason}"], scene_dir)


class StoreLockTimeout(StoreError, TimeoutError):
    """Another process held a store lock for longer than the caller wanted to wait."""
