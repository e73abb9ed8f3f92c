"""What every benchmark script shares: the sandbox world it measures on, and the scene
it picks. Imported by the scripts as a sibling module (``python benchmarks/x.py`` puts
this folder first on the import path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from darts.sandbox.layout import WorldLayout

# The main tile of both worlds (see darts.sandbox.world.spec).
MAIN_TILE = "T08WNB"


def world_layout(name: str, folder: Path | None = None) -> WorldLayout:
    """An already built world folder as it is, else the named world from the test
    suite's cache (``.sandbox/<digest>/``), built there on first use."""
    from darts.sandbox.world import build_world

    if folder is not None:
        layout = WorldLayout(folder)
        if not layout.is_built():
            raise SystemExit(f"no built world at {folder}")
        return layout
    from darts.sandbox.testing import sandbox_cache_root

    root = sandbox_cache_root()
    print(f"world {name!r} under {root} (built on first use; 'full' takes minutes)", flush=True)
    return build_world(root, name, seed=0, progress=lambda m: print("  build:", m, flush=True))


def pick_item(layout: WorldLayout, scene: str | None = None) -> dict[str, Any]:
    """The STAC item of ``scene``, else the clearest scene of the main tile: the most
    valid pixels to decode, write and read."""
    folder = layout.cdse_items / "sentinel-2-l2a"
    if scene:
        return dict(json.loads((folder / f"{scene}.json").read_text()))
    candidates = [json.loads(p.read_text()) for p in sorted(folder.glob(f"*_{MAIN_TILE}_*.json"))]
    return dict(min(candidates, key=lambda item: item["properties"]["eo:cloud_cover"]))
