"""The demo model and what the demo and its training share.

``demo_model.pt`` is a tiny smp U-Net trained on the sandbox's synthetic world (see
``MODEL.md`` beside it and ``python -m darts.demo.train``). It exists so ``darts demo``
and the end-to-end tests run the whole chain with a model that finds something; it is
**not** a model for real Sentinel-2 imagery.
"""

from __future__ import annotations

from pathlib import Path

DEMO_MODEL = Path(__file__).with_name("demo_model.pt")
"""The packaged demo checkpoint (DARTS layout)."""

DEMO_WORLD = "small"
DEMO_SEED = 0
DEMO_TILES = ("08WNB", "08WPB")
"""The sandbox tiles the demo model is trained on and the demo runs over."""
DEMO_YEARS = (2024,)
"""The demo runs the acquisitions of these years; training leaves them out."""
DEMO_QUARTERS = (3,)
"""Summer: the demo's scenes (and the quarterly mosaic it can run on) are July's."""

__all__ = [
    "DEMO_MODEL",
    "DEMO_QUARTERS",
    "DEMO_SEED",
    "DEMO_TILES",
    "DEMO_WORLD",
    "DEMO_YEARS",
]
