"""The command registry: every leaf command, its option sections and its handler.

The config-file reader validates against this whole list, so a key that no command
knows is an error wherever it appears in the file.
"""

from __future__ import annotations

from darts.cli import debug_paths
from darts.cli.parser import Command
from darts.settings.resolve import CommandSpec
from darts.settings.sections import DefaultDirs, Endpoints, Network, Storage

GROUP_HELP: dict[tuple[str, ...], str] = {
    ("inference",): "stage data and run thaw-slump inference",
    ("sandbox",): "local stand-ins for the remote services, over a synthetic Arctic world",
}

ALL_COMMANDS: list[Command] = [
    Command(
        CommandSpec(("debug-paths",), (DefaultDirs, Storage, Endpoints, Network)),
        help="print every resolved path and setting, and where each value came from",
        handler=debug_paths.run,
    ),
]
