"""Fault trials: darts commands against the sandbox, with and without faults, compared.

The reliability suite (``tests/test_fault_reliability.py``, ``benchmarks/bench_faults.py``)
runs the same staging and the same online run once fault-free and once with faults on
every stand-in, and asks: did each command complete on its first attempt, is everything
it wrote identical, and how many more requests did the faults cost? This module holds
what both need: one fault mix on every server, request and fault counts from the
servers' own logs, and comparisons of what two runs wrote (scene stores, datacubes,
exported outputs). A comparison returns the differences it found, one line each; an
empty list means identical.
"""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from darts.sandbox.faults_config import SERVER_NAMES
from darts.sandbox.servers.faults import FaultConfig
from darts.sandbox.service import Sandbox

if TYPE_CHECKING:
    from darts.store.datacube.spec import CubeSpec

# Rows per strip when comparing cube tiles: bounds memory for 10,000² tiles.
_STRIP_ROWS = 2048
OUTPUT_RASTERS = ("probabilities.tif", "binarized.tif")
OUTPUT_TABLES = ("prediction_segments.parquet",)


def fault_mix(rate: float, retry_after_s: float | None = None) -> FaultConfig:
    """Every kind of fault the injector has, ``rate`` of all requests in total, in
    equal shares: 429/503 answers, connection resets, truncated bodies."""
    return FaultConfig(
        error_rate=rate / 3,
        error_statuses=(429, 503),
        retry_after_s=retry_after_s,
        reset_rate=rate / 3,
        truncate_rate=rate / 3,
    )


@contextlib.contextmanager
def faults_everywhere(sandbox: Sandbox, config: FaultConfig) -> Iterator[None]:
    """``config`` on every server for the ``with`` block, then all faults off."""
    try:
        for name in SERVER_NAMES:
            sandbox.set_faults(name, config)
        yield
    finally:
        for name in SERVER_NAMES:
            sandbox.set_faults(name, FaultConfig())


@dataclass
class Traffic:
    """Requests each server logged since its log was last cleared, and their faults."""

    requests: dict[str, int] = field(default_factory=dict)
    faults: dict[str, collections.Counter[str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def faulted(self) -> int:
        return sum(sum(kinds.values()) for kinds in self.faults.values())

    @property
    def rate(self) -> float:
        return self.faulted / self.total if self.total else 0.0

    def kinds(self) -> collections.Counter[str]:
        total: collections.Counter[str] = collections.Counter()
        for kinds in self.faults.values():
            total.update(kinds)
        return total


def traffic(sandbox: Sandbox) -> Traffic:
    seen = Traffic()
    for name in SERVER_NAMES:
        log = sandbox.injector(name).requests()
        seen.requests[name] = len(log)
        seen.faults[name] = collections.Counter(e["fault"] for e in log if e["fault"])
    return seen


@contextlib.contextmanager
def data_dir_env(data_dir: Path, config_file: Path) -> Iterator[None]:
    """``DARTS_DATA_DIR`` and ``DARTS_CONFIG_FILE`` for commands run in this process."""
    saved = {name: os.environ.get(name) for name in ("DARTS_DATA_DIR", "DARTS_CONFIG_FILE")}
    os.environ["DARTS_DATA_DIR"] = str(data_dir)
    os.environ["DARTS_CONFIG_FILE"] = str(config_file)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- comparisons -----------------------------------------------------------------------------


def scene_store_differences(a: Path, b: Path) -> list[str]:
    """Scenes, bands and pixel values of two scene stores."""
    from darts.store.scenes import SceneStore

    left, right = SceneStore(a), SceneStore(b)
    problems = []
    if left.scenes() != right.scenes():
        problems.append(f"scenes differ: {left.scenes()} vs {right.scenes()}")
    for scene in sorted(set(left.scenes()) & set(right.scenes())):
        bands = sorted(left.stored_bands(scene))
        if bands != sorted(right.stored_bands(scene)):
            problems.append(f"{scene}: bands {bands} vs {sorted(right.stored_bands(scene))}")
            continue
        one = left.open(scene, bands, load=True)
        other = right.open(scene, bands, load=True)
        if not one.equals(other):
            problems.append(f"{scene}: pixel values differ")
    if not left.scenes():
        problems.append(f"no scene in {a}")
    return problems


def cube_differences(a: Path, b: Path, spec: CubeSpec, group: str = "") -> list[str]:
    """Tile records and every written pixel of two datacubes."""
    from darts.grid.cube import Window
    from darts.store.datacube import Datacube

    label = f"{a.name}{f' ({group})' if group else ''}"
    left = Datacube.open(a, spec, group=group, create=False)
    right = Datacube.open(b, spec, group=group, create=False)
    ours, theirs = left.records(), right.records()
    if sorted(ours) != sorted(theirs):
        return [f"{label}: tiles {sorted(ours)} vs {sorted(theirs)}"]
    if not ours:
        return [f"{label}: no tile written"]
    problems = []
    for tile, record in sorted(ours.items()):
        other = theirs[tile]
        # Sources name the URLs read; two sandboxes serve the same files on other ports.
        if (record.status, record.window, _without_hosts(record.source)) != (
            other.status,
            other.window,
            _without_hosts(other.source),
        ):
            problems.append(f"{label} tile {tile}: records differ")
            continue
        window = record.pixel_window
        for row0 in range(window.row0, window.row1, _STRIP_ROWS):
            strip = Window(row0, min(row0 + _STRIP_ROWS, window.row1), window.col0, window.col1)
            one, two = left.read(strip), right.read(strip)
            for name in one.data_vars:
                if not np.array_equal(one[name].values, two[name].values, equal_nan=True):
                    problems.append(f"{label} tile {tile}: {name} differs in rows {strip}")
    return problems


def _without_hosts(value: Any) -> Any:
    """``value`` with the scheme and host of every URL in it left out."""
    if isinstance(value, dict):
        return {key: _without_hosts(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_hosts(item) for item in value]
    if isinstance(value, str) and "://" in value:
        parts = urlsplit(value)
        return urlunsplit(("", "", parts.path, parts.query, parts.fragment))
    return value


def output_differences(a: Path, b: Path, scenes: Sequence[str]) -> list[str]:
    """The exported rasters (pixels and georeferencing) and polygons of each scene."""
    import geopandas as gpd
    import rasterio

    problems = []
    for scene in scenes:
        for name in OUTPUT_RASTERS:
            paths = (a / scene / name, b / scene / name)
            if not all(p.is_file() for p in paths):
                problems.append(f"{scene}: {name} missing in {[str(p) for p in paths]}")
                continue
            with rasterio.open(paths[0]) as one, rasterio.open(paths[1]) as two:
                if one.profile != two.profile:
                    problems.append(f"{scene}: {name} georeferencing differs")
                elif not np.array_equal(one.read(), two.read(), equal_nan=True):
                    problems.append(f"{scene}: {name} pixels differ")
        for name in OUTPUT_TABLES:
            paths = (a / scene / name, b / scene / name)
            if not all(p.is_file() for p in paths):
                problems.append(f"{scene}: {name} missing")
                continue
            one, two = gpd.read_parquet(paths[0]), gpd.read_parquet(paths[1])
            if not one.to_wkb().equals(two.to_wkb()):
                problems.append(f"{scene}: {name} polygons differ")
    return problems
