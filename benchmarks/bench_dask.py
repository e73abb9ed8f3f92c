"""The Dask run against the sequential one: staging + inference of several scenes.

Usage::

    .venv/bin/python benchmarks/bench_dask.py [--world small|full] [--scenes N]
        [--workers 2] [--encoder resnet18] [--patch-size 1024] [--overlap 256]
        [--batch-size 8] [--latency-ms 0] [--workdir DIR] [--keep]

Both runs start from an empty data directory and run online against the sandbox's
stand-ins (started in this process), so each stages its scenes (download, JPEG2000
decode, store write, ArcticDEM and TCVIS tiles) and segments them with a 13-band Unet
(``--encoder``, random weights, seed 0) on the CPU:

``--latency-ms`` makes every stand-in wait before it answers, as a remote service
would (the download then waits on the network, not on the CPU).

* **sequential**: ``darts inference sentinel2-sequential`` in a child process;
* **dask**: ``run_dask`` from this process on a local cluster of ``--workers``
  single-threaded worker processes on 127.0.0.1 (started before the clock runs; its
  start-up is printed apart).

Scenes: the clearest ``--scenes`` (default 4 on the small world, 2 on the full one) of
the main tile. The outputs of both runs are compared (completion records less their
timings, which list every file's SHA-256). Printed: both wall times and the speed-up
(target ≥ 1.7× with 2 workers on 2 cores), the Dask run's task stream summed per kind
of task and per worker (saved as JSON under the work folder: every task's worker,
start and stop), and the scheduler's overhead per scene: an empty task's round trip
through the same cluster times the tasks a scene takes, and the workers' idle time
within the run per scene (an upper bound: it includes waiting for work that was not
ready yet).

On a machine shared with other work the wall times swing; the CPU time of both runs
(this process's children included) is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench_common import world_layout

TARGET_SPEEDUP = 1.7


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", choices=("small", "full"), default="small")
    parser.add_argument("--scenes", type=int, default=None, help="default: 4 small, 2 full")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--patch-size", type=int, default=1024)
    parser.add_argument("--overlap", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="added to every stand-in's answers"
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    count = args.scenes or (4 if args.world == "small" else 2)

    from darts.sandbox.service import Sandbox

    layout = world_layout(args.world)
    scenes = clearest_scenes(layout, count)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="darts-bench-dask-"))
    work.mkdir(parents=True, exist_ok=True)
    model = model_file(work, args.encoder)
    patches = ["--patch-size", str(args.patch_size), "--overlap", str(args.overlap),
               "--batch-size", str(args.batch_size)]  # fmt: skip
    print(f"{len(scenes)} scene(s) of the {args.world} world, {args.encoder} Unet, "
          f"{os.cpu_count()} CPU(s), +{args.latency_ms:g} ms per request; work folder {work}",
          flush=True)  # fmt: skip
    try:
        with Sandbox(layout) as sandbox:
            if args.latency_ms:
                from darts.sandbox.faults_config import SERVER_NAMES
                from darts.sandbox.servers.faults import FaultConfig

                for name in SERVER_NAMES:
                    sandbox.set_faults(name, FaultConfig(latency_ms=args.latency_ms))
            config = sandbox.write_config(work / "sandbox.toml")
            sequential = run_sequential(work / "sequential", config, scenes, model, patches)
            dask = run_on_dask(work / "dask", config, scenes, model, args, work)
        identical = same_outputs(sequential["out"], dask["out"], scenes)
        report(sequential, dask, len(scenes), args.workers, identical)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if identical else 1


def clearest_scenes(layout: Any, count: int) -> list[str]:
    manifest = json.loads(layout.manifest.read_text())
    tile = manifest["main_tile"]
    scenes = [s for s in manifest["scenes"] if s["tile"] == tile]
    chosen = sorted(scenes, key=lambda s: (s["eo:cloud_cover"], s["id"]))[:count]
    if len(chosen) < count:
        raise SystemExit(f"the world has only {len(chosen)} scene(s) on its main tile")
    return [str(s["id"]) for s in chosen]


def model_file(work: Path, encoder: str) -> Path:
    """A 13-band Unet with random weights (seed 0)."""
    import segmentation_models_pytorch as smp
    import torch

    from darts.processing.features import ALL_FEATURES
    from darts.processing.models import save_darts_checkpoint

    path = work / f"unet-{encoder}-13band.pt"
    torch.manual_seed(0)
    module = smp.create_model(
        arch="unet", encoder_name=encoder, encoder_weights=None, in_channels=13, classes=1
    )
    settings = {"arch": "unet", "encoder_name": encoder, "in_channels": 13, "classes": 1}
    config = {"model": settings, "bands": list(ALL_FEATURES), "name": f"bench-{encoder}"}
    save_darts_checkpoint(module, config, path)
    return path


def environment(data_dir: Path, config: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "DARTS_OFFLINE",
                "DARTS_FAST_DATA_DIR", "DARTS_LARGE_DATA_DIR"):  # fmt: skip
        env.pop(var, None)
    env["DARTS_DATA_DIR"] = str(data_dir)
    env["DARTS_CONFIG_FILE"] = str(config)
    return env


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_sequential(
    data_dir: Path, config: Path, scenes: list[str], model: Path, patches: list[str]
) -> dict[str, Any]:
    print("sequential run ...", flush=True)
    script = "import sys; from darts.cli.main import main; sys.exit(main())"
    command = [sys.executable, "-c", script, "inference", "sentinel2-sequential",
               "--scene-ids", *scenes, "--model-files", str(model), *patches]  # fmt: skip
    # CPU: the child's, and this process's (the stand-ins serve it from here).
    cpu = children_cpu() + _process_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        command, env=environment(data_dir, config), capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the sequential run failed:\n{done.stdout}\n{done.stderr}")
    cpu = children_cpu() + _process_cpu() - cpu
    print(f"  {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    return {"wall": wall, "cpu": cpu, "out": data_dir / "out"}


def run_on_dask(
    data_dir: Path, config: Path, scenes: list[str], model: Path, args: Any, work: Path
) -> dict[str, Any]:
    from distributed import Client, LocalCluster, get_task_stream

    from darts.workspace import Workspace

    print(f"dask run ({args.workers} workers) ...", flush=True)
    for name, value in environment(data_dir, config).items():
        os.environ[name] = value
    started = time.perf_counter()
    with (
        LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True,
            host="127.0.0.1", dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        # Warm: every worker has imported what a scene needs, as on a long run.
        client.run(_import_pipeline)
        startup = time.perf_counter() - started
        workspace = Workspace(data_dir)
        cpu_before = _cluster_cpu(client)
        with get_task_stream(client) as stream:
            started = time.perf_counter()
            run = workspace.run_dask(
                scenes, [model], cluster=client, patch_size=args.patch_size,
                overlap=args.overlap, batch_size=args.batch_size,
            )  # fmt: skip
            wall = time.perf_counter() - started
        cpu = _cluster_cpu(client) - cpu_before
        roundtrip = empty_task_roundtrip(client)
        failed = [(r.scene_id, r.error) for r in run.results if r.status != "done"]
        if failed:
            raise SystemExit(f"the dask run failed scenes: {failed}")
    tasks = [_plain_task(task) for task in stream.data]
    stream_file = work / "dask-task-stream.json"
    stream_file.write_text(json.dumps(tasks, indent=1) + "\n")
    return {
        "wall": wall,
        "cpu": cpu,
        "startup": startup,
        "tasks": tasks,
        "stream_file": stream_file,
        "roundtrip": roundtrip,
        "out": data_dir / "out",
    }


def _import_pipeline() -> None:
    import darts.pipelines.dask_tasks
    import darts.pipelines.sequential  # noqa: F401


def _process_cpu() -> float:
    import psutil

    times = psutil.Process().cpu_times()
    return times.user + times.system


def _cluster_cpu(client: Any) -> float:
    """CPU seconds of the workers' processes and this one (the client, the scheduler
    and the sandbox's servers live here)."""
    return sum(client.run(_process_cpu).values()) + _process_cpu()


def empty_task_roundtrip(client: Any, count: int = 200) -> float:
    """Mean seconds from submitting an empty task to holding its result, one at a time."""
    started = time.perf_counter()
    for index in range(count):
        client.submit(_nothing, index, pure=False).result()
    return (time.perf_counter() - started) / count


def _nothing(value: int) -> int:
    return value


def _plain_task(task: dict[str, Any]) -> dict[str, Any]:
    compute = [s for s in task.get("startstops", ()) if s.get("action") == "compute"]
    start = min((s["start"] for s in compute), default=0.0)
    stop = max((s["stop"] for s in compute), default=0.0)
    return {"key": str(task["key"]), "worker": task["worker"], "start": start, "stop": stop}


def same_outputs(left_root: Path, right_root: Path, scenes: list[str]) -> bool:
    """Equal completion records less timings: every file's size and SHA-256 match."""
    from darts.processing.export import RECORD_NAME

    def record(folder: Path) -> dict[str, Any]:
        document = json.loads((folder / RECORD_NAME).read_text())
        document.pop("seconds", None)
        document.pop("created", None)
        return document

    return all(record(left_root / s) == record(right_root / s) for s in scenes)


def kind_of(key: str) -> str:
    return key.split("-", 1)[0]  # stage | aux | scene, as dask_run names them


def report(
    sequential: dict[str, Any], dask: dict[str, Any], scenes: int, workers: int, identical: bool
) -> None:
    tasks = dask["tasks"]
    by_kind: dict[str, list[float]] = defaultdict(list)
    busy: dict[str, float] = defaultdict(float)
    for task in tasks:
        by_kind[kind_of(task["key"])].append(task["stop"] - task["start"])
        busy[task["worker"]] += task["stop"] - task["start"]
    first = min(t["start"] for t in tasks)
    last = max(t["stop"] for t in tasks)
    span = last - first
    idle = sum(span - seconds for seconds in busy.values())
    per_scene_tasks = len(tasks) / scenes
    speedup = sequential["wall"] / dask["wall"]
    print()
    print(f"sequential: {sequential['wall']:7.1f} s wall, {sequential['cpu']:7.1f} s CPU")
    print(f"dask ({workers} workers): {dask['wall']:7.1f} s wall, {dask['cpu']:7.1f} s CPU "
          f"(cluster start-up {dask['startup']:.1f} s, not counted)")  # fmt: skip
    with_startup = sequential["wall"] / (dask["wall"] + dask["startup"])
    print(f"speed-up: {speedup:.2f}× (target ≥ {TARGET_SPEEDUP}×; "
          f"{with_startup:.2f}× with the start-up)")  # fmt: skip
    print(f"outputs identical: {'yes' if identical else 'NO'}")
    print(f"where the time goes (task stream: {dask['stream_file']}):")
    for kind, seconds in sorted(by_kind.items()):
        print(f"  {kind:6s} {len(seconds):3d} tasks  {sum(seconds):7.1f} s  "
              f"(mean {statistics.mean(seconds):.2f} s)")  # fmt: skip
    for worker, seconds in sorted(busy.items()):
        print(f"  worker {worker}: busy {seconds:.1f} s of {span:.1f} s ({seconds / span:.0%})")
    client_side = dask["wall"] - span
    print(
        f"  client before the first task and after the last: {client_side:.1f} s "
        "(models, discovery, planning the cube tiles, results)"
    )
    print("scheduler overhead per scene:")
    print(f"  empty task round trip {dask['roundtrip'] * 1e3:.1f} ms × {per_scene_tasks:.1f} "
          f"tasks per scene = {dask['roundtrip'] * per_scene_tasks * 1e3:.1f} ms")  # fmt: skip
    print(f"  workers idle within the run: {idle / scenes:.2f} s per scene (upper bound)")


if __name__ == "__main__":
    sys.exit(main())
