"""The demo's data: sandbox scenes staged by the real commands, read back the way
``darts inference sentinel2-sequential`` reads them.

Both the demo and the demo model's training stage scenes with ``darts inference
prep-data sentinel2 --optical --aux`` against a running sandbox. The training then
computes each scene's model inputs with the same functions, in the same order and with
the same default parameters as the sequential pipeline (``load_optical`` →
``AuxCubes.load_dem``/``load_tcvis`` → ``build_inputs`` → ``feature_window``), so the
model is trained on exactly what inference feeds it: the same 13 features, the same
normalisation.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from darts.sandbox.layout import WorldLayout

RunCommand = Callable[[list[str]], int]
"""Runs one ``darts`` command line (``darts.cli.main.main``) and returns its exit code."""


# -- command lines ---------------------------------------------------------------------


def endpoint_flags(config_file: Path) -> list[str]:
    """The ``[darts.endpoints]`` of a sandbox config file as command-line flags.

    Flags take precedence over environment variables (``AWS_PROFILE``,
    ``GOOGLE_APPLICATION_CREDENTIALS``, ``DARTS_CDSE_STAC_URL`` ...), so settings in
    the user's own environment cannot send the demo's requests anywhere but the
    sandbox."""
    document = tomllib.loads(Path(config_file).read_text())
    endpoints = document["darts"]["endpoints"]
    flags: list[str] = []
    for key, value in endpoints.items():
        flags += [f"--{key}", str(value)]
    return flags


def dir_flags(data_dir: Path) -> list[str]:
    """Everything under ``data_dir``, whatever ``DARTS_*_DATA_DIR`` say."""
    root = str(data_dir)
    return ["--darts-dir", root, "--fast-dir", root, "--large-dir", root]


def selection_flags(
    tiles: Sequence[str],
    years: Sequence[int] = (),
    *,
    quarters: Sequence[int] = (),
    max_cloud_cover: float = 100.0,
    max_snow_cover: float = 100.0,
) -> list[str]:
    flags = ["--tile-ids", *tiles]
    if years:
        flags += ["--years", *(str(y) for y in years)]
    if quarters:
        flags += ["--quarters", *(str(q) for q in quarters)]
    flags += [
        "--max-cloud-cover",
        f"{max_cloud_cover:g}",
        "--max-snow-cover",
        f"{max_snow_cover:g}",
    ]
    return flags


def prep_data_argv(
    config_file: Path,
    data_dir: Path,
    selection: Sequence[str],
    scene_id_file: Path,
    raw_data_source: str = "cdse",
) -> list[str]:
    """``darts inference prep-data sentinel2 --optical --aux`` against the sandbox."""
    return [
        "--config-file",
        str(config_file),
        "inference",
        "prep-data",
        "sentinel2",
        *endpoint_flags(config_file),
        *dir_flags(data_dir),
        *selection,
        "--raw-data-source",
        raw_data_source,
        "--optical",
        "--aux",
        "--no-offline",
        "--prep-data-scene-id-file",
        str(scene_id_file),
        "--report-file",
        str(data_dir / "logs" / "prep-data-demo.json"),
    ]


@contextmanager
def running_sandbox(layout: WorldLayout, config_file: Path) -> Iterator[Path]:
    """Start every stand-in for ``layout`` and write a config pointing at them."""
    from darts.sandbox.service import Sandbox

    with Sandbox(layout) as sandbox:
        yield sandbox.write_config(config_file)


def build_demo_world(sandbox_root: Path, progress: Callable[[str], None] | None = None):
    """The demo's sandbox world under ``sandbox_root``: built once, then cached."""
    from darts.demo import DEMO_SEED, DEMO_WORLD
    from darts.sandbox.world import build_world

    return build_world(Path(sandbox_root), DEMO_WORLD, DEMO_SEED, progress=progress)


def world_scene_ids(layout: WorldLayout, tiles: Sequence[str], years: Sequence[int] = ()) -> list:
    """Ids of the world's scenes on ``tiles`` (and in ``years``), from its manifest."""
    import json

    manifest = json.loads(layout.manifest.read_text())
    return sorted(
        s["id"]
        for s in manifest["scenes"]
        if s["tile"] in tiles and (not years or int(s["datetime"][:4]) in years)
    )


# -- reading staged scenes like the sequential pipeline --------------------------------


@dataclass
class SceneInputs:
    """One staged scene, as the model sees it."""

    scene_id: str
    features: np.ndarray
    """float32 (bands, H, W) normalised model inputs (``feature_window`` of the scene)."""
    quality: np.ndarray
    """uint8 (H, W) ``quality_data_mask`` after ``build_inputs`` (0 invalid, 1 low, 2 high)."""
    grid: Any
    """``darts.store.georef.Grid`` of the scene."""


def offline_runtime(data_dir: Path):
    """The runtime an offline ``sentinel2-sequential`` run over ``data_dir`` gets, with
    the environment ignored."""
    from darts.cli.commands import ALL_COMMANDS
    from darts.pipelines.runtime import runtime_of
    from darts.settings.resolve import resolve

    spec = next(
        c.spec for c in ALL_COMMANDS if c.spec.path == ("inference", "sentinel2-sequential")
    )
    root = str(data_dir)
    flags = {
        "default_dirs__darts_dir": root,
        "default_dirs__fast_dir": root,
        "default_dirs__large_dir": root,
        "pipeline__offline": True,
    }
    settings = resolve(spec, flags, {}, None, [c.spec for c in ALL_COMMANDS])
    return runtime_of(settings)


def read_scene_inputs(
    data_dir: Path, scene_ids: Sequence[str], bands: Sequence[str]
) -> Iterator[SceneInputs]:
    """Model inputs of each staged scene, offline: `scene_inputs`, as the sequential
    pipeline assembles them, with its default feature parameters."""
    from darts.net.http import HttpClient
    from darts.pipelines.aux_data import AuxCubes
    from darts.pipelines.scene_inputs import InputPlan, scene_inputs
    from darts.pipelines.scene_sources import open_scene_source
    from darts.processing.features import QUALITY_BAND, FeatureParams, feature_window
    from darts.processing.reproject import scene_grid
    from darts.settings.processing import Terrain
    from darts.store.scenes import SceneStore

    runtime = offline_runtime(data_dir)
    plan = InputPlan(FeatureParams(), Terrain().aux_buffer_m)
    store = SceneStore(runtime.paths.raw_data_store)
    with HttpClient(runtime.net) as http:
        source = open_scene_source(runtime, http)
        cubes = AuxCubes(runtime, http, resolution_m=10)
        for scene_id in scene_ids:
            item = store.item(scene_id)
            if item is None:
                raise FileNotFoundError(f"scene {scene_id} is not staged in {data_dir}")
            inputs, params = scene_inputs(dict(item), source, store, cubes, plan, offline=True)
            height, width = inputs.sizes["y"], inputs.sizes["x"]
            yield SceneInputs(
                scene_id=scene_id,
                features=feature_window(inputs, (0, height, 0, width), bands, params),
                quality=np.asarray(inputs[QUALITY_BAND].values, dtype=np.uint8),
                grid=scene_grid(inputs),
            )


def rasterize_truth(truth, grid) -> np.ndarray:
    """uint8 (H, W): 1 where a ground-truth polygon covers a pixel's centre."""
    import rasterio.features
    from affine import Affine

    frame = truth.to_crs(grid.crs_wkt)
    shapes = [(geometry, 1) for geometry in frame.geometry if not geometry.is_empty]
    if not shapes:
        return np.zeros(grid.shape, dtype=np.uint8)
    return rasterio.features.rasterize(
        shapes, out_shape=grid.shape, transform=Affine(*grid.transform), fill=0, dtype="uint8"
    )
