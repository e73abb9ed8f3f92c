"""The command registry: every leaf command, its option sections and its handler.

The config-file reader validates against this whole list, so a key that no command
knows is an error wherever it appears in the file.
"""

from __future__ import annotations

from collections.abc import Callable

from darts.cli.parser import Command, CommandContext
from darts.demo.options import DemoOptions
from darts.sandbox.options import SandboxOptions
from darts.settings.pipeline import (
    Connectivity,
    Filters,
    SavedSceneIds,
    Selection,
    Staging,
)
from darts.settings.processing import Export, Models, Postprocess, Terrain
from darts.settings.resolve import CommandSpec
from darts.settings.sections import DefaultDirs, Endpoints, Network, Storage


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
        CommandSpec(("demo",), (DemoOptions, DefaultDirs)),
        help="run the whole chain on the sandbox's synthetic world with the demo model "
        "and score it against the ground truth",
        handler=_lazy("darts.cli.demo", "demo"),
    ),
    Command(
        CommandSpec(("debug-paths",), (DefaultDirs, Storage, Endpoints, Network)),
        help="print every resolved path and setting, and where each value came from",
        handler=_lazy("darts.cli.debug_paths", "run"),
    ),
    Command(
        CommandSpec(
            ("inference", "prep-data", "sentinel2"),
            (
                Selection,
                Filters,
                Staging,
                SavedSceneIds,
                Storage,
                Terrain,
                Connectivity,
                DefaultDirs,
                Endpoints,
                Network,
            ),
        ),
        help="stage Sentinel-2 scenes and auxiliary data (ArcticDEM, TCVIS) for offline runs",
        handler=_lazy("darts.cli.inference", "prep_data_sentinel2"),
    ),
    Command(
        CommandSpec(
            ("inference", "readiness", "sentinel2"),
            (
                Selection,
                Staging,
                SavedSceneIds,
                Storage,
                Terrain,
                Connectivity,
                DefaultDirs,
                Endpoints,
                Network,
            ),
        ),
        help="check, without network, that everything an offline run needs is staged",
        handler=_lazy("darts.cli.inference", "readiness_sentinel2"),
    ),
    Command(
        CommandSpec(
            ("inference", "sentinel2-sequential"),
            (
                Selection,
                Filters,
                SavedSceneIds,
                Storage,
                Terrain,
                Models,
                Postprocess,
                Export,
                Connectivity,
                DefaultDirs,
                Endpoints,
                Network,
            ),
        ),
        help="segment thaw slumps in Sentinel-2 scenes, one scene after another",
        handler=_lazy("darts.cli.inference_run", "sentinel2_sequential"),
    ),
    Command(
        CommandSpec(("sandbox", "build"), (DefaultDirs, SandboxOptions)),
        help="build (once) and cache a synthetic world",
        handler=_lazy("darts.cli.sandbox", "build"),
    ),
    Command(
        CommandSpec(("sandbox", "serve"), (DefaultDirs, SandboxOptions)),
        help="serve a synthetic world through local CDSE, PGC and TCVIS stand-ins",
        handler=_lazy("darts.cli.sandbox", "serve"),
    ),
    Command(
        CommandSpec(("sandbox", "selftest"), (DefaultDirs, SandboxOptions)),
        help="start the stand-ins and check each through the real client code",
        handler=_lazy("darts.cli.sandbox", "selftest"),
    ),
]
