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
from darts.settings.cache import (
    CacheDryRun,
    CacheExport,
    CacheImport,
    CacheOutput,
    CachePrune,
    CacheScope,
)
from darts.settings.cluster import DaskCluster
from darts.settings.pipeline import (
    Bands,
    Connectivity,
    Filters,
    LegacyGrid,
    LegacyWorkers,
    OfflineCheck,
    Report,
    SavedSceneIds,
    Selection,
    Staging,
)
from darts.settings.processing import Export, Features, Models, Postprocess, Terrain
from darts.settings.readiness import ReadinessCheck
from darts.settings.resolve import CommandSpec
from darts.settings.sections import DefaultDirs, Endpoints, Network, Outputs, Storage

DEMO = CommandSpec(("demo",), (DemoOptions, DefaultDirs))
DEBUG_PATHS = CommandSpec(("debug-paths",), (DefaultDirs, Storage, Outputs, Endpoints, Network))
PREP_DATA = CommandSpec(
    ("inference", "prep-data", "sentinel2"),
    (
        Selection,
        Filters,
        Staging,
        Bands,
        Report,
        SavedSceneIds,
        Storage,
        Terrain,
        Connectivity,
        LegacyGrid,
        DefaultDirs,
        Endpoints,
        Network,
    ),
)
# Readiness never connects (its clients are offline whatever is set), so it takes no
# endpoint or network option and stages nothing; --offline is accepted and ignored.
READINESS = CommandSpec(
    ("inference", "readiness", "sentinel2"),
    (
        Selection,
        Bands,
        Report,
        ReadinessCheck,
        SavedSceneIds,
        Storage,
        Terrain,
        LegacyGrid,
        OfflineCheck,
        DefaultDirs,
    ),
)
SEQUENTIAL = CommandSpec(
    ("inference", "sentinel2-sequential"),
    (
        Selection,
        Filters,
        SavedSceneIds,
        Storage,
        Outputs,
        Terrain,
        Features,
        Models,
        Postprocess,
        Export,
        Connectivity,
        LegacyGrid,
        LegacyWorkers,
        DefaultDirs,
        Endpoints,
        Network,
    ),
)
# `darts cache`: where the caches are (Storage, DefaultDirs), and what a cube location
# on S3 or a repair's fetches need (Endpoints, Network).
_CACHES = (Storage, DefaultDirs, Endpoints, Network)
CACHE_LIST = CommandSpec(("cache", "list"), (CacheScope, CacheOutput, *_CACHES))
CACHE_VERIFY = CommandSpec(("cache", "verify"), (CacheScope, CacheOutput, *_CACHES))
CACHE_REPAIR = CommandSpec(
    ("cache", "repair"), (CacheScope, CacheDryRun, Connectivity, Terrain, *_CACHES)
)
CACHE_PRUNE = CommandSpec(("cache", "prune"), (CacheScope, CachePrune, CacheDryRun, *_CACHES))
CACHE_EXPORT = CommandSpec(("cache", "export"), (CacheScope, CacheExport, Terrain, *_CACHES))
CACHE_IMPORT = CommandSpec(("cache", "import"), (CacheImport, *_CACHES))
# Everything the sequential run takes, plus which Dask cluster runs the scenes.
# The Dask run takes the sequential run's options, with real workers instead of the
# ignored legacy worker count (`--dask-worker` is an alias of `--n-workers` there).
DASK = CommandSpec(
    ("inference", "sentinel2-dask"),
    (*(s for s in SEQUENTIAL.sections if s is not LegacyWorkers), DaskCluster),
)
SANDBOX_BUILD = CommandSpec(("sandbox", "build"), (DefaultDirs, SandboxOptions))
SANDBOX_SERVE = CommandSpec(("sandbox", "serve"), (DefaultDirs, SandboxOptions))
SANDBOX_SELFTEST = CommandSpec(("sandbox", "selftest"), (DefaultDirs, SandboxOptions))
# The Python API: what the sequential and Dask runs use, less the selection (given per
# call), plus what staging uses.
API = CommandSpec(
    ("api",),
    (Staging, Bands, *(section for section in DASK.sections if section is not Selection)),
)

ALL_SPECS: tuple[CommandSpec, ...] = (
    DEMO,
    DEBUG_PATHS,
    PREP_DATA,
    READINESS,
    SEQUENTIAL,
    CACHE_LIST,
    CACHE_VERIFY,
    CACHE_REPAIR,
    CACHE_PRUNE,
    CACHE_EXPORT,
    CACHE_IMPORT,
    DASK,
    SANDBOX_BUILD,
    SANDBOX_SERVE,
    SANDBOX_SELFTEST,
    API,
)
