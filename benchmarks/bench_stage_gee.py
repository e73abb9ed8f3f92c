"""Staging one Sentinel-2 scene from the Earth Engine stand-in (source ``gee``), against
its floor.

Usage::

    .venv/bin/python benchmarks/bench_stage_gee.py [--world small|full] [--runs N]
        [--latency-ms 30] [--concurrency 4] [--world-dir PATH]

What is measured, in one process, on the same scene:

* **stage**: ``stage_scene(GeeSource(...), scene, None, SceneStore(fresh folder))``:
  each band split into ``computePixels`` strips within Earth Engine's limits, fetched
  concurrently, copied into the band, and the store's crash-safe band writes
  (read-back check, SHA-256 manifest, fsync), each band written while the next ones
  download.
* **floor**: the same ``computePixels`` requests fetched plainly by the same client
  with the same concurrency, parsed (``numpy.load``), then every band compressed and
  written once with the store's encoding as plain zarr arrays (no read-back, no fsync,
  no manifest).

Each runs ``--runs`` times, alternating; min and median are printed with the ratio
stage / floor (target ≤ 1.15), with no added latency and with the stand-in waiting
``--latency-ms`` before every answer. The number of requests per scene is printed.
The stand-in decodes each JP2 band once and keeps it (a warm-up fetch runs first), so
the timings are of the client side and the transfers, not of the stand-in's decoding.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import MAIN_TILE, world_layout
from bench_stage_scene import Timing, settle, timed, write_plain

from darts.grid.scene import grid_of_item
from darts.net import HttpClient, NetworkSettings
from darts.pipelines.staging import stage_scene
from darts.sandbox.servers.faults import FaultConfig
from darts.sandbox.service import Sandbox
from darts.sources.gee import GeeSource, block_grid, image_expression, request_plan
from darts.sources.gee_scene import band_dtype, ee_band
from darts.sources.query import SceneFilters, SceneSelection
from darts.store.scenes import SceneStore

KEYS = ["B02_10m", "B03_10m", "B04_10m", "B08_10m", "SCL_20m"]


def make_source(sandbox: Sandbox, key_file: Path, http: HttpClient, workers: int) -> GeeSource:
    return GeeSource(
        http=http,
        base_url=sandbox.url("earthengine"),
        project=sandbox.endpoints.ee_project,
        credentials_file=key_file,
        max_concurrency=workers,
    )


def clearest_scene(source: GeeSource) -> dict[str, Any]:
    found = source.discover(
        SceneSelection(tile_ids=(MAIN_TILE.removeprefix("T"),)),
        SceneFilters(max_cloud_cover=100, max_snow_cover=100),
    )
    return min(found, key=lambda d: d["properties"].get("eo:cloud_cover", 100))


def fetch_plainly(source: GeeSource, scene: dict[str, Any], workers: int) -> dict[str, Any]:
    """The stager's requests (`request_plan`), fetched by the same client with the same
    concurrency, all at once; the bands assembled."""
    grid = grid_of_item(scene)
    client = source.client()  # the same client the stager uses
    expression = image_expression(scene["id"])
    planes = {k: np.zeros(grid.shape, dtype=band_dtype(k)) for k in KEYS}

    def one(job: tuple[str, tuple[int, int, int, int]]) -> None:
        key, block = job
        r0, r1, c0, c1 = block
        band = str(ee_band(key))
        pixels = client.compute_pixels(
            expression, grid=block_grid(grid, block), band_ids=[band], purpose="benchmark"
        )
        planes[key][r0:r1, c0:c1] = pixels[band]

    jobs = [(k, b) for k, blocks in request_plan(KEYS, grid.shape).items() for b in blocks]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, jobs))
    return planes


def bench(
    layout: Any, runs: int, latency_ms: float, workers: int
) -> tuple[dict[str, Timing], int, str]:
    faults = {"earthengine": FaultConfig(latency_ms=latency_ms)} if latency_ms else None
    timings = {
        name: Timing(label)
        for name, label in (
            ("stage", "stage_scene (gee)"),
            ("floor", "floor = requests + write"),
            ("fetch", "  floor: computePixels requests"),
            ("write", "  floor: compress + write zarr"),
        )
    }
    work = Path(tempfile.mkdtemp(prefix="bench-gee-"))
    try:
        with Sandbox(layout, faults=faults) as sandbox:
            key_file = work / "ee-key.json"
            key_file.write_text(json.dumps(sandbox.ee_key_file()))
            net = NetworkSettings(max_retries=0, max_concurrency=workers, timeout_s=120.0)
            with HttpClient(net) as http:
                source = make_source(sandbox, key_file, http, workers)
                scene = clearest_scene(source)
                grid = grid_of_item(scene)
                requests = sum(len(b) for b in request_plan(KEYS, grid.shape).values())
                fetch_plainly(source, scene, workers)  # warm-up: the stand-in decodes once
                nodata = {k: 0 for k in KEYS}
                for run in range(runs):
                    settle()
                    store = SceneStore(work / f"stage-{run}")
                    stage, result = timed(
                        lambda store=store: stage_scene(source, scene, None, store)
                    )
                    if result.status != "downloaded":
                        raise SystemExit(f"staging failed: {result}")
                    timings["stage"].add(stage)
                    shutil.rmtree(store.root)

                    settle()
                    fetch, planes = timed(lambda: fetch_plainly(source, scene, workers))
                    plain = work / f"plain-{run}"
                    write, _ = timed(lambda p=planes, d=plain: write_plain(p, nodata, d))
                    del planes
                    shutil.rmtree(plain)
                    timings["fetch"].add(fetch)
                    timings["write"].add(write)
                    timings["floor"].add(fetch + write)
                    print(
                        f"  run {run + 1}/{runs}: stage {stage.wall:.2f} s, "
                        f"floor {(fetch + write).wall:.2f} s",
                        flush=True,
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return timings, requests, f"{scene['id']} ({grid.shape[0]}×{grid.shape[1]} px)"


def report(title: str, timings: dict[str, Timing], requests: int) -> None:
    stage, floor = timings["stage"], timings["floor"]
    print(f"\n== {title}")
    for timing in timings.values():
        print(timing)
    print(f"computePixels requests per scene: {requests}")
    print(
        f"ratio stage / floor: {stage.median() / floor.median():.3f} (wall medians), "
        f"{stage.min() / floor.min():.3f} (wall minima), "
        f"{stage.median('cpu') / floor.median('cpu'):.3f} (CPU medians); target <= 1.15"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", choices=("small", "full"), default="small")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--world-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    layout = world_layout(args.world, args.world_dir)
    for latency in dict.fromkeys((0.0, args.latency_ms)):
        title = "no added latency" if not latency else f"+{latency:g} ms per request"
        print(f"\n{title}: {args.runs} runs", flush=True)
        timings, requests, scene = bench(layout, args.runs, latency, args.concurrency)
        print(f"scene {scene}, bands {' '.join(KEYS)}")
        report(title, timings, requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
