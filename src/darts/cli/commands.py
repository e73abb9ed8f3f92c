"""The command registry: every leaf command with its help and handler; the option
sections of each are in `darts.settings.commands`."""

from __future__ import annotations

from collections.abc import Callable

from darts.cli.parser import Command, CommandContext
from darts.settings import commands as specs


def _lazy(module: str, function: str) -> Callable[[CommandContext], int]:
    """Import a command's implementation only when it runs, so `darts --help` and
    light commands do not pay for loading moto, rasterio or torch."""

    def handler(ctx: CommandContext) -> int:
        import importlib

        return getattr(importlib.import_module(module), function)(ctx)

    return handler


GROUP_HELP: dict[tuple[str, ...], str] = {
    ("inference",): "stage data and run thaw-slump inference",
    ("inference", "prep-data"): "stage data ahead of (offline) runs",
    ("inference", "readiness"): "check that staged data covers a run",
    ("sandbox",): "local stand-ins for the remote services, over a synthetic Arctic world",
}

ALL_COMMANDS: list[Command] = [
    Command(
        specs.DEMO,
        help="run the whole chain on the sandbox's synthetic world with the demo model "
        "and score it against the ground truth",
        handler=_lazy("darts.cli.demo", "demo"),
    ),
    Command(
        specs.DEBUG_PATHS,
        help="print every resolved path and setting, and where each value came from",
        handler=_lazy("darts.cli.debug_paths", "run"),
    ),
    Command(
        specs.PREP_DATA,
        help="stage Sentinel-2 scenes and auxiliary data (ArcticDEM, TCVIS) for offline runs",
        handler=_lazy("darts.cli.inference", "prep_data_sentinel2"),
    ),
    Command(
        specs.READINESS,
        help="check, without network, that everything an offline run needs is staged",
        handler=_lazy("darts.cli.inference", "readiness_sentinel2"),
    ),
    Command(
        specs.SEQUENTIAL,
        help="segment thaw slumps in Sentinel-2 scenes, one scene after another",
        handler=_lazy("darts.cli.inference_run", "sentinel2_sequential"),
    ),
    Command(
        specs.SANDBOX_BUILD,
        help="build (once) and cache a synthetic world",
        handler=_lazy("darts.cli.sandbox", "build"),
    ),
    Command(
        specs.SANDBOX_SERVE,
        help="serve a synthetic world through local CDSE, PGC and TCVIS stand-ins",
        handler=_lazy("darts.cli.sandbox", "serve"),
    ),
    Command(
        specs.SANDBOX_SELFTEST,
        help="start the stand-ins and check each through the real client code",
        handler=_lazy("darts.cli.sandbox", "selftest"),
    ),
]
