"""``darts demo``: the whole chain on the sandbox world, scored against its ground truth."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from darts.cli.parser import CommandContext
from darts.demo.options import DemoOptions
from darts.paths import data_paths


def _program() -> str:
    """How to call the ``darts`` script that runs now, in commands the demo prints:
    ``darts`` when that finds this script, else its path (``make demo`` runs
    ``.venv/bin/darts``, which a fresh shell may not have on its PATH)."""
    script = Path(sys.argv[0])
    if script.name != "darts" or not script.is_file():
        return "darts"
    found = shutil.which("darts")
    if found is not None and Path(found).resolve() == script.resolve():
        return "darts"
    return str(script.absolute())


def demo(ctx: CommandContext) -> int:
    from darts.demo import DEMO_MODEL
    from darts.pipelines.demo import DemoRequest, format_report, run_demo
    from darts.processing.checkpoints import read_checkpoint

    options = ctx.settings.get(DemoOptions)  # type: ignore[attr-defined]
    paths = data_paths(ctx.settings)  # type: ignore[arg-type]
    request = DemoRequest(
        demo_dir=options.demo_dir or paths.darts_dir / "demo",
        sandbox_root=options.sandbox_root or paths.sandbox_dir,
        model_file=options.model_file or DEMO_MODEL,
        raw_data_source=options.raw_data_source,
        program=_program(),
    )
    # Refuse a missing or unusable model now, not after minutes of staging.
    read_checkpoint(request.model_file)
    report = run_demo(request, say=lambda line: print(line, flush=True))
    for line in format_report(report):
        print(line)
    if not report.ok:
        print(f"darts demo: {report.failed_step} failed", file=sys.stderr)
    return report.exit_code
