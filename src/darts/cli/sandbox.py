"""``darts sandbox build|serve``: the local stand-ins for CDSE, PGC and TCVIS."""

from __future__ import annotations

import signal
import threading
import time

from darts.cli.parser import CommandContext
from darts.errors import DartsError
from darts.paths import data_paths
from darts.sandbox.faults_config import load_faults
from darts.sandbox.layout import WorldLayout
from darts.sandbox.options import SandboxOptions
from darts.sandbox.service import Sandbox
from darts.sandbox.world import build_world


def _world(ctx: CommandContext) -> WorldLayout:
    options = ctx.settings.get(SandboxOptions)  # type: ignore[attr-defined]
    root = options.root or data_paths(ctx.settings).sandbox_dir  # type: ignore[arg-type]
    layout = WorldLayout.for_world(root, options.world, options.seed)
    if not layout.is_built():
        print(f"building the {options.world} world (seed {options.seed}) in {layout.root} ...")
    started = time.perf_counter()
    layout = build_world(root, options.world, options.seed, progress=_progress(ctx))
    elapsed = time.perf_counter() - started
    if elapsed > 1:
        print(f"built in {elapsed:.1f} s")
    return layout


def _progress(ctx: CommandContext):
    if ctx.verbosity:
        return lambda message: print(f"  {message}", flush=True)
    return None


def build(ctx: CommandContext) -> int:
    layout = _world(ctx)
    size = sum(p.stat().st_size for p in layout.root.rglob("*") if p.is_file())
    print(f"world ready: {layout.root} ({size / 1e6:.1f} MB)")
    return 0


def serve(ctx: CommandContext) -> int:
    options = ctx.settings.get(SandboxOptions)  # type: ignore[attr-defined]
    faults = load_faults(options.faults_file, options.latency_ms)
    layout = _world(ctx)
    stop = threading.Event()
    # SIGTERM (a job scheduler, `kill`) should stop as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with Sandbox(layout, faults=faults) as sandbox:
            ep = sandbox.endpoints
            print("sandbox running on 127.0.0.1:")
            print(f"  CDSE STAC        {ep.cdse_stac_url}")
            print(f"  CDSE S3          {ep.cdse_s3_endpoint}  (bucket eodata)")
            print(f"  PGC STAC         {ep.pgc_stac_url}")
            print(f"  ArcticDEM index  {ep.arcticdem_index_url}")
            print(f"  ArcticDEM COGs   {ep.pgc_data_url}/arcticdem/mosaics/v4.1/")
            print(f"  TCVIS STAC       {ep.tcvis_stac_url}")
            print(f"  Earth Engine     {ep.earth_engine_url}  (project {ep.ee_project})")
            if options.config_out:
                path = sandbox.write_config(options.config_out)
                print(f"config written to {path}; use it with")
                print(f"  export DARTS_CONFIG_FILE={path.resolve()}")
            print("press Ctrl-C to stop", flush=True)
            while not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    except FileNotFoundError as exc:
        raise DartsError(str(exc)) from None
    print("sandbox stopped")
    return 0


def selftest(ctx: CommandContext) -> int:
    from darts.sandbox.selftest import run_checks

    options = ctx.settings.get(SandboxOptions)  # type: ignore[attr-defined]
    faults = load_faults(options.faults_file, options.latency_ms)
    layout = _world(ctx)
    started = time.perf_counter()
    with Sandbox(layout, faults=faults) as sandbox:
        print(f"stand-ins up in {time.perf_counter() - started:.1f} s; checking each:")
        results = run_checks(sandbox)
    width = max(len(r.name) for r in results)
    for result in results:
        mark = "ok  " if result.ok else "FAIL"
        print(f"  {mark} {result.name:<{width}}  {result.seconds:6.2f} s  {result.detail}")
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
