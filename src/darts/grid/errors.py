"""Errors of the grid package: what was given does not define a usable pixel grid.

They live here, not in the layers that call the grid functions (the scene store, the
sources, processing), so the grid package depends on none of them. A caller whose own
error type matters translates at its boundary: the scene store turns them into its
``GridMismatchError`` / ``StoreError``, the export into ``ExportError``.
"""

from __future__ import annotations

from darts.errors import DartsError


class GridError(DartsError):
    """A band array, Dataset or STAC item does not define a usable north-up pixel grid
    (no CRS, an unreadable one, no asset or variable to take the grid from)."""


class InconsistentGridError(GridError):
    """A band's own georeferencing contradicts itself: wrong dims, irregular or missing
    coordinates, a declared transform or CRS that its coordinates or item disagree with."""
