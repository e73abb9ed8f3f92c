"""Every command's option sections, and the Python API's: what a config file may set.

The command line turns these into sub-commands (`darts.cli.commands` adds help and
handlers); `darts.Workspace` resolves its settings with `API`. A config file is checked
against all of them at once, so a key that nothing knows is an error wherever it
appears, and a table for one command (``[darts.inference.sentinel2-sequential]``) or
for the API (``[darts.api]``) is valid in a file shared by both.
"""

from __future__ import annotations

from darts.demo.options import DemoOptions
from darts.sandbox.options import SandboxOptions
from darts.settings.pipeline import Connectivity, Filters, SavedSceneIds, Selection, Staging
from darts.settings.processing import Export, Models, Postprocess, Terrain
from darts.settings.resolve import CommandSpec
from darts.settings.sections import DefaultDirs, Endpoints, Network, Storage

DEMO = CommandSpec(("demo",), (DemoOptions, DefaultDirs))
DEBUG_PATHS = CommandSpec(("debug-paths",), (DefaultDirs, Storage, Endpoints, Network))
PREP_DATA = CommandSpec(
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
)
READINESS = CommandSpec(
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
)
SEQUENTIAL = CommandSpec(
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
)
SANDBOX_BUILD = CommandSpec(("sandbox", "build"), (DefaultDirs, SandboxOptions))
SANDBOX_SERVE = CommandSpec(("sandbox", "serve"), (DefaultDirs, SandboxOptions))
SANDBOX_SELFTEST = CommandSpec(("sandbox", "selftest"), (DefaultDirs, SandboxOptions))
# The Python API: what the sequential run uses, less the selection (given per call),
# plus what staging uses.
API = CommandSpec(
    ("api",),
    (Staging, *(section for section in SEQUENTIAL.sections if section is not Selection)),
)

ALL_SPECS: tuple[CommandSpec, ...] = (
    DEMO,
    DEBUG_PATHS,
    PREP_DATA,
    READINESS,
    SEQUENTIAL,
    SANDBOX_BUILD,
    SANDBOX_SERVE,
    SANDBOX_SELFTEST,
    API,
)
