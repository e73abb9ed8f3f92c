"""The land surface before thaw slumps: relief, valleys, rivers, lakes, vegetation.

Everything is a pure function of EPSG:3413 coordinates and the seed (see ``noise``), so
a UTM scene, a DEM tile and a TCVIS grid see the same hills and lakes. The recipe is
a lowland tundra plateau (60–180 m a.s.l.) cut by river valleys 20–30 m deep: valley
centre lines are where a smooth noise field crosses zero, which gives winding,
connected channels; thermokarst lakes are blobs of a second field, flattened to a water
level; vegetation greenness and natural bare-ground patches are further fields.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from darts.sandbox.world.noise import fbm


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class Land:
    """Per-pixel land state before slumps (float32 arrays of one shape)."""

    height: np.ndarray  # metres above the ellipsoid-ish datum
    water: np.ndarray  # 0..1 open water (lakes, rivers)
    bare: np.ndarray  # 0..1 natural bare ground (gravel, frost boils)
    greenness: np.ndarray  # about -1..1, shrub vs. sparse tundra


def land(seed: int, x: np.ndarray, y: np.ndarray, detail: bool = True) -> Land:
    """Sample the land at EPSG:3413 points. ``detail=False`` skips metre-scale texture."""
    regional = fbm(x, y, 9000.0, 3, seed, "relief")
    height = 120.0 + 45.0 * regional + 6.0 * fbm(x, y, 900.0, 3, seed, "hills")
    if detail:
        height = height + 0.8 * fbm(x, y, 90.0, 2, seed, "texture")

    # Valleys: |n| small along winding zero lines of a smooth field.
    valley_field = np.abs(fbm(x, y, 6000.0, 2, seed, "valleys"))
    valley = np.clip(1.0 - valley_field / 0.1, 0.0, 1.0)
    height = height - 28.0 * valley**1.6
    river = 1.0 - smoothstep(0.004, 0.008, valley_field)

    # Thermokarst lakes: blobs, more of them in the lowlands, kept out of valleys.
    lake_field = fbm(x, y, 1800.0, 2, seed, "lakes") - 0.15 * regional - 0.6 * valley
    lake = smoothstep(0.30, 0.34, lake_field)
    basin = smoothstep(0.20, 0.34, lake_field)
    water_level = 120.0 + 45.0 * regional - 6.0
    height = height - 3.0 * basin
    height = height + (water_level - height) * lake

    water = np.maximum(lake, river)
    # Sparse gravel / frost-boil patches: never bare enough to look like a slump scar.
    bare = 0.3 * smoothstep(0.45, 0.7, fbm(x, y, 400.0, 2, seed, "bare")) * (1.0 - water)
    greenness = fbm(x, y, 700.0, 3, seed, "greenness") * 1.8
    return Land(
        height=height.astype(np.float32),
        water=water.astype(np.float32),
        bare=bare.astype(np.float32),
        greenness=np.clip(greenness, -1.0, 1.0).astype(np.float32),
    )
