"""Staging and an online run under faults at a real 20 % of requests, on every stand-in.

``prep-data`` (optical + aux, one scene of the small world) and an online
``sentinel2-sequential`` run are each run twice: fault-free, then with 20 % of the
requests to every server faulted (429/503 answers, connection resets and truncated
bodies in equal shares: all the kinds the injector has). Each must complete on its
first attempt, write exactly what the fault-free run wrote, and cost at most 1.5× its
requests (each fault should cost one retry: ~1.25×). The injector deals one fault in
every five requests per server, so "20 %" is the rate the run really met; the servers'
own logs show it. ``benchmarks/bench_faults.py`` runs the same on a longer workload.
"""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path

import pytest

from darts.cli.main import main
from darts.sandbox.fault_trials import (
    Traffic,
    cube_differences,
    fault_mix,
    faults_everywhere,
    output_differences,
    scene_store_differences,
    traffic,
)
from darts.sandbox.layout import WorldLayout
from darts.sandbox.service import Sandbox
from darts.sources.arcticdem import arcticdem_spec
from darts.sources.tcvis import tcvis_period, tcvis_spec

RATE = 0.2
MAX_REQUEST_RATIO = 1.5
PATCHES = ["--patch-size", "256", "--overlap", "32", "--batch-size", "4"]
# ArcticDEM at 32 m: the same tiles, sources and code paths as at 10 m, with a tenth of
# the pixels to fill and compare (the suite's time goes to pixels, not requests).
DEM = ["--arcticdem-resolution", "32"]


def main_scene(world: WorldLayout) -> dict:
    manifest = json.loads(world.manifest.read_text())
    tile = manifest["main_tile"]
    return sorted(
        (s for s in manifest["scenes"] if s["tile"] == tile and s["eo:cloud_cover"] <= 10),
        key=lambda s: s["id"],
    )[0]


def run(
    args: list[str], data_dir: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, capsys
) -> tuple[int, str, Traffic]:
    monkeypatch.setenv("DARTS_DATA_DIR", str(data_dir))
    sandbox.clear_requests()
    code = main(args)
    out, err = capsys.readouterr()
    return code, out + err, traffic(sandbox)


def check_rate_was_real(seen: Traffic) -> None:
    """Every server faulted exactly one in five of its requests (± the last deck)."""
    assert seen.faulted > 0
    for name, count in seen.requests.items():
        faults = sum(seen.faults[name].values())
        assert math.floor(count * RATE) <= faults <= math.ceil(count * RATE), (name, count)
    assert set(seen.kinds()) <= {"error", "reset", "truncate"}


@pytest.mark.slow
def test_prep_data_and_an_online_run_complete_first_time_under_faults(
    sandbox: Sandbox,
    sandbox_world: WorldLayout,
    data_dir: Path,
    model_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
) -> None:
    scene = main_scene(sandbox_world)
    prep = ["inference", "prep-data", "sentinel2", "--scene-ids", scene["id"]]
    prep += ["--optical", "--aux", *DEM]
    online = ["inference", "sentinel2-sequential", "--scene-ids", scene["id"]]
    online += ["--model-files", str(model_file), *PATCHES, *DEM]
    clean, faulty = data_dir.parent / "clean", data_dir.parent / "faulty"

    # Faulted first: nothing fetched by the fault-free runs can be served from a
    # cache of this process (GDAL kept one per URL) instead of crossing the faults.
    # Each run meets a fresh fault schedule, so its own requests hold the exact share.
    with faults_everywhere(sandbox, fault_mix(RATE)):
        code, out, prep_faulty = run(prep, faulty / "prep", sandbox, monkeypatch, capsys)
    assert code == 0, out  # the first attempt
    with faults_everywhere(sandbox, fault_mix(RATE)):
        code, out, online_faulty = run(online, faulty / "online", sandbox, monkeypatch, capsys)
    assert code == 0, out
    code, out, prep_clean = run(prep, clean / "prep", sandbox, monkeypatch, capsys)
    assert code == 0, out
    code, out, online_clean = run(online, clean / "online", sandbox, monkeypatch, capsys)
    assert code == 0, out
    assert prep_clean.faulted == online_clean.faulted == 0

    for seen, baseline in ((prep_faulty, prep_clean), (online_faulty, online_clean)):
        check_rate_was_real(seen)
        assert seen.total <= MAX_REQUEST_RATIO * baseline.total, (seen, baseline)

    # Everything written is identical to the fault-free runs: the staged scene and
    # cubes of prep-data, the scene and the exported products of the online run (its
    # cubes hold the same tiles as prep-data's; their pixels are compared once).
    clean_prep, faulty_prep = clean / "prep", faulty / "prep"
    period = tcvis_period(int(scene["datetime"][:4]))
    problems = scene_store_differences(
        clean_prep / "sentinel2" / "cdse", faulty_prep / "sentinel2" / "cdse"
    )
    problems += cube_differences(
        clean_prep / "auxiliary" / "arcticdem_32m.icechunk",
        faulty_prep / "auxiliary" / "arcticdem_32m.icechunk",
        arcticdem_spec(32),
    )
    problems += cube_differences(
        clean_prep / "auxiliary" / "tcvis.icechunk",
        faulty_prep / "auxiliary" / "tcvis.icechunk",
        tcvis_spec(),
        period,
    )
    problems += scene_store_differences(
        clean / "online" / "sentinel2" / "cdse", faulty / "online" / "sentinel2" / "cdse"
    )
    problems += output_differences(
        clean / "online" / "out", faulty / "online" / "out", [scene["id"]]
    )
    assert problems == []


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_endpoint_costs_one_retry_budget_and_one_line_per_tile(
    sandbox: Sandbox, sandbox_world: WorldLayout, data_dir: Path, capsys
) -> None:
    """The PGC STAC API refuses connections: the first tiles spend the retry budget,
    the others are not tried again; each failure is one line saying why."""
    scene = main_scene(sandbox_world)
    port = closed_port()
    code = main(
        ["inference", "prep-data", "sentinel2", "--scene-ids", scene["id"], "--aux", *DEM,
         "--pgc-stac-url", f"http://127.0.0.1:{port}/api/v1/", "--max-retries", "2"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in out + err
    failures = [line for line in out.splitlines() if "ArcticDEM 32 m tile" in line]
    assert len(failures) == 4, out
    refused = f"cannot connect to http://127.0.0.1:{port} (Connection refused)"
    assert all(refused in line for line in failures), out
    # At most the two tiles fetched at once spent the budget; the rest were not sent.
    assert sum("not sent" in line for line in failures) >= 2, out
    assert "HTTPConnectionPool" not in out and "Max retries" not in out
    assert "TCVIS" in out  # the other cube's endpoint was not affected
