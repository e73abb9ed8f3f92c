"""The world field: land plus slumps, sampled on any raster grid.

This is the one source of truth every layer reads: scenes, DEM tiles and TCVIS grids
all call :meth:`WorldField.sample` with their pixel centres in EPSG:3413, so a slump's
scar, its depression and its vegetation-trend signal coincide on the ground.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from darts.sandbox.world.coords import GridCoords
from darts.sandbox.world.slumps import Slump
from darts.sandbox.world.terrain import land


@dataclass(frozen=True)
class Ground:
    height: np.ndarray  # m, slumps included
    water: np.ndarray  # 0..1
    bare: np.ndarray  # 0..1, natural bare ground and slump scars
    greenness: np.ndarray  # -1..1
    slump: np.ndarray  # 0..1 slump scar fraction


@dataclass(frozen=True)
class WorldField:
    seed: int
    slumps: tuple[Slump, ...]
    # EPSG:3413 box of the main window: cloud and snow amounts are calibrated on it, so
    # a scene's weather matches the spec there, whatever the seed's clouds look like.
    calibration_box: tuple[float, float, float, float]

    def calibration_points(self, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
        xmin, ymin, xmax, ymax = self.calibration_box
        x, y = np.meshgrid(np.linspace(xmin, xmax, n), np.linspace(ymin, ymax, n))
        return x.ravel(), y.ravel()

    def _slumps_in(self, coords: GridCoords) -> list[tuple[Slump, tuple[slice, slice]]]:
        found = []
        for slump in self.slumps:
            window = coords.window_of_box(*slump.bbox)
            if window is not None:
                found.append((slump, window))
        return found

    def sample(self, coords: GridCoords, detail: bool = True) -> Ground:
        base = land(self.seed, coords.x, coords.y, detail=detail)
        height = base.height.copy()
        scar = np.zeros_like(height)
        for slump, (rows, cols) in self._slumps_in(coords):
            lowering, bare = slump.effect(coords.x[rows, cols], coords.y[rows, cols])
            height[rows, cols] -= lowering
            np.maximum(scar[rows, cols], bare, out=scar[rows, cols])
        bare = np.maximum(base.bare, scar)
        return Ground(height, base.water, bare, base.greenness, scar)

    def slump_signal(self, coords: GridCoords, weights: Sequence[float]) -> np.ndarray:
        """Slump scar fraction, each slump scaled by its weight (e.g. years active)."""
        signal = np.zeros(coords.x.shape, dtype=np.float32)
        by_id = dict(zip((s.id for s in self.slumps), weights, strict=True))
        for slump, (rows, cols) in self._slumps_in(coords):
            _, bare = slump.effect(coords.x[rows, cols], coords.y[rows, cols])
            np.maximum(
                signal[rows, cols], bare * np.float32(by_id[slump.id]), out=signal[rows, cols]
            )
        return signal
