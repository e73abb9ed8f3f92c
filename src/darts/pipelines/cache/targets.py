"""Which scene stores and cubes a `darts cache` command works on.

The layout rules stay in `darts.paths`: a source's store is the raw-data store that
``--raw-data-source <source>`` would use, an ArcticDEM cube the one
``--arcticdem-resolution <res>`` would use. A store or cube given explicitly
(``--raw-data-store``, ``--arcticdem-dir``) is the only one of its kind looked at, as
the one of the configured source or resolution. Computing targets creates nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from darts.errors import ConfigError
from darts.paths import ARCTICDEM_RESOLUTIONS, data_paths
from darts.pipelines.aux_data import ARCTICDEM, TCVIS, CubeKey
from darts.pipelines.runtime import Runtime
from darts.pipelines.scene_sources import SOURCE_NAMES
from darts.settings.resolve import Resolved
from darts.settings.sections import Storage
from darts.sources.arcticdem import arcticdem_spec
from darts.sources.tcvis import TCVIS_PERIODS, tcvis_spec
from darts.store.datacube import CubeNotFoundError, Datacube
from darts.store.datacube.spec import CubeSpec
from darts.store.scenes import SceneStore


@dataclass(frozen=True)
class StoreTarget:
    """The scene store of one optical source."""

    source: str
    store: SceneStore


@dataclass(frozen=True)
class CubeTarget:
    """One cube: ArcticDEM at one resolution, or one TCVIS period (a group of the
    TCVIS repository)."""

    key: CubeKey
    resolution_m: int  # the ArcticDEM resolution (also what AuxCubes is built with)
    location: Path
    spec: CubeSpec

    @property
    def label(self) -> str:
        return self.key.label(self.resolution_m)

    def open(self, runtime: Runtime, *, create: bool = False) -> Datacube | None:
        """The cube, or None when it does not exist (and ``create`` is false). A
        location holding something else raises its one-line `DatacubeError`."""
        if not create and not self.location.exists():
            return None
        try:
            return Datacube.open(
                self.location,
                self.spec,
                group=self.key.group,
                create=create,
                s3=runtime.s3,
                net=runtime.net,
            )
        except CubeNotFoundError:
            return None


def scene_stores(settings: Resolved, sources: Sequence[str] = ()) -> list[StoreTarget]:
    """The scene store of each of ``sources`` (default: every source)."""
    storage = settings.get(Storage)
    chosen = list(sources) or list(SOURCE_NAMES)
    if storage.no_raw_data_store:
        return []
    if storage.raw_data_store is not None:
        # An explicit store is the configured source's, and the only one looked at.
        if storage.raw_data_source not in chosen:
            return []
        return [StoreTarget(storage.raw_data_source, SceneStore(storage.raw_data_store))]
    targets = []
    for source in chosen:
        root = data_paths(_with_storage(settings, raw_data_source=source)).raw_data_store
        assert root is not None
        targets.append(StoreTarget(source, SceneStore(root)))
    return targets


def store_of(settings: Resolved, source: str) -> StoreTarget:
    """The store where scenes of ``source`` go (e.g. on import)."""
    storage = settings.get(Storage)
    if storage.raw_data_store is not None and storage.raw_data_source != source:
        raise ConfigError(
            f"--raw-data-store {storage.raw_data_store} is the store of --raw-data-source "
            f"{storage.raw_data_source}, but these scenes are from {source}: pass "
            f"--raw-data-source {source} (or drop --raw-data-store)"
        )
    targets = scene_stores(settings, [source])
    if not targets:
        raise ConfigError("--no-raw-data-store keeps no scenes: drop it to place scenes")
    return targets[0]


def arcticdem_cube(settings: Resolved, resolution_m: int) -> CubeTarget:
    """The ArcticDEM cube of ``resolution_m``, where it is or would be."""
    storage = settings.get(Storage)
    if storage.arcticdem_dir is not None and storage.arcticdem_resolution != resolution_m:
        raise ConfigError(
            f"--arcticdem-dir {storage.arcticdem_dir} holds the {storage.arcticdem_resolution} m "
            f"cube, but this is ArcticDEM at {resolution_m} m: pass --arcticdem-resolution "
            f"{resolution_m} (and its --arcticdem-dir)"
        )
    paths = data_paths(_with_storage(settings, arcticdem_resolution=resolution_m))
    return CubeTarget(
        CubeKey(ARCTICDEM), resolution_m, paths.arcticdem_dir, arcticdem_spec(resolution_m)
    )


def tcvis_cube(settings: Resolved, period: str) -> CubeTarget:
    storage = settings.get(Storage)
    paths = data_paths(settings)
    return CubeTarget(
        CubeKey(TCVIS, period), storage.arcticdem_resolution, paths.tcvis_dir, tcvis_spec()
    )


def cube_targets(settings: Resolved) -> list[CubeTarget]:
    """Every cube whose repository exists: ArcticDEM at each resolution (only the
    configured one with an explicit ``--arcticdem-dir``) and each TCVIS period."""
    storage = settings.get(Storage)
    resolutions = (
        [storage.arcticdem_resolution]
        if storage.arcticdem_dir is not None
        else list(ARCTICDEM_RESOLUTIONS)
    )
    targets = [arcticdem_cube(settings, res) for res in resolutions]
    targets += [tcvis_cube(settings, period) for period in TCVIS_PERIODS]
    return [t for t in targets if t.location.exists()]


def cube_for_kind(settings: Resolved, kind: str, group: str) -> CubeTarget:
    """The target cube for an exported cube of ``kind`` ("arcticdem-10m", "tcvis")."""
    if kind == "tcvis":
        if group not in TCVIS_PERIODS:
            raise ConfigError(f"unknown TCVIS period {group!r} (known: {', '.join(TCVIS_PERIODS)})")
        return tcvis_cube(settings, group)
    for resolution in ARCTICDEM_RESOLUTIONS:
        if kind == f"arcticdem-{resolution}m" and group == "":
            return arcticdem_cube(settings, resolution)
    raise ConfigError(f"unknown cube kind {kind!r} (group {group!r})")


def _with_storage(settings: Resolved, **changes: object) -> Resolved:
    """``settings`` with some storage values replaced (their origins kept)."""
    sections = dict(settings.sections)
    sections[Storage] = dataclasses.replace(settings.get(Storage), **changes)  # type: ignore[arg-type]
    return Resolved(sections, dict(settings.origin))
