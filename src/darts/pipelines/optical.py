"""The optical input of a run: one scene as reflectance plus its quality mask.

Composes the source (`load_scene`: store first, network only for what is missing and
only when online) with the compute steps that every consumer wants, so callers get
one `xarray.Dataset` on the scene's 10 m grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import xarray as xr

from darts.processing.quality import quality_mask_from_scl
from darts.processing.reflectance import to_reflectance
from darts.sources.cdse_download import load_scene

if TYPE_CHECKING:
    from darts.net.s3 import S3Client
    from darts.store.scenes import SceneStore

QUALITY_BAND = "quality_data_mask"


def load_optical(
    item: Mapping[str, Any],
    bands: Sequence[str] | str | None,
    store: SceneStore | None,
    s3: S3Client | None,
    *,
    offline: bool,
    reflectance: bool = True,
) -> xr.Dataset:
    """Exactly the requested bands (SCL included) of one scene, from the store or the
    network. With ``reflectance`` the DN bands become float32 reflectance with NaN
    for nodata; SCL stays as classes. ``quality_data_mask`` (uint8: 0 invalid, 1 low,
    2 high, per processing.md) is always added."""
    scene = load_scene(item, bands, store, s3, offline=offline)
    scl_name = next(name for name in scene.data_vars if str(name).startswith("SCL"))
    quality = quality_mask_from_scl(scene[scl_name])
    if reflectance:
        scene = to_reflectance(scene)
    return scene.assign({QUALITY_BAND: quality})
