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


# One id of each source's form, for the examples (the sandbox world's own scenes).
_CDSE_ID = "S2A_MSIL2A_20240715T203849_N0510_R029_T08WNB_20240716T012536"
_ID_FORMS = (
    "scene ids by --raw-data-source:",
    f"  cdse         {_CDSE_ID}",
    "  gee          20240715T203849_20240715T204100_T08WNB",
    "  cdse-mosaic  Sentinel-2_mosaic_2024_Q3_08WNB_0_0",
)

GROUP_HELP: dict[tuple[str, ...], str] = {
    ("cache",): "list, verify, repair, prune, export and import the staged data",
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
        examples=("darts demo", "darts demo --raw-data-source gee --demo-dir /tmp/darts-demo"),
    ),
    Command(
        specs.DEBUG_PATHS,
        help="print every resolved path and setting, and where each value came from",
        handler=_lazy("darts.cli.debug_paths", "run"),
        examples=(
            "darts debug-paths",
            "darts --config-file darts.toml debug-paths --raw-data-source gee",
        ),
    ),
    Command(
        specs.PREP_DATA,
        help="stage Sentinel-2 scenes and auxiliary data (ArcticDEM, TCVIS) for offline runs",
        handler=_lazy("darts.cli.inference", "prep_data_sentinel2"),
        examples=(
            "darts inference prep-data sentinel2 --optical --aux \\",
            f"    --scene-ids {_CDSE_ID}",
            "darts inference prep-data sentinel2 --optical --aux \\",
            "    --tile-ids 08WNB --years 2024 --months 7 8 \\",
            "    --prep-data-scene-id-file scene-ids.json",
            "darts inference prep-data sentinel2 --optical --dry-run \\",
            "    --tile-ids 08WNB --years 2024",
            "",
            *_ID_FORMS,
        ),
    ),
    Command(
        specs.READINESS,
        help="check, without network, that everything an offline run needs is staged",
        handler=_lazy("darts.cli.inference", "readiness_sentinel2"),
        examples=(
            "darts inference readiness sentinel2 --prep-data-scene-id-file scene-ids.json",
            "darts inference readiness sentinel2 \\",
            f"    --scene-ids {_CDSE_ID}",
            "",
            *_ID_FORMS,
        ),
    ),
    Command(
        specs.SEQUENTIAL,
        help="segment thaw slumps in Sentinel-2 scenes, one scene after another",
        handler=_lazy("darts.cli.inference_run", "sentinel2_sequential"),
        examples=(
            "darts inference sentinel2-sequential --offline \\",
            "    --prep-data-scene-id-file scene-ids.json \\",
            "    --model-files model_a.pt model_b.pt",
            "darts inference sentinel2-sequential --model-files model.pt \\",
            "    --tile-ids 08WNB --years 2024 --months 7 \\",
            "    --export probabilities polygonized",
            "",
            *_ID_FORMS,
        ),
    ),
    Command(
        specs.CACHE_LIST,
        help="list the staged scenes (bands, size, date) and the cube tiles (area), with totals",
        handler=_lazy("darts.cli.cache", "list_caches"),
    ),
    Command(
        specs.CACHE_VERIFY,
        help="check every staged byte against its commit record and every cube tile; exit 1 "
        "listing each problem",
        handler=_lazy("darts.cli.cache", "verify_caches"),
    ),
    Command(
        specs.CACHE_REPAIR,
        help="fetch again exactly the damaged bands and cube tiles and clean leftovers "
        "(--offline: say what to stage again)",
        handler=_lazy("darts.cli.cache", "repair_caches"),
    ),
    Command(
        specs.CACHE_PRUNE,
        help="remove scenes and cube tiles by id, age or a size budget, and free their space",
        handler=_lazy("darts.cli.cache", "prune_caches"),
    ),
    Command(
        specs.CACHE_EXPORT,
        help="write scenes and the cube tiles they need to a folder or .tar, with a manifest",
        handler=_lazy("darts.cli.cache", "export_caches"),
    ),
    Command(
        specs.CACHE_IMPORT,
        help="check an export byte by byte and place its data into this machine's caches",
        handler=_lazy("darts.cli.cache", "import_caches"),
        positional="archive",
    ),
    Command(
        specs.DASK,
        help="segment thaw slumps in Sentinel-2 scenes on a Dask cluster: local worker "
        "processes, a running cluster, or batch jobs (SLURM, PBS, ...)",
        handler=_lazy("darts.cli.inference_dask", "sentinel2_dask"),
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
        examples=("darts sandbox serve --world small --config-out sandbox.toml",),
    ),
    Command(
        specs.SANDBOX_SELFTEST,
        help="start the stand-ins and check each through the real client code",
        handler=_lazy("darts.cli.sandbox", "selftest"),
    ),
]
