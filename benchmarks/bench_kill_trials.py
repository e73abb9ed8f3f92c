"""Kill -9 trials: prep-data killed at random moments, then resumed by a plain re-run.

Usage::

    .venv/bin/python benchmarks/bench_kill_trials.py [--trials 30] [--scenes 4]
        [--world small|full] [--seed 0] [--workdir DIR]

On the sandbox (every stand-in on 127.0.0.1), ``prep-data --optical --aux`` for the
clear scenes of the main tile (``--scenes``, default 4 on the small world: their
ArcticDEM tiles at 10 m, their TCVIS periods from the Earth Engine stand-in, then the
scene bands from the S3 stand-in) runs once uninterrupted, for its time and its
contents. Then ``--trials`` times, each into an empty data dir: the same command as its
own ``darts`` process, killed with SIGKILL after a time drawn uniformly from 3–97 % of
the uninterrupted run's (seeded by ``--seed``; a kill that comes after the run has
ended is reported and drawn again), then

- ``darts cache verify`` (every byte of every stored band and cube chunk): no damage
  (a dead process's scratch is not damage; the next writer removes it);
- the same command again: it must succeed;
- the two together hold exactly what the uninterrupted run holds (every band pixel, every
  cube tile record and pixel), and ``darts cache verify`` finds nothing, not even a
  leftover;
- nothing committed before the kill was fetched again (band objects from the S3 log,
  cube tiles from the re-run's report).

Printed: a line per trial (kill time; phase: ``start`` before the first commit, then
``ArcticDEM``, ``TCVIS``, ``optical`` by the first not yet complete, ``finish`` when
everything was committed and the run was writing its report; the resume's time), then
the counts against the targets (kills landed, 0 corrupt, every resume completes,
identical, clean, nothing refetched) and the resumes' times against the uninterrupted
run's. ~25 min for 30 trials on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench_common import work_folder, world_layout

from darts.sandbox.kill_trials import (
    PHASES,
    CubeRef,
    StagingRun,
    Trial,
    committed_work,
    kill_trial,
    run_darts,
)
from darts.sandbox.layout import WorldLayout
from darts.sandbox.service import Sandbox

KILL_WINDOW = (0.03, 0.97)  # of the uninterrupted run's time


def staging_run(layout: WorldLayout, scenes: int | None) -> StagingRun:
    from darts.sources.arcticdem import arcticdem_spec
    from darts.sources.tcvis import tcvis_period, tcvis_spec

    manifest = json.loads(layout.manifest.read_text())
    tile = manifest["main_tile"]
    clear = sorted(
        (
            s
            for s in manifest["scenes"]
            if s["tile"] == tile and s["eo:cloud_cover"] <= 10 and s["eo:snow_cover"] <= 10
        ),
        key=lambda s: s["id"],
    )[:scenes]
    periods = sorted({tcvis_period(int(s["datetime"][:4])) for s in clear})
    cubes = (CubeRef("auxiliary/arcticdem_10m.icechunk", arcticdem_spec(10), "", "ArcticDEM"),)
    cubes += tuple(CubeRef("auxiliary/tcvis.icechunk", tcvis_spec(), p, "TCVIS") for p in periods)
    ids = [s["id"] for s in clear]
    args = ("inference", "prep-data", "sentinel2", "--scene-ids", *ids, "--optical", "--aux")
    return StagingRun((*args, "--arcticdem-resolution", "10"), cubes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", choices=("small", "full"), default="small")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--scenes", type=int, default=4, help="scenes staged per run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if args.trials < 1 or args.scenes < 1:
        parser.error("--trials and --scenes must be at least 1")

    layout = world_layout(args.world)
    run = staging_run(layout, args.scenes)
    rng = random.Random(args.seed)
    trials: list[Trial] = []  # kills that landed
    late: list[Trial] = []  # kills drawn after the run had ended
    workdir = work_folder(args.workdir)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp, Sandbox(layout) as sandbox:
        work = Path(tmp)
        config = sandbox.write_config(work / "sandbox.toml")
        reference = work / "reference"
        done = run_darts(run.args, reference, config, timeout_s=1800)
        if done.code != 0:
            print(f"the uninterrupted run failed (exit {done.code}):\n{done.tail}")
            return 1
        complete = committed_work(reference, run)
        print(
            f"uninterrupted: {done.seconds:.1f} s, {len(complete.bands)} scene bands, "
            f"{len(complete.tiles)} cube tiles",
            flush=True,
        )
        draws = 0
        # A kill drawn after the run had already ended tests nothing: it is reported and
        # drawn again (at most as many extra draws as trials asked for).
        while len(trials) < args.trials and draws < 2 * args.trials:
            draws += 1
            kill_after = rng.uniform(*KILL_WINDOW) * done.seconds
            data_dir = work / f"draw-{draws}"
            trial = kill_trial(
                sandbox, run, data_dir, config,
                reference=reference, complete=complete, kill_after_s=kill_after,
            )  # fmt: skip
            shutil.rmtree(data_dir, ignore_errors=True)
            if not trial.landed:
                late.append(trial)
                print(
                    f"draw {draws:>2}: the run had ended at {trial.kill_after_s:.1f} s; drawn again"
                )
                continue
            trials.append(trial)
            resume = f"{trial.resume.seconds:.1f} s" if trial.resume else "-"
            verdict = "ok" if trial.ok else "PROBLEMS"
            print(
                f"trial {len(trials):>2}: killed at {trial.kill_after_s:5.1f} s "
                f"({trial.phase:<9}) {len(trial.done_at_kill.bands):>2} bands + "
                f"{len(trial.done_at_kill.tiles):>2} tiles committed; resume {resume}; {verdict}",
                flush=True,
            )
            for problem in trial.problems()[:5]:
                print(f"    {problem}", flush=True)
    return report(trials, late, args.trials, done.seconds)


def report(trials: list[Trial], late: list[Trial], wanted: int, reference_s: float) -> int:
    n = len(trials)

    def count(check) -> int:
        return sum(1 for t in trials if check(t))

    corrupt = count(lambda t: t.corrupt)
    resumed = count(lambda t: t.resume is not None and t.resume.code == 0)
    identical = count(lambda t: t.resume is not None and t.resume.code == 0 and not t.differences)
    clean = count(lambda t: t.resume is not None and t.resume.code == 0 and not t.unclean)
    refetched = sum(len(t.refetched) for t in trials)
    phases = Counter(t.phase for t in trials)
    times = [t.resume.seconds for t in trials if t.resume is not None]
    print()
    print(f"kills that landed (process running):  {n}/{wanted}   (target {wanted})")
    print(f"kills drawn after the run had ended:  {len(late)} (drawn again; not trials)")
    print(f"corrupt after the kill:               {corrupt}      (target 0)")
    print(f"resumes completed:                    {resumed}/{n}   (target {n}/{n})")
    print(f"identical to the uninterrupted run:   {identical}/{n}   (target {n}/{n})")
    print(f"cache verify clean after the resume:  {clean}/{n}   (target {n}/{n})")
    print(f"committed work fetched again:         {refetched}      (target 0)")
    print("kills by phase: " + ", ".join(f"{p} {phases[p]}" for p in PHASES if phases[p]))
    if times:
        print(
            f"uninterrupted run {reference_s:.1f} s; resumes "
            f"{min(times):.1f}/{statistics.median(times):.1f}/{max(times):.1f} s "
            f"(min/median/max), {statistics.median(times) / reference_s:.2f}× by median"
        )
    ok = n == wanted and resumed == identical == clean == n and not corrupt and not refetched
    ok = ok and all(t.resume is not None and t.resume.code == 0 for t in late)
    if n < 30:
        print(f"note: {n} trial(s); the reliability target is judged on at least 30")
    print("all targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
