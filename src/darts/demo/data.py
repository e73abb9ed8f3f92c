"""The demo's data: sandbox scenes staged through the Python API, read back the way
``darts inference sentinel2-sequential`` reads them.

Both the demo and the demo model's training stage scenes with a `darts.Workspace`
(``discover`` → ``stage``: what ``darts inference prep-data sentinel2 --optical --aux``
does) against a running sandbox. The training then computes each scene's model inputs
with the pipeline's own input assembly (`darts.pipelines.scene_inputs`) and its
default parameters, so the model is trained on exactly what inference feeds it: the
same 13 features, the same normalisation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from darts.sandbox.layout import WorldLayout

if TYPE_CHECKING:
    from darts.workspace import Workspace


def demo_workspace(
    data_dir: Path, config_file: Path, raw_data_source: str = "cdse", *, offline: bool = False
) -> Workspace:
    """A workspace with everything under ``data_dir`` and the endpoints of a sandbox
    config file. The environment is ignored (``environ={}``): settings in the user's
    own environment (``AWS_PROFILE``, ``DARTS_CDSE_STAC_URL`` ...) cannot send the
    demo's requests anywhere but the sandbox, nor its data anywhere else."""
    from darts.workspace import Workspace

    root = Path(data_dir)
    return Workspace(
        root,
        config_file=config_file,
        environ={},
        fast_dir=root,
        large_dir=root,
        raw_data_source=raw_data_source,
        offline=offline,
    )


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
    """``darts.grid.scene.Grid`` of the scene."""


def offline_runtime(data_dir: Path) -> Any:
    """The runtime of an offline workspace over ``data_dir``, the environment ignored."""
    from darts.workspace import Workspace

    root = Path(data_dir)
    return Workspace(root, environ={}, fast_dir=root, large_dir=root, offline=True).runtime


def read_scene_inputs(
    data_dir: Path, scene_ids: Sequence[str], bands: Sequence[str]
) -> Iterator[SceneInputs]:
    """Model inputs of each staged scene, offline: `scene_inputs`, as the sequential
    pipeline assembles them, with its default feature parameters."""
    from darts.grid.scene import grid_of_dataset
    from darts.net.http import HttpClient
    from darts.pipelines.aux_data import AuxCubes
    from darts.pipelines.scene_inputs import InputPlan, scene_inputs
    from darts.pipelines.scene_sources import open_scene_source
    from darts.processing.features import QUALITY_BAND, FeatureParams, feature_window
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
            inputs, params = scene_inputs(dict(item), source, store, cubes, plan)
            height, width = inputs.sizes["y"], inputs.sizes["x"]
            yield SceneInputs(
                scene_id=scene_id,
                features=feature_window(inputs, (0, height, 0, width), bands, params),
                quality=np.asarray(inputs[QUALITY_BAND].values, dtype=np.uint8),
                grid=grid_of_dataset(inputs),
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
