"""Errors raised by the on-disk stores.

Every error derives from :class:`StoreError`, so callers that only want to report
"the store could not do that" catch one type; the subclasses also derive from the
matching built-in (``KeyError``, ``ValueError``, ``TimeoutError``) so generic code
that already handles those keeps working.
"""

from __future__ import annotations

from collections.abc import Iterable


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


class DamagedSceneError(StoreError):
    """Committed data on disk no longer matches its commit record."""

    def __init__(self, scene_id: str, problems: Iterable[str]) -> None:
        self.scene_id = scene_id
        self.problems = list(problems)
        listed = "; ".join(self.problems)
        super().__init__(
            f"scene {scene_id!r} is damaged: {listed}. Run verify, then discard the "
            "damaged bands and stage them again"
        )


class StoreLockTimeout(StoreError, TimeoutError):
    """Another process held a store lock for longer than the caller wanted to wait."""
