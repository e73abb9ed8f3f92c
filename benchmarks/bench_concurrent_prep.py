"""Concurrent ``prep-data`` runs over overlapping scenes: what they fetch, against one
run of all their scenes.

Usage::

    .venv/bin/python benchmarks/bench_concurrent_prep.py [--world small|full]
        [--processes 4] [--stage both|aux|optical] [--latency-ms 100] [--workdir DIR]

Against the sandbox stand-ins (each waiting ``--latency-ms`` before every answer, so
the runs want the same tiles and objects at the same time):

* **single**: one ``darts inference prep-data sentinel2 --scene-ids <all> --optical
  --aux`` into a fresh data directory: what fetching each byte once costs;
* **concurrent**: ``--processes`` such runs started together into another fresh data
  directory, each over a few of the same scenes (neighbouring MGRS tiles, so they
  share ArcticDEM tiles, TCVIS periods and some scenes).

Counted on the stand-ins' request logs: the requests that fetch data (S3 band
objects, the ArcticDEM index, COG heads and bodies, STAC items of ArcticDEM tiles,
Earth Engine pixel requests) and their bytes. Scene searches and access tokens are
per run by nature and are listed apart. Target: concurrent / single = 1.00× in
requests and bytes. The wall times of both are printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench_common import work_folder, world_layout

from darts.sandbox.servers.faults import FaultConfig
from darts.sandbox.service import Sandbox

DATA_SERVERS = ("s3", "pgc-data", "pgc-stac", "earthengine")


def scene_pool(layout: Any) -> list[str]:
    """Five scenes over the main tile and its neighbour, spread over the years."""
    manifest = json.loads(layout.manifest.read_text())
    by_tile: dict[str, list[dict]] = {}
    for scene in sorted(manifest["scenes"], key=lambda s: s["datetime"]):
        by_tile.setdefault(scene["tile"], []).append(scene)
    main = by_tile.pop(manifest["main_tile"])
    neighbour = by_tile[sorted(by_tile)[0]]
    picks = [main[0], main[len(main) // 3], main[2 * len(main) // 3]]
    picks += [neighbour[0], neighbour[len(neighbour) // 2]]
    return list(dict.fromkeys(s["id"] for s in picks))


def run_sets(pool: list[str], processes: int) -> list[list[str]]:
    """Three scenes per run, each run shifted by two: neighbours share one or two."""
    return [
        list(dict.fromkeys(pool[(2 * i + k) % len(pool)] for k in range(3)))
        for i in range(processes)
    ]


def prep_data(ids: list[str], flags: list[str], data_dir: Path, config: Path) -> subprocess.Popen:
    env = {**os.environ, "DARTS_DATA_DIR": str(data_dir), "DARTS_CONFIG_FILE": str(config)}
    env.pop("DARTS_OFFLINE", None)
    command = [sys.executable, "-m", "darts.cli.main", "inference", "prep-data", "sentinel2"]
    return subprocess.Popen(
        [*command, "--scene-ids", *ids, *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def together(runs: list[list[str]], flags: list[str], data_dir: Path, config: Path) -> float:
    """Start every run at once; the wall time until the last finished."""
    started = time.perf_counter()
    processes = [prep_data(ids, flags, data_dir, config) for ids in runs]
    outputs = [p.communicate()[0] for p in processes]
    seconds = time.perf_counter() - started
    for process, output in zip(processes, outputs, strict=True):
        if process.returncode != 0:
            raise SystemExit(f"a prep-data run failed ({process.returncode}):\n{output[-3000:]}")
    return seconds


def counted(sandbox: Sandbox) -> tuple[Counter, Counter, Counter]:
    """Data requests and bytes per server; other requests (searches, tokens)."""
    requests, nbytes, other = Counter(), Counter(), Counter()
    for name in (*DATA_SERVERS, "cdse-stac"):
        for r in sandbox.injector(name).requests():
            data = name in DATA_SERVERS and not (
                name == "earthengine" and not r["path"].endswith(":computePixels")
            )
            if data:
                requests[name] += 1
                nbytes[name] += int(r["bytes_sent"] or 0)
            else:
                other[name] += 1
    return requests, nbytes, other


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", choices=("small", "full"), default="small")
    parser.add_argument("--world-dir", type=Path, default=None)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--stage", choices=("both", "aux", "optical"), default="both")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    flags = {"both": ["--optical", "--aux"], "aux": ["--aux"], "optical": ["--optical"]}
    layout = world_layout(args.world, args.world_dir)
    work = Path(tempfile.mkdtemp(prefix="bench-concurrent-", dir=work_folder(args.workdir)))
    slow = FaultConfig(latency_ms=args.latency_ms)
    try:
        with Sandbox(layout, faults=dict.fromkeys(DATA_SERVERS, slow)) as sandbox:
            config = sandbox.write_config(work / "sandbox.toml")
            pool = scene_pool(layout)
            runs = run_sets(pool, args.processes)
            union = sorted({s for ids in runs for s in ids})
            print(f"{args.processes} runs of {[len(r) for r in runs]} scenes, {len(union)} in all;")
            print(f"stages: {' '.join(flags[args.stage])}; {args.latency_ms:g} ms per answer")

            sandbox.clear_requests()
            single_s = together([union], flags[args.stage], work / "single", config)
            single = counted(sandbox)
            sandbox.clear_requests()
            concurrent_s = together(runs, flags[args.stage], work / "concurrent", config)
            concurrent = counted(sandbox)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = [
        ("server", "requests 1 run", f"{args.processes} runs", "MB 1 run", f"{args.processes} runs")
    ]
    for name in DATA_SERVERS:
        rows.append(
            (
                name,
                str(single[0][name]),
                str(concurrent[0][name]),
                f"{single[1][name] / 1e6:.2f}",
                f"{concurrent[1][name] / 1e6:.2f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    requests_ratio = sum(concurrent[0].values()) / max(1, sum(single[0].values()))
    bytes_ratio = sum(concurrent[1].values()) / max(1, sum(single[1].values()))
    print(
        f"data requests: {sum(concurrent[0].values())} vs {sum(single[0].values())} "
        f"= {requests_ratio:.2f}×; bytes: {sum(concurrent[1].values()) / 1e6:.1f} MB vs "
        f"{sum(single[1].values()) / 1e6:.1f} MB = {bytes_ratio:.2f}× (target 1.00×)"
    )
    print(
        f"per run, not data: searches and tokens {dict(concurrent[2])} (one run: {dict(single[2])})"
    )
    print(
        f"wall: {args.processes} concurrent runs {concurrent_s:.1f} s, "
        f"one run of all scenes {single_s:.1f} s"
    )


if __name__ == "__main__":
    main()
