"""Staging one Sentinel-2 scene from the S3 stand-in, against its floor.

Usage::

    .venv/bin/python benchmarks/bench_stage_scene.py [--world small|full] [--runs N]
        [--latency-ms 30] [--bands B02 B03 ...] [--scene ITEM_ID] [--world-dir PATH]

What is measured, in one process, on the same data:

* **stage**: ``stage_scene(CdseSource(s3), item, bands, SceneStore(fresh folder))``: whole-object
  GETs with size + checksum verification, in-memory JPEG2000 decoding with all cores,
  resampling onto the 10 m grid, and the store's crash-safe band writes, pipelined.
* **floor**: the same work done plainly, one step after the other, without anything
  that is not strictly needed: (1) fetch every band file whole through the same
  ``S3Client`` (verified), (2) decode every file with ``GDAL_NUM_THREADS=ALL_CPUS``,
  (3) compress and write the 10 m results with the store's encoding as plain zarr
  arrays (no read-back, no fsync, no manifest). Resampling is *not* in the floor, so
  what it costs counts against staging.

Each is run ``--runs`` times (alternating); min and median are printed, with the
ratio stage / floor (target ≤ 1.15). CPU seconds of the process are printed beside the
wall-clock times: on a shared machine they vary less than wall time does. Also printed:
the same three steps done serially with ``SceneStore.write_bands`` (read-back check,
SHA-256 manifest, fsync) instead of the plain write, i.e. what staging would cost
without the pipeline. The whole set is run twice: as the stand-in
serves, and with the stand-in waiting ``--latency-ms`` before every answer (the round
trip of a real network; staging makes one request per band, so it should barely
notice). For information, the floor's parts and the cost of the store's own
safety (``write_bands`` of the already decoded bands) are printed too.

``--world small`` (default) stages a 1200² px scene and runs in seconds; ``--world
full`` stages a real-size 10980² scene (building that world takes minutes the first
time; it is cached like the test worlds).
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from bench_common import pick_item, world_layout
from zarr.storage import LocalStore

from darts.grid.scene import grid_of_item
from darts.net import NetworkSettings, S3Client, S3Settings
from darts.pipelines.staging import stage_scene
from darts.sandbox.layout import WorldLayout
from darts.sandbox.servers.faults import FaultConfig
from darts.sandbox.service import Sandbox
from darts.sources.cdse_bands import resolve_bands
from darts.sources.cdse_source import CdseSource
from darts.sources.decode import decode_band, decode_jp2
from darts.store.encoding import DEFAULT_ENCODING
from darts.store.scenes import SceneStore


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float  # CPU seconds of the whole process (all threads, the stand-in's too)

    def __add__(self, other: Sample) -> Sample:
        return Sample(self.wall + other.wall, self.cpu + other.cpu)


@dataclass
class Timing:
    label: str
    samples: list[Sample] = field(default_factory=list)

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)

    def min(self, what: str = "wall") -> float:
        return min(getattr(s, what) for s in self.samples)

    def median(self, what: str = "wall") -> float:
        return statistics.median(getattr(s, what) for s in self.samples)

    def __str__(self) -> str:
        return (
            f"{self.label:<36} wall min {self.min():7.2f} s  median {self.median():7.2f} s"
            f"   | CPU median {self.median('cpu'):7.2f} s"
        )


def timed(fn: Callable[[], Any]) -> tuple[Sample, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return Sample(time.perf_counter() - wall, time.process_time() - cpu), value


def settle() -> None:
    # Free the previous run's buffers before timing the next one.
    gc.collect()
    time.sleep(0.2)


def s3_client(sandbox: Sandbox) -> S3Client:
    settings = S3Settings(
        endpoint_url=sandbox.endpoints.cdse_s3_endpoint,
        access_key_id=sandbox.credentials.access_key_id,
        secret_access_key=sandbox.credentials.secret_access_key,
    )
    return S3Client(settings, NetworkSettings(max_retries=0))


def fetch_all(s3: S3Client, item: dict[str, Any], keys: list[str]) -> dict[str, bytes]:
    assets = item["assets"]
    return {
        key: s3.get_object_bytes(
            assets[key]["href"],
            purpose="benchmark",
            expected_size=assets[key].get("file:size"),
            checksum=assets[key].get("file:checksum"),
        )
        for key in keys
    }


def write_plain(arrays: dict[str, np.ndarray], nodata: dict[str, int], folder: Path) -> None:
    for key, values in arrays.items():
        array = zarr.create_array(
            store=LocalStore(folder / key),
            shape=values.shape,
            chunks=DEFAULT_ENCODING.chunks_for(values.shape),
            dtype=values.dtype,
            fill_value=nodata[key],
            compressors=list(DEFAULT_ENCODING.compressors(values.dtype)),  # Blosc + CRC-32C
            config={"write_empty_chunks": False},
        )
        array[...] = values


def bench(
    layout: WorldLayout, item: dict[str, Any], keys: list[str], runs: int, latency_ms: float
) -> dict[str, Timing]:
    faults = {"s3": FaultConfig(latency_ms=latency_ms)} if latency_ms else None
    timings = {
        name: Timing(label)
        for name, label in (
            ("stage", "stage_scene (pipelined)"),
            ("floor", "floor = fetch + decode + write"),
            ("fetch", "  floor: fetch whole, verified"),
            ("decode", "  floor: decode, all cores"),
            ("write", "  floor: compress + write zarr"),
            ("store", "  SceneStore.write_bands instead"),
            ("serial", "fetch + decode + write_bands, serial"),
        )
    }
    grid = grid_of_item(item)
    work = Path(tempfile.mkdtemp(prefix="bench-stage-"))
    try:
        with Sandbox(layout, faults=faults) as sandbox, s3_client(sandbox) as s3:
            fetch_all(s3, item, keys)  # warm the page cache and the connection pool
            # The 10 m results the floor writes (and the store gets), made once, untimed.
            encoded = fetch_all(s3, item, keys)
            results = {k: decode_band(encoded[k], k, item["assets"][k], grid) for k in keys}
            nodata = {k: int(item["assets"][k].get("nodata", 0)) for k in keys}
            arrays = {k: results[k].values for k in keys}
            del encoded
            for run in range(runs):
                settle()
                store = SceneStore(work / f"stage-{run}")
                stage, result = timed(
                    lambda store=store: stage_scene(CdseSource(s3=s3), item, keys, store)
                )
                if result.status != "downloaded":
                    raise SystemExit(f"staging failed: {result}")
                timings["stage"].add(stage)
                shutil.rmtree(store.root)

                settle()
                fetch, data = timed(lambda: fetch_all(s3, item, keys))
                decode, _ = timed(lambda data=data: [decode_jp2(data[k])[0] for k in keys])
                del data
                plain = work / f"plain-{run}"
                write, _ = timed(lambda plain=plain: write_plain(arrays, nodata, plain))
                shutil.rmtree(plain)

                settle()
                store = SceneStore(work / f"store-{run}")
                stored, _ = timed(
                    lambda store=store: [
                        store.write_bands(item["id"], item, {k: results[k]}) for k in keys
                    ]
                )
                shutil.rmtree(store.root)

                floor = fetch + decode + write
                for name, sample in (
                    ("fetch", fetch),
                    ("decode", decode),
                    ("write", write),
                    ("floor", floor),
                    ("store", stored),
                    ("serial", fetch + decode + stored),
                ):
                    timings[name].add(sample)
                print(
                    f"  run {run + 1}/{runs}: stage {stage.wall:.2f} s, floor {floor.wall:.2f} s",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return timings


def report(title: str, timings: dict[str, Timing]) -> None:
    stage, floor, serial = timings["stage"], timings["floor"], timings["serial"]
    print(f"\n== {title}")
    for timing in timings.values():
        print(timing)
    print(
        f"ratio stage / floor: {stage.median() / floor.median():.3f} (wall medians), "
        f"{stage.min() / floor.min():.3f} (wall minima), "
        f"{stage.median('cpu') / floor.median('cpu'):.3f} (CPU medians); target <= 1.15"
    )
    print(
        f"ratio stage / serial with the store: {stage.median() / serial.median():.3f} "
        f"(wall medians), {stage.min() / serial.min():.3f} (wall minima)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", choices=("small", "full"), default="small")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--bands", nargs="*", default=None, help="default: B02 B03 B04 B08 (+SCL)")
    parser.add_argument("--scene", default=None, help="item id (default: clearest main scene)")
    parser.add_argument(
        "--world-dir",
        type=Path,
        default=None,
        help="an already built world folder (e.g. .sandbox/<hash>/full-seed0) to use as is",
    )
    args = parser.parse_args(argv)

    layout = world_layout(args.world, args.world_dir)
    item = pick_item(layout, args.scene)
    keys = resolve_bands(args.bands, item)
    size = sum(int(item["assets"][k]["file:size"]) for k in keys)
    rows, cols = grid_of_item(item).shape
    print(f"scene {item['id']}: {rows}×{cols} px, bands {' '.join(keys)}, {size / 1e6:.1f} MB")
    for latency in dict.fromkeys((0.0, args.latency_ms)):
        title = "no added latency" if not latency else f"+{latency:g} ms per S3 request"
        print(f"\n{title}: {args.runs} runs", flush=True)
        report(title, bench(layout, item, keys, args.runs, latency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
