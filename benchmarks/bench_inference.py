"""Inference on one whole scene: peak memory of the pipeline, and its overhead over
the bare model.

Usage::

    .venv/bin/python benchmarks/bench_inference.py [--world small|full] [--data-dir DIR]
        [--encoder resnet18] [--patch-size 1024] [--overlap 256] [--batch-size 8]
        [--max-patches N] [--separate-floor] [--floor-batch N] [--trace]

Setup (untimed, once): one scene of the sandbox world (the clearest of the main tile)
is staged with ``darts inference prep-data sentinel2 --optical --aux`` against the
sandbox stand-ins into ``--data-dir`` (default ``$TMPDIR/darts-bench-inference/WORLD``,
kept, so later runs skip staging; delete it to stage again). A 13-band Unet
(``--encoder``, resnet18 by default like the reference; random weights, seed 0) is
written there with ``save_darts_checkpoint``.

One child process runs ``darts inference sentinel2-sequential --offline`` on that
scene (patch 1024, overlap 256, batch 8 by default, on the CPU):

* **memory**: the whole pipeline (optical + aux load, preprocess, segment,
  postprocess, export) for the scene. Peak resident memory is the kernel's
  high-water mark (``VmHWM``) of the process, read and reset
  (``/proc/self/clear_refs``) at every step boundary, so each step's peak is known;
  the overall peak is the largest of them and is the whole process (interpreter,
  torch and the model included). Target ≤ 4 GB; the reference needs ≈ 38 GiB for
  such a scene (``../shared/reference/performance.md``). Step seconds come from the
  run's own results table. ``--trace`` adds per-step tracemalloc peaks (numpy and
  Python allocations, not torch's) and slows the run.
* **overhead**: ``predict_scene`` (patch selection, features per patch, forward
  passes, sigmoid, blending) is timed as the pipeline calls it, after one untimed
  warm-up forward pass (its memory is left out of the peak). The floor is the
  **bare** forward pass ``model(x)`` over the very same patches in the very same
  passes, on input tensors already built: every pass the pipeline makes is followed
  by a bare pass over the same tensor, timed on its own and taken out of
  predict_scene's time. Both are thus measured under the same load, pass by pass (two
  runs minutes apart on a shared machine differ by ±20 %). The bare passes hold the
  activations the pipeline's own pass just freed, so they add nothing to the peak.
  Overhead = predict_scene / bare, target ≤ 1.15. On the CPU a pass is one 1024²
  patch, as predict_scene does it (``CPU_PASS_PIXELS``: a pass of 8 patches needs
  ~5 GB of activations and is no faster per patch; on a busy 2-core machine it was
  several times slower). ``--separate-floor`` (implied by ``--floor-batch N`` or a
  GPU, where waiting for a bare pass would stop the pipeline's overlap) times the
  floor in a second child instead: the same run up to the segment step, then the
  bare passes over the same patches, inputs built untimed just before each batch.

Wall and CPU seconds are both printed: on a shared machine wall time swings with the
neighbours' load; CPU time swings less.

Duration: the model dominates. A 1024² patch takes ~2.2 s through a Unet-resnet18 on
2 idle cores, so the ``full`` world's 196 patches take ~7.5 min per pass and the
default run (two passes, plus staging on the first run) ~17 min; under load twice
that. ``--max-patches N`` runs only the first N patches that hold data (the rest
count as skipped) for a quick check; its numbers are not the whole scene's.
``--world small`` (1200², 4 patches) takes a couple of minutes.
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
from pathlib import Path
from typing import Any

TARGET_PEAK_BYTES = 4e9  # 4 GB
REFERENCE_PEAK_GIB = 38.0
TARGET_OVERHEAD = 1.15
BANDS_LABEL = "13-band"
STAGED_MARKER = "bench-inference-staged.json"
STEPS = ("optical", "aux", "preprocess", "segment", "postprocess", "export")
# The pipeline child's interval that is the benchmark's own work, not the pipeline's.
NOT_PIPELINE = "(warm-up forward pass, not counted)"


# -- setup -------------------------------------------------------------------------------


def world_layout(name: str) -> Any:
    from darts.sandbox.testing import sandbox_cache_root
    from darts.sandbox.world import build_world

    root = sandbox_cache_root()
    print(f"world {name!r} under {root} (built on first use; 'full' takes minutes)", flush=True)
    return build_world(root, name, seed=0, progress=lambda m: print("  build:", m, flush=True))


def pick_scene(layout: Any) -> str:
    """The clearest scene of the main tile (the most valid pixels)."""
    manifest = json.loads(layout.manifest.read_text())
    tile = manifest["main_tile"]
    scenes = [s for s in manifest["scenes"] if s["tile"] == tile]
    return str(min(scenes, key=lambda s: (s["eo:cloud_cover"], s["id"]))["id"])


def child_env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "DARTS_OFFLINE"):
        env.pop(var, None)
    for var in ("DARTS_FAST_DATA_DIR", "DARTS_LARGE_DATA_DIR"):
        env.pop(var, None)
    env["DARTS_DATA_DIR"] = str(data_dir / "darts")
    env["DARTS_CONFIG_FILE"] = str(data_dir / "sandbox.toml")
    return env


def stage(data_dir: Path, world: str) -> str:
    """The scene id, staged (optical + aux) under ``data_dir`` unless it already is."""
    marker = data_dir / STAGED_MARKER
    if marker.is_file():
        staged = json.loads(marker.read_text())
        if staged.get("world") == world:
            print(f"reusing staged scene {staged['scene_id']} in {data_dir}", flush=True)
            return str(staged["scene_id"])
        raise SystemExit(
            f"{data_dir} holds a scene of world {staged.get('world')!r}, not {world!r}"
        )
    from darts.sandbox.service import Sandbox

    layout = world_layout(world)
    scene_id = pick_scene(layout)
    data_dir.mkdir(parents=True, exist_ok=True)
    with Sandbox(layout) as sandbox:
        sandbox.write_config(data_dir / "sandbox.toml")
        started = time.perf_counter()
        command = [
            *darts_command(),
            "inference", "prep-data", "sentinel2", "--scene-ids", scene_id, "--optical", "--aux",
        ]  # fmt: skip
        done = subprocess.run(command, env=child_env(data_dir), capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"prep-data failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    print(f"staged {scene_id} (optical + aux) in {time.perf_counter() - started:.0f} s", flush=True)
    marker.write_text(json.dumps({"world": world, "scene_id": scene_id}) + "\n")
    return scene_id


def darts_command() -> list[str]:
    return [sys.executable, "-c", "import sys; from darts.cli.main import main; sys.exit(main())"]


def model_file(data_dir: Path, encoder: str) -> Path:
    """A 13-band Unet with random weights (seed 0), written once per encoder."""
    path = data_dir / "models" / f"unet-{encoder}-13band.pt"
    if path.is_file():
        return path
    import segmentation_models_pytorch as smp
    import torch

    from darts.processing.features import ALL_FEATURES
    from darts.processing.models import save_darts_checkpoint

    settings = {
        "arch": "unet",
        "encoder_name": encoder,
        "in_channels": len(ALL_FEATURES),
        "classes": 1,
    }
    torch.manual_seed(0)
    module = smp.create_model(
        arch="unet", encoder_name=encoder, encoder_weights=None, in_channels=13, classes=1
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"model": settings, "bands": list(ALL_FEATURES), "name": f"bench-unet-{encoder}"}
    save_darts_checkpoint(module, config, path)
    return path


# -- the children ------------------------------------------------------------------------


def run_child(
    mode: str, args: argparse.Namespace, data_dir: Path, scene_id: str, model: Path
) -> dict[str, Any]:
    # Named by this process: two benchmark runs on one data folder must not mix.
    report = data_dir / f"bench-{mode}-{os.getpid()}.json"
    report.unlink(missing_ok=True)
    spec = {
        "mode": mode,
        "report": str(report),
        "trace": bool(args.trace),
        "max_patches": args.max_patches,
        "floor_batch": args.floor_batch,
        "interleave": interleaved(args),
        "argv": [
            "inference", "sentinel2-sequential", "--offline", "--overwrite",
            "--scene-ids", scene_id, "--model-files", str(model), "--device", args.device,
            "--patch-size", str(args.patch_size), "--overlap", str(args.overlap),
            "--batch-size", str(args.batch_size),
            "--output-dir", str(output_dir(data_dir, mode)),
        ],
    }  # fmt: skip
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=child_env(data_dir))
    _pid, status, usage = os.wait4(process.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if not report.is_file():
        raise SystemExit(f"{mode} child failed (exit {code}), no report")
    result = dict(json.loads(report.read_text()))
    result.update(wall=wall, child_cpu=usage.ru_utime + usage.ru_stime, exit=code)
    report.unlink()
    shutil.rmtree(output_dir(data_dir, mode), ignore_errors=True)
    return result


def output_dir(data_dir: Path, mode: str) -> Path:
    """Where a child's run writes (removed afterwards): one per benchmark process."""
    return data_dir / "runs" / f"{mode}-{os.getpid()}"


def child_main(spec: dict[str, Any]) -> int:
    """Runs inside a child: the darts CLI with the measurement hooks of its mode."""
    import darts.pipelines.sequential as sequential
    from darts.cli.main import main

    if spec["mode"] == "pipeline":
        probe = _StepMemory(trace=spec["trace"])
        probe.install(sequential)
        timing: dict[str, Any] = {}
        _install_timed_predict(sequential, probe, timing, spec["max_patches"], spec["interleave"])
        code = main(spec["argv"])
        probe.finish()
        document = {"code": code, **probe.document(), "predict": timing}
        document["results"] = _results_table(spec["argv"])
        Path(spec["report"]).write_text(json.dumps(document, indent=2) + "\n")
        return code
    _install_bare_floor(sequential, spec["report"], spec["max_patches"], spec["floor_batch"])
    return main(spec["argv"])  # only returns when the segment step was never reached


def _results_table(argv: list[str]) -> list[dict[str, Any]]:
    """This process's run record (run folders end in the pid of their process)."""
    out = Path(argv[argv.index("--output-dir") + 1])
    (run,) = (out / "runs").glob(f"*-{os.getpid()}")
    return list(json.loads((run / "results.json").read_text())["results"])


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


class _StepMemory:
    """Peak RSS per pipeline step: VmHWM read and reset at each ``StepClock`` boundary
    (and where the benchmark's own work starts and ends)."""

    def __init__(self, trace: bool) -> None:
        self.trace = trace
        self.steps: list[dict[str, Any]] = []
        self.label = "startup (imports, models, readiness)"
        try:
            self._reset()
            self.resettable = True
        except OSError:
            self.resettable = False
        if trace:
            import tracemalloc

            tracemalloc.start()

    def _reset(self) -> None:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")

    def boundary(self, next_label: str) -> None:
        entry: dict[str, Any] = {
            "step": self.label,
            "peak_kib": _status_kib("VmHWM"),
            "rss_after_kib": _status_kib("VmRSS"),
        }
        if self.trace:
            import tracemalloc

            entry["traced_now"], entry["traced_peak"] = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
        self.steps.append(entry)
        self.label = next_label
        if self.resettable:
            self._reset()

    def install(self, sequential: Any) -> None:
        clock = sequential.StepClock
        enter, leave = clock.__enter__, clock.__exit__
        probe = self

        def __enter__(self: Any) -> None:
            probe.boundary(self._step)
            enter(self)

        def __exit__(self: Any, *exc: object) -> None:
            leave(self, *exc)
            probe.boundary(f"between steps (after {self._step})")

        clock.__enter__, clock.__exit__ = __enter__, __exit__

    def finish(self) -> None:
        self.boundary("done")

    def document(self) -> dict[str, Any]:
        counted = [s["peak_kib"] for s in self.steps if s["step"] != NOT_PIPELINE]
        return {"peak_kib": max(counted), "resettable": self.resettable, "steps": self.steps}


def _plan(
    shape: tuple[int, int], valid: Any, params: Any, max_patches: int | None
) -> tuple[Any, list[tuple[int, int, int, int]]]:
    """The valid function predict_scene is to get (limited to the first
    ``max_patches`` patches holding data, when given) and the windows it will run."""
    import numpy as np

    from darts.processing import inference

    valid_of = inference._valid_function(valid, shape)
    run = [w for w in inference.iter_patch_windows(shape, params) if valid_of(w).any()]
    if max_patches is None or len(run) <= max_patches:
        return valid, run
    allowed = set(run[:max_patches])

    def limited(window: tuple[int, int, int, int]) -> np.ndarray:
        mask = valid_of(window)
        return mask if window in allowed else np.zeros_like(mask)

    return limited, run[:max_patches]


def _install_timed_predict(
    sequential: Any,
    probe: _StepMemory,
    timing: dict[str, Any],
    max_patches: int | None,
    interleave: bool,
) -> None:
    """Wrap the pipeline's predict_scene: an untimed warm-up pass (left out of the
    memory figures), then predict_scene timed exactly as the pipeline calls it. With
    ``interleave``, every forward pass the pipeline makes is followed by a bare pass of
    the model over the same input tensor, timed on its own and taken out of
    predict_scene's time (see `_Twin`)."""
    import torch

    from darts.processing import inference

    real = sequential.predict_scene

    def measured(models, shape, read_patch, valid, params, **kwargs):  # type: ignore[no-untyped-def]
        valid, run = _plan(shape, valid, params, max_patches)
        probe.boundary(NOT_PIPELINE)
        frame = inference._frame(shape, params, inference._multiple(models))
        bands = inference.ensemble_bands(models)
        with torch.inference_mode():
            for model in models:  # one patch: what a CPU pass gets
                model.module(torch.zeros((1, len(bands), *frame.size)).to(model.device))
        probe.boundary("segment")
        twins = [_Twin(model.module) for model in models] if interleave else []
        for model, twin in zip(models, twins, strict=False):
            object.__setattr__(model, "module", twin)
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            result = real(models, shape, read_patch, valid, params, **kwargs)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            for model, twin in zip(models, twins, strict=False):
                object.__setattr__(model, "module", twin.inner)
        bare_wall = sum(t.wall for t in twins)
        bare_cpu = sum(t.cpu for t in twins)
        timing.update(
            wall=wall - bare_wall,
            cpu=cpu - bare_cpu,
            model_wall=result.seconds_model - bare_wall,
            patches=result.n_patches,
            skipped=result.n_skipped,
            run=result.n_run,
            limited=max_patches is not None and result.n_run == max_patches,
            torch_threads=torch.get_num_threads(),
            device=str(models[0].device),
        )
        if twins:
            timing["floor"] = {
                "run": result.n_run,
                "passes": sum(t.passes for t in twins),
                "per_pass": max(t.largest for t in twins),
                "wall": bare_wall,
                "cpu": bare_cpu,
                "interleaved": True,
            }
        assert result.n_run == len(run)
        return result

    sequential.predict_scene = measured


class _Twin:
    """Stands in for a model's module during predict_scene: each call runs the real
    module for the pipeline, then once more, bare, over the same (already built)
    input tensor, timing only that second pass. The floor and the pipeline are then
    measured under the same load, pass by pass, which two runs minutes apart on a
    shared machine are not. CPU only: on a GPU the wait for the bare pass would stop
    the pipeline's overlap of features and forward passes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.wall = self.cpu = 0.0
        self.passes = self.largest = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # e.g. encoder.output_stride, parameters()

    def __call__(self, x: Any) -> Any:
        out = self.inner(x)
        wall, cpu = time.perf_counter(), time.process_time()
        self.inner(x)
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        self.passes += 1
        self.largest = max(self.largest, int(x.shape[0]))
        return out


def _install_bare_floor(
    sequential: Any, report: str, max_patches: int | None, floor_batch: int | None
) -> None:
    """Replace the pipeline's predict_scene: the bare forward pass over the patches
    predict_scene would run, then write the report and end the process."""
    import numpy as np
    import torch

    from darts.processing import inference

    def floor(models, shape, read_patch, valid, params, **kwargs):  # type: ignore[no-untyped-def]
        if len(models) != 1:
            raise SystemExit("the bare floor is defined for one model")
        model = models[0]
        _valid, run = _plan(shape, valid, params, max_patches)
        batches = [run[i : i + params.batch_size] for i in range(0, len(run), params.batch_size)]
        bands = inference.ensemble_bands(models)
        frame = inference._frame(shape, params, inference._multiple(models))
        buffer = np.empty((params.batch_size, len(bands), *frame.size), dtype=np.float32)

        def forward(start: int, stop: int) -> tuple[float, float]:
            x = torch.from_numpy(buffer[start:stop]).to(model.device)
            wall, cpu = time.perf_counter(), time.process_time()
            out = model.module(x)
            if out.device.type == "cuda":
                torch.cuda.synchronize(out.device)
            return time.perf_counter() - wall, time.process_time() - cpu

        # The passes predict_scene makes: on a GPU a batch per pass; on the CPU at
        # most CPU_PASS_PIXELS input pixels per pass (one 1024² patch).
        per_pass = params.batch_size
        if model.device.type == "cpu":
            per_pass = max(1, inference.CPU_PASS_PIXELS // (frame.size[0] * frame.size[1]))
        per_pass = min(floor_batch or per_pass, params.batch_size)
        bare_wall = bare_cpu = 0.0
        passes = 0
        with torch.inference_mode():
            if batches:  # warm-up, untimed
                buffer[...] = 0.0
                forward(0, min(per_pass, len(batches[0])))
            for batch in batches:
                inference._fill(buffer, batch, read_patch, bands, frame)  # untimed
                for start in range(0, len(batch), per_pass):
                    wall, cpu = forward(start, min(start + per_pass, len(batch)))
                    bare_wall += wall
                    bare_cpu += cpu
                    passes += 1
        document = {
            "run": len(run),
            "batches": len(batches),
            "passes": passes,
            "per_pass": per_pass,
            "wall": bare_wall,
            "cpu": bare_cpu,
            "torch_threads": torch.get_num_threads(),
        }
        Path(report).write_text(json.dumps(document, indent=2) + "\n")
        sys.stdout.flush()
        os._exit(0)

    sequential.predict_scene = floor


# -- reporting ---------------------------------------------------------------------------


def gib(kib: float) -> str:
    return f"{kib * 1024 / 2**30:5.2f} GiB ({kib * 1024 / 1e9:5.2f} GB)"


def step_table(result: dict[str, Any]) -> list[tuple[str, int, float]]:
    """(step, peak KiB, seconds) per pipeline step, repeated intervals merged."""
    peaks: dict[str, int] = {}
    for entry in result["steps"]:
        name = entry["step"]
        if name.startswith("between steps"):
            name = "between steps"
        peaks[name] = max(peaks.get(name, 0), entry["peak_kib"])
    seconds = result["results"][0]["seconds"] if result["results"] else {}
    order = ["startup (imports, models, readiness)", *STEPS, "between steps", NOT_PIPELINE]
    return [(name, peaks[name], seconds.get(name, float("nan"))) for name in order if name in peaks]


def report_pipeline(result: dict[str, Any]) -> None:
    print("\n== the whole pipeline, one scene (child process)")
    if not result["resettable"]:
        print("  (VmHWM could not be reset: per-step peaks are cumulative)")
    print(f"  {'step':40} {'peak resident memory':>24}   {'seconds':>8}")
    for name, peak, seconds in step_table(result):
        shown = "" if seconds != seconds else f"{seconds:8.1f}"  # NaN: not a timed step
        print(f"  {name:40} {gib(peak):>24}   {shown:>8}")
    if result.get("trace"):
        for entry in result["steps"]:
            print(f"    traced {entry['step']:40} peak {entry['traced_peak'] / 2**30:5.2f} GiB")
    peak = result["peak_kib"] * 1024
    verdict = "ok" if peak <= TARGET_PEAK_BYTES else "OVER TARGET"
    print(
        f"  peak RSS: {gib(result['peak_kib'])}; target <= {TARGET_PEAK_BYTES / 1e9:.0f} GB "
        f"({verdict}); reference ≈ {REFERENCE_PEAK_GIB:.0f} GiB "
        f"({peak / 2**30 / REFERENCE_PEAK_GIB:.1%} of it)"
    )
    for row in result["results"]:
        seconds = row["seconds"]
        print(
            f"  scene {row['scene_id']}: {row['status']}, {sum(seconds.values()):.1f} s in "
            f"steps; patches {row['patches']}, skipped {row['patches_skipped']}"
        )
        if row.get("error"):
            print(f"  error: {row['error']}")
    print(
        f"  child: wall {result['wall']:.1f} s, cpu {result['child_cpu']:.1f} s, "
        f"exit {result['exit']}"
    )


def report_overhead(pipeline: dict[str, Any], floor: dict[str, Any]) -> None:
    predict = pipeline["predict"]
    print("\n== inference overhead: predict_scene vs the bare model(batch), same patches")
    limited = " (LIMITED by --max-patches: not the whole scene)" if predict["limited"] else ""
    print(
        f"  patches {predict['patches']}, skipped {predict['skipped']} (no valid pixel), run "
        f"{predict['run']}{limited}; device {predict['device']}, torch threads "
        f"{predict['torch_threads']}"
    )
    if floor["run"] != predict["run"]:
        print(f"  WARNING: the floor ran {floor['run']} patches, predict_scene {predict['run']}")
    print(
        f"  predict_scene    wall {predict['wall']:8.1f} s   cpu {predict['cpu']:8.1f} s"
        f"   (of it waiting on the model: {predict['model_wall']:.1f} s)"
    )
    how = "interleaved with the pipeline's passes" if floor.get("interleaved") else "own child"
    print(
        f"  bare forward     wall {floor['wall']:8.1f} s   cpu {floor['cpu']:8.1f} s"
        f"   ({floor['passes']} passes of up to {floor['per_pass']} patch(es), {how})"
    )
    if floor["wall"] > 0:
        ratio = predict["wall"] / floor["wall"]
        cpu = predict["cpu"] / floor["cpu"] if floor["cpu"] else float("nan")
        verdict = "ok" if ratio <= TARGET_OVERHEAD else "OVER TARGET"
        per = floor["wall"] / max(floor["run"], 1)
        print(
            f"  overhead: {ratio:.3f}x wall ({cpu:.3f}x cpu); target <= {TARGET_OVERHEAD} "
            f"({verdict}); bare forward {per:.2f} s per patch"
        )


def interleaved(args: argparse.Namespace) -> bool:
    """The floor runs pass by pass inside the pipeline child (`_Twin`) on the CPU with
    the pipeline's own passes; otherwise in a child of its own."""
    return args.device == "cpu" and args.floor_batch is None and not args.separate_floor


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child_main(json.loads(argv[1]))
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--world", choices=("small", "full"), default="full")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="staged scene and model (kept, reused)"
    )
    parser.add_argument("--encoder", default="resnet18", help="smp encoder of the Unet")
    parser.add_argument("--patch-size", type=int, default=1024)
    parser.add_argument("--overlap", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--max-patches", type=int, default=None, help="quick check: run only N patches"
    )
    parser.add_argument(
        "--floor-batch",
        type=int,
        default=None,
        help="patches per bare forward pass (default: the passes predict_scene makes)",
    )
    parser.add_argument(
        "--separate-floor",
        action="store_true",
        help="time the bare floor in a second child, not interleaved with the pipeline",
    )
    parser.add_argument("--trace", action="store_true", help="tracemalloc per step (slower)")
    args = parser.parse_args(argv)

    default_dir = Path(tempfile.gettempdir()) / "darts-bench-inference" / args.world
    data_dir = (args.data_dir or default_dir).resolve()
    scene_id = stage(data_dir, args.world)
    model = model_file(data_dir, args.encoder)
    print(
        f"scene {scene_id} ({args.world} world), {BANDS_LABEL} Unet-{args.encoder}, patch "
        f"{args.patch_size}, overlap {args.overlap}, batch {args.batch_size}, {args.device}; "
        f"{os.cpu_count()} cores, load average {load()}",
        flush=True,
    )
    pipeline = run_child("pipeline", args, data_dir, scene_id, model)
    pipeline["trace"] = args.trace
    report_pipeline(pipeline)
    if interleaved(args):
        floor = pipeline["predict"]["floor"]
    else:
        floor = run_child("floor", args, data_dir, scene_id, model)
    report_overhead(pipeline, floor)
    print(f"\nload average at the end {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
