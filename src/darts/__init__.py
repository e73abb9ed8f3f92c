"""DARTS: map retrogressive thaw slumps from Sentinel-2, ArcticDEM and TCVIS.

The public Python API is what ``__all__`` lists; every other module is internal and
may change between versions. Start with `Workspace`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = ["DEMO_MODEL", "DartsError", "Workspace", "__version__"]

if TYPE_CHECKING:
    from darts.demo import DEMO_MODEL
    from darts.errors import DartsError
    from darts.workspace import Workspace


def __getattr__(name: str) -> object:
    # Lazy, so `import darts` (and the CLI's start-up) stays cheap.
    if name == "Workspace":
        from darts.workspace import Workspace

        return Workspace
    if name == "DartsError":
        from darts.errors import DartsError

        return DartsError
    if name == "DEMO_MODEL":
        from darts.demo import DEMO_MODEL

        return DEMO_MODEL
    raise AttributeError(f"module 'darts' has no attribute {name!r}")
