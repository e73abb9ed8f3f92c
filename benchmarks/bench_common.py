"""What every benchmark script shares: the sandbox world it measures on, the scene it
picks, and the CPU share of the chunk checksums. Imported by the scripts as a sibling
module (``python benchmarks/x.py`` puts this folder first on the import path)."""

from __future__ import annotations

import gc
import json
import resource
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from darts.sandbox.layout import WorldLayout

# The main tile of both worlds (see darts.sandbox.world.spec).
MAIN_TILE = "T08WNB"


def work_folder(path: Path | None) -> Path | None:
    """``--workdir``, made if it does not exist yet (None: the system's temp folder)."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
    return path


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


def checksum_share(
    readers: Sequence[ModuleType], read: Callable[[], object], runs: int
) -> tuple[float, float]:
    """What the CRC-32C checks of one ``read`` cost: the median CPU seconds they take
    (summed over the threads that ran them) and their median share of the process's
    CPU seconds for the whole read. Unlike wall times on a shared machine, a share of
    CPU time barely moves with the neighbours' load. ``readers`` are the modules whose
    ``payload`` (``darts.store.checksum.payload``, the check) is timed meanwhile."""
    from darts.store import checksum

    lock = threading.Lock()
    spent = [0.0]

    def timed(chunk: Any) -> Any:
        start = time.thread_time()
        try:
            return checksum.payload(chunk)
        finally:
            with lock:
                spent[0] += time.thread_time() - start

    saved = [reader.payload for reader in readers]  # type: ignore[attr-defined]
    for reader in readers:
        reader.payload = timed  # type: ignore[attr-defined]
    seconds: list[float] = []
    shares: list[float] = []
    try:
        for _ in range(runs):
            gc.collect()
            spent[0] = 0.0
            before = resource.getrusage(resource.RUSAGE_SELF)
            read()
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            seconds.append(spent[0])
            shares.append(spent[0] / cpu if cpu > 0 else 0.0)
    finally:
        for reader, payload in zip(readers, saved, strict=True):
            reader.payload = payload  # type: ignore[attr-defined]
    return statistics.median(seconds), statistics.median(shares)
