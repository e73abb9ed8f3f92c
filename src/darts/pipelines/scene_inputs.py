"""One scene's model inputs, assembled once for every caller: the sequential run, the
Python API and the demo's training data.

optical bands + quality (store first, the source only for what is missing) → the scene's 10 m
grid → ArcticDEM and TCVIS from their cubes, each reprojected onto that grid as soon as
it is loaded and dropped before the next one loads (only one source cube is ever in
memory) → `build_inputs`, with the sun position of the scene.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import xarray as xr

from darts.grid.scene import grid_of_dataset
from darts.pipelines.aux_regions import item_year, regions_for_scenes
from darts.pipelines.optical import load_optical
from darts.pipelines.step_clock import StepClock
from darts.processing.features import FeatureParams, build_inputs
from darts.processing.reproject import reproject_dem, reproject_tcvis
from darts.sources.scene_source import OPTICAL_KEYS

if TYPE_CHECKING:
    from darts.pipelines.aux_data import AuxCubes
    from darts.sources.scene_source import SceneSource
    from darts.store.scenes import SceneStore

TERRAIN_FEATURES = frozenset({"relative_elevation", "slope", "aspect", "hillshade", "curvature"})
TCVIS_FEATURES = frozenset({"tc_brightness", "tc_greenness", "tc_wetness"})


@dataclass(frozen=True)
class InputPlan:
    """What to assemble: the feature parameters a run configured (the sun position is
    each scene's own), the auxiliary buffer, and which auxiliary sources the models'
    bands need at all."""

    features: FeatureParams
    aux_buffer_m: float = 120.0
    needs_dem: bool = True
    needs_tcvis: bool = True

    @classmethod
    def for_bands(cls, bands: list[str], features: FeatureParams, aux_buffer_m: float) -> InputPlan:
        return cls(
            features,
            aux_buffer_m,
            needs_dem=bool(TERRAIN_FEATURES & set(bands)),
            needs_tcvis=bool(TCVIS_FEATURES & set(bands)),
        )


def scene_inputs(
    item: Mapping[str, Any],
    source: SceneSource,
    store: SceneStore | None,
    cubes: AuxCubes,
    plan: InputPlan,
    *,
    clock: StepClock | None = None,
) -> tuple[xr.Dataset, FeatureParams]:
    """The scene-grid inputs every feature is derived from (`build_inputs`), and the
    feature parameters with the scene's sun position. Step times go to ``clock``
    ("optical", "aux", "preprocess")."""
    clock = clock or StepClock({})
    with clock("optical"):
        optical = load_optical(source, item, list(OPTICAL_KEYS), store, reflectance=False)
    region = regions_for_scenes([item])[0]
    grid = grid_of_dataset(optical)
    dem = tcvis = None
    if plan.needs_dem:
        with clock("aux"):
            cube = cubes.load_dem(region, plan.aux_buffer_m)
        with clock("preprocess"):
            dem = reproject_dem(cube, grid)
            del cube
    if plan.needs_tcvis:
        with clock("aux"):
            cube = cubes.load_tcvis(region, item_year(item), plan.aux_buffer_m)
        with clock("preprocess"):
            tcvis = reproject_tcvis(cube, grid)
            del cube
    params = FeatureParams.for_item(
        item,
        tpi_outer_radius_m=plan.features.tpi_outer_radius_m,
        tpi_inner_radius_m=plan.features.tpi_inner_radius_m,
        terrain_convention=plan.features.terrain_convention,
    )
    with clock("preprocess"):
        inputs = build_inputs(optical, dem, tcvis, params)
    return inputs, params
