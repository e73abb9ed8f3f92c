"""The data-directory layout. Pure: computing a path never creates anything.

Everything DARTS keeps lives under one root, ``DARTS_DATA_DIR`` (``--darts-dir``).
Two optional roots split it by storage class on HPC systems:

- the *fast* dir (``DARTS_FAST_DATA_DIR``) holds what is read at random, often:
  the auxiliary datacubes (with the ArcticDEM tile index) and models;
- the *large* dir (``DARTS_LARGE_DATA_DIR``) holds bulk data: raw scenes and outputs.

Both default to the darts dir, so with nothing set the layout is::

    <darts-dir>/
      sentinel2/<source>/                 raw-data store, one Zarr per scene
      auxiliary/arcticdem_<res>m.icechunk ArcticDEM datacube
      auxiliary/tcvis.icechunk            TCVIS datacube (all trend periods side by side)
      models/                             model checkpoints
      out/                                per-scene results of inference runs
      logs/                               log files
      sandbox/                            synthetic worlds built by `darts sandbox`

Locks, claims and scratch of a store or cube live in its one hidden folder
(`darts.store.sidecar`): ``.<cube>.darts/`` beside a cube, ``<store>/.darts/`` in the
scene store. The ArcticDEM mosaic index goes with the cube it serves, into that cube's
hidden folder, wherever ``--arcticdem-dir`` puts it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from darts.errors import ConfigError
from darts.settings.resolve import Resolved
from darts.settings.sections import DefaultDirs, Logging, Outputs, Storage
from darts.store.sidecar import arcticdem_index_dir

ARCTICDEM_RESOLUTIONS = (2, 10, 32)

# How a default's origin text names the root it lies under (see `data_paths`).
_ROOT_MARKS = {
    "fast_dir": ("<fast-dir>",),
    "large_dir": ("<large-dir>",),
    "darts_dir": ("<darts-dir>", "the darts dir"),
}


def default_darts_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path(env.get("HOME", str(Path.home()))) / ".local" / "share"
    return base / "darts"


@dataclass(frozen=True)
class DataPaths:
    darts_dir: Path
    fast_dir: Path
    large_dir: Path
    raw_data_store: Path | None  # None: scenes are not kept (--no-raw-data-store)
    arcticdem_dir: Path
    arcticdem_index_dir: Path
    tcvis_dir: Path
    models_dir: Path
    output_dir: Path
    log_dir: Path
    sandbox_dir: Path
    origin: dict[str, str] = field(default_factory=dict, compare=False)

    def explained(self) -> list[tuple[str, Path | None, str]]:
        """(name, path, where it came from) for every path, in layout order."""
        names = [
            "darts_dir",
            "fast_dir",
            "large_dir",
            "raw_data_store",
            "arcticdem_dir",
            "arcticdem_index_dir",
            "tcvis_dir",
            "models_dir",
            "output_dir",
            "log_dir",
            "sandbox_dir",
        ]
        return [(n.replace("_", "-"), getattr(self, n), self.origin[n]) for n in names]

    def set_by(self, name: str) -> str:
        """Which setting decides path ``name``, for messages: the option or variable
        itself, or, for a default under a root, the setting of that root
        (``under darts-dir, set by env DARTS_DATA_DIR``)."""
        origin = self.origin.get(name, "default")
        if not origin.startswith("default"):
            return f"set by {origin}"
        for root, marks in _ROOT_MARKS.items():
            if root != name and any(mark in origin for mark in marks):
                return f"under {root.replace('_', '-')}, {self.set_by(root)}"
        return origin

    @property
    def legacy_arcticdem_index_dir(self) -> Path:
        """Where darts kept the ArcticDEM index before it moved beside its cube: still
        read when it holds a table, never written."""
        return self.fast_dir / "auxiliary" / "arcticdem_index"


def data_paths(settings: Resolved, environ: Mapping[str, str] | None = None) -> DataPaths:
    dirs = settings.get(DefaultDirs)
    origin: dict[str, str] = {}

    if dirs.darts_dir is not None:
        darts_dir = dirs.darts_dir
        origin["darts_dir"] = settings.origin_of(DefaultDirs, "darts_dir")
    else:
        darts_dir = default_darts_dir(environ)
        origin["darts_dir"] = "default (XDG data dir)"

    def root(name: str) -> Path:
        value = getattr(dirs, name)
        if value is not None:
            origin[name] = settings.origin_of(DefaultDirs, name)
            return value
        origin[name] = "default: the darts dir"
        return darts_dir

    fast_dir = root("fast_dir")
    large_dir = root("large_dir")

    def derived(
        name: str, explicit: Path | None, fallback: Path, rule: str, section: type = Storage
    ) -> Path:
        if explicit is not None:
            origin[name] = settings.origin_of(section, name)
            return explicit
        origin[name] = f"default: {rule}"
        return fallback

    storage = settings.get(Storage) if Storage in settings.sections else None
    source = storage.raw_data_source if storage else "cdse"
    resolution = storage.arcticdem_resolution if storage else 10
    if resolution not in ARCTICDEM_RESOLUTIONS:
        raise ConfigError(
            f"--arcticdem-resolution {resolution} is not available: choose 2, 10 or 32"
        )

    raw_store: Path | None
    if storage and storage.no_raw_data_store:
        raw_store = None
        origin["raw_data_store"] = "disabled by " + settings.origin_of(Storage, "no_raw_data_store")
    else:
        raw_store = derived(
            "raw_data_store",
            storage.raw_data_store if storage else None,
            large_dir / "sentinel2" / source,
            "<large-dir>/sentinel2/<raw-data-source>",
        )
    arcticdem_dir = derived(
        "arcticdem_dir",
        storage.arcticdem_dir if storage else None,
        fast_dir / "auxiliary" / f"arcticdem_{resolution}m.icechunk",
        "<fast-dir>/auxiliary/arcticdem_<res>m.icechunk",
    )
    tcvis_dir = derived(
        "tcvis_dir",
        storage.tcvis_dir if storage else None,
        fast_dir / "auxiliary" / "tcvis.icechunk",
        "<fast-dir>/auxiliary/tcvis.icechunk",
    )
    outputs = settings.get(Outputs) if Outputs in settings.sections else None
    output_dir = derived(
        "output_dir",
        outputs.output_dir if outputs else None,
        large_dir / "out",
        "<large-dir>/out",
        Outputs,
    )
    logging_ = settings.get(Logging) if Logging in settings.sections else None
    log_dir = derived(
        "log_dir",
        logging_.log_dir if logging_ else None,
        darts_dir / "logs",
        "<darts-dir>/logs",
        Logging,
    )
    origin["arcticdem_index_dir"] = "default: in the ArcticDEM cube's hidden folder, .<cube>.darts/"
    origin["models_dir"] = "default: <fast-dir>/models"
    origin["sandbox_dir"] = "default: <darts-dir>/sandbox"
    return DataPaths(
        darts_dir=darts_dir,
        fast_dir=fast_dir,
        large_dir=large_dir,
        raw_data_store=raw_store,
        arcticdem_dir=arcticdem_dir,
        arcticdem_index_dir=arcticdem_index_dir(arcticdem_dir),
        tcvis_dir=tcvis_dir,
        models_dir=fast_dir / "models",
        output_dir=output_dir,
        log_dir=log_dir,
        sandbox_dir=darts_dir / "sandbox",
        origin=origin,
    )
