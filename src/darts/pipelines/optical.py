"""The optical input of a run: one scene as reflectance plus its quality mask.

Composes staging (`load_scene`: store first, the source only for what is missing)
with the compute steps every consumer wants, so callers get one
`xarray.Dataset` on the scene's 10 m grid, whichever source the scene came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import xarray as xr

from darts.pipelines.staging import load_scene
from darts.processing.quality import quality_mask
from darts.processing.reflectance import to_reflectance

if TYPE_CHECKING:
    from darts.sources.scene_source import SceneSource
    from darts.store.scenes import SceneStore

QUALITY_BAND = "quality_data_mask"


def load_optical(
    source: SceneSource,
    scene: Mapping[str, Any],
    bands: Sequence[str] | str | None,
    store: SceneStore | None,
    *,
    reflectance: bool = True,
) -> xr.Dataset:
    """Exactly the requested bands (the source's quality band included) of one scene,
    from the store or the network. With ``reflectance`` the DN bands become float32
    reflectance with NaN for nodata; the quality band stays as delivered.
    ``quality_data_mask`` (uint8: 0 invalid, 1 low, 2 high, per processing.md) is
    always added."""
    data = load_scene(source, scene, bands, store)
    quality = quality_mask(data[source.quality_band])
    if reflectance:
        data = to_reflectance(data)
    return data.assign({QUALITY_BAND: quality})
