"""Staging and online runs under faults at a real rate, against the same runs fault-free.

Usage::

    .venv/bin/python benchmarks/bench_faults.py [--world small|full] [--rate 0.2]
        [--scenes N] [--online-scenes N] [--resolution 2|10|32] [--trials N]
        [--workdir DIR]

On the sandbox (every stand-in on 127.0.0.1), three workloads run as a user types
them, each as its own ``darts`` process:

1. ``prep-data --optical --aux`` for the clear scenes of the main tile (``--scenes``,
   default all: 4 on the small world, 20 band objects; the ArcticDEM tiles at
   ``--resolution`` m, default 10; TCVIS from the Earth Engine stand-in for each
   scene's period);
2. ``prep-data --aux --tcvis-source stac`` for the same scenes into a fresh TCVIS cube:
   the TCVIS mirror's STAC search and COG range reads (ArcticDEM is already staged);
3. an online ``sentinel2-sequential`` run (tiny untrained model) over the first
   ``--online-scenes`` of them, staging everything it needs itself.

Each runs fault-free once, then with ``--rate`` of the requests to every server
faulted (in equal shares 429/503 answers, connection resets and truncated bodies),
``--trials`` times with a different fault schedule each (the sandbox's base seed).
Printed per workload: the fault rate the servers saw (their own request logs)
and its kinds, the requests of the faulted run against the fault-free one (target
≤ 1.5×; a retry per fault is 1/(1 - rate) = 1.25× at 20 %), whether the first attempt
succeeded (exit 0), and whether everything it wrote (scene stores, cubes, exported
rasters and polygons) is identical to the fault-free run's.

Backoff is the command line's default (1 s base, full jitter), so the faulted runs
also show what the retries cost in time. The default invocation takes ~10 min on 2
cores (``--online-scenes 1``: ~6 min).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_common import work_folder, world_layout

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

TARGET_RATIO = 1.5
# The tests' small untrained model: the chain is under test, not skill.
TINY_MODEL = {
    "arch": "unet",
    "encoder_name": "tu-test_resnet",
    "encoder_depth": 3,
    "decoder_channels": [16, 8, 4],
    "classes": 1,
}
PATCHES = ["--patch-size", "256", "--overlap", "32", "--batch-size", "4"]


@dataclass
class Outcome:
    code: int
    seconds: float
    seen: Traffic
    tail: str


@dataclass
class Workload:
    name: str
    clean: Outcome | None = None
    faulted: list[Outcome] = field(default_factory=list)
    problems: list[list[str]] = field(default_factory=list)


def clear_scenes(layout: WorldLayout) -> list[dict]:
    manifest = json.loads(layout.manifest.read_text())
    tile = manifest["main_tile"]
    return sorted(
        (
            s
            for s in manifest["scenes"]
            if s["tile"] == tile and s["eo:cloud_cover"] <= 10 and s["eo:snow_cover"] <= 10
        ),
        key=lambda s: s["id"],
    )


def tiny_model(folder: Path) -> Path:
    import segmentation_models_pytorch as smp
    import torch

    from darts.processing.features import ALL_FEATURES
    from darts.processing.models import save_darts_checkpoint

    config = {**TINY_MODEL, "in_channels": len(ALL_FEATURES)}
    settings = dict(config)
    torch.manual_seed(0)
    module = smp.create_model(
        arch=settings.pop("arch"),
        encoder_name=settings.pop("encoder_name"),
        encoder_weights=None,
        **settings,
    )
    path = folder / "tiny.pt"
    save_darts_checkpoint(
        module, {"model": config, "bands": list(ALL_FEATURES), "name": "tiny"}, path
    )
    return path


def darts(args: list[str], data_dir: Path, config: Path, sandbox: Sandbox) -> Outcome:
    """One ``darts`` process, as a user runs it; the servers' logs cleared first."""
    env = {**os.environ, "DARTS_DATA_DIR": str(data_dir), "DARTS_CONFIG_FILE": str(config)}
    for name in ("DARTS_OFFLINE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        env.pop(name, None)
    command = [
        sys.executable,
        "-c",
        "import sys; from darts.cli.main import main; sys.exit(main())",
    ]
    sandbox.clear_requests()
    started = time.perf_counter()
    done = subprocess.run([*command, *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    tail = (done.stdout + done.stderr).strip().splitlines()[-6:]
    return Outcome(done.returncode, seconds, traffic(sandbox), "\n".join(tail))


@dataclass(frozen=True)
class Setup:
    """What every run of the trial stages and runs."""

    scenes: list[dict]
    online: list[str]
    model: Path
    resolution: int

    @property
    def dem_cube(self) -> str:
        return f"arcticdem_{self.resolution}m.icechunk"

    @property
    def periods(self) -> list[str]:
        from darts.sources.tcvis import tcvis_period

        return sorted({tcvis_period(int(s["datetime"][:4])) for s in self.scenes})


def compare(kind: str, clean: Path, faulted: Path, setup: Setup) -> list[str]:
    """Differences between what the fault-free and the faulted run of ``kind`` wrote."""
    from darts.sources.arcticdem import arcticdem_spec
    from darts.sources.tcvis import tcvis_spec

    store = ("sentinel2", "cdse")
    if kind == "prep":
        problems = scene_store_differences(clean.joinpath(*store), faulted.joinpath(*store))
        problems += cube_differences(
            clean / "auxiliary" / setup.dem_cube,
            faulted / "auxiliary" / setup.dem_cube,
            arcticdem_spec(setup.resolution),
        )
        for period in setup.periods:
            problems += cube_differences(
                clean / "auxiliary" / "tcvis.icechunk",
                faulted / "auxiliary" / "tcvis.icechunk",
                tcvis_spec(),
                period,
            )
        return problems
    if kind == "stac":
        problems = []
        for period in setup.periods:
            problems += cube_differences(
                clean / "tcvis-stac.icechunk", faulted / "tcvis-stac.icechunk", tcvis_spec(), period
            )
        return problems
    problems = scene_store_differences(clean.joinpath(*store), faulted.joinpath(*store))
    return problems + output_differences(clean / "out", faulted / "out", setup.online)


def run_all(
    sandbox: Sandbox, root: Path, setup: Setup, rate: float | None
) -> dict[str, tuple[Outcome, Path]]:
    """The three workloads, each in its own process; faulted at ``rate`` unless None."""
    config = sandbox.write_config(root / "sandbox.toml")
    ids = [s["id"] for s in setup.scenes]
    dem = ["--arcticdem-resolution", str(setup.resolution)]
    prep_dir, online_dir = root / "prep", root / "online"
    runs = {
        "prep": (
            ["inference", "prep-data", "sentinel2", "--scene-ids", *ids, "--optical", "--aux",
             *dem],
            prep_dir,
        ),
        "stac": (
            ["inference", "prep-data", "sentinel2", "--scene-ids", *ids, "--aux", *dem,
             "--tcvis-source", "stac", "--tcvis-dir", str(prep_dir / "tcvis-stac.icechunk"),
             "--arcticdem-dir", str(prep_dir / "auxiliary" / setup.dem_cube)],
            prep_dir,
        ),
        "online": (
            ["inference", "sentinel2-sequential", "--scene-ids", *setup.online,
             "--model-files", str(setup.model), *PATCHES, *dem],
            online_dir,
        ),
    }  # fmt: skip
    outcomes = {}
    for kind, (args, data_dir) in runs.items():
        if rate is None:
            outcome = darts(args, data_dir, config, sandbox)
        else:
            with faults_everywhere(sandbox, fault_mix(rate)):
                outcome = darts(args, data_dir, config, sandbox)
        print(
            f"  {kind}: exit {outcome.code}, {outcome.seconds:.1f} s, "
            f"{outcome.seen.total} requests",
            flush=True,
        )
        if outcome.code != 0:
            print("    " + outcome.tail.replace("\n", "\n    "), flush=True)
        outcomes[kind] = (outcome, data_dir)
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", choices=("small", "full"), default="small")
    parser.add_argument("--rate", type=float, default=0.2, help="share of requests faulted")
    parser.add_argument("--scenes", type=int, default=None, help="scenes staged (default all)")
    parser.add_argument("--online-scenes", type=int, default=2, help="scenes of the online run")
    parser.add_argument("--resolution", type=int, choices=(2, 10, 32), default=10)
    parser.add_argument("--trials", type=int, default=1, help="faulted runs, one seed each")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if not 0 < args.rate < 1 or args.trials < 1 or args.online_scenes < 1:
        parser.error("--rate must be in (0, 1); --trials and --online-scenes at least 1")
    if args.scenes is not None and args.scenes < 1:
        parser.error("--scenes must be at least 1")

    layout = world_layout(args.world)
    scenes = clear_scenes(layout)[: args.scenes]
    online = [s["id"] for s in scenes[: args.online_scenes]]
    print(
        f"{len(scenes)} scene(s) staged, {len(online)} run online; "
        f"faults: {args.rate:.0%} of requests"
    )
    names = {
        "prep": "prep-data --optical --aux",
        "stac": "prep-data --aux, TCVIS mirror",
        "online": "sentinel2-sequential, online",
    }
    workloads = {kind: Workload(name) for kind, name in names.items()}
    with tempfile.TemporaryDirectory(dir=work_folder(args.workdir)) as tmp:
        work = Path(tmp)
        setup = Setup(scenes, online, tiny_model(work), args.resolution)
        print("fault-free:", flush=True)
        with Sandbox(layout) as sandbox:
            clean = run_all(sandbox, work / "clean", setup, None)
        for kind, (outcome, _) in clean.items():
            workloads[kind].clean = outcome
        for trial in range(1, args.trials + 1):
            print(f"faulted, trial {trial} (fault schedule seed {trial}):", flush=True)
            with Sandbox(layout, seed=trial) as sandbox:
                faulted = run_all(sandbox, work / f"faulted-{trial}", setup, args.rate)
            for kind, (outcome, folder) in faulted.items():
                workloads[kind].faulted.append(outcome)
                workloads[kind].problems.append(compare(kind, clean[kind][1], folder, setup))
    return report(workloads, args.rate)


def _faults(seen: Traffic) -> str:
    kinds = seen.kinds()
    return (
        f"{seen.faulted} = {seen.rate:.1%} ({kinds['error']}/{kinds['reset']}/{kinds['truncate']})"
    )


def _row(
    name: str, clean: int, faulted: int, ratio: float, faults: str, code: int, problems: list[str]
) -> str:
    first = "yes" if code == 0 else f"NO (exit {code})"
    same = "yes" if not problems else f"NO ({len(problems)} differences)"
    return f"{name:<32} {clean:>6} {faulted:>8} {ratio:>5.2f}×  {faults:<24} {first:<14} {same}"


def report(workloads: dict[str, Workload], rate: float) -> int:
    print()
    header = (
        f"{'workload':<32} {'clean':>6} {'faulted':>8} {'ratio':>6}  {'faults seen':<24} "
        "first attempt  identical"
    )
    print(header)
    print("-" * len(header))
    ok = True
    totals = [0, 0, 0]  # fault-free requests, faulted-run requests, faults (all trials)
    for workload in workloads.values():
        clean = workload.clean
        assert clean is not None
        if clean.code != 0:
            print(f"{workload.name}: the fault-free run failed (exit {clean.code}):")
            print("    " + clean.tail.replace("\n", "\n    "))
            ok = False
        for index, (outcome, problems) in enumerate(
            zip(workload.faulted, workload.problems, strict=True)
        ):
            seen = outcome.seen
            ratio = seen.total / clean.seen.total if clean.seen.total else float("inf")
            totals = [
                totals[0] + clean.seen.total,
                totals[1] + seen.total,
                totals[2] + seen.faulted,
            ]
            name = workload.name if index == 0 else ""
            row = (name, clean.seen.total, seen.total, ratio, _faults(seen), outcome.code, problems)
            print(_row(*row))
            for problem in problems[:5]:
                print(f"    {problem}")
            ok = ok and ratio <= TARGET_RATIO and outcome.code == 0 and not problems
    if totals[0]:
        rate_seen = totals[2] / totals[1]
        ratio = totals[1] / totals[0]
        print(
            f"{'all':<32} {totals[0]:>6} {totals[1]:>8} {ratio:>5.2f}×  {rate_seen:.1%} of requests"
        )
    print(
        f"faults seen: faulted requests / all requests (429 or 503 / reset / truncated); "
        f"configured {rate:.0%}. Targets: ratio ≤ {TARGET_RATIO}×, every first attempt "
        "succeeds, outputs identical."
    )
    times = ", ".join(
        f"{w.name}: {w.clean.seconds:.0f} s → {max(o.seconds for o in w.faulted):.0f} s"
        for w in workloads.values()
        if w.clean is not None
    )
    print(f"wall time fault-free → faulted (the retries' backoff): {times}")
    print("all targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
