"""Retrogressive thaw slumps: horseshoe-shaped, scarp-bounded depressions on slopes.

A slump is described in its own frame: ``u`` points downslope, ``v`` across. Its rim
is a wobbly ellipse (radius ``radius`` across the slope, ``radius * elongation``
along it, plus low harmonics), the polar angle ``theta`` is 0 at the headwall (upslope)
and pi at the outlet. Inside, the ground is lowered by up to ``depth`` metres at the
headwall, fading along the slope to a shallow floor at the outlet; the drop happens over
the outer 18 % of the radius, which makes a steep scarp on the upslope and lateral sides and an open
mouth downslope. The scar is bare mud (SCL "not vegetated"); the ground-truth polygon is
the rim (normalised radius 1).

Slumps are placed once per world from the seed, on slopes, off water, not overlapping.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from shapely.geometry import Polygon

from darts.sandbox.world.seeds import rng
from darts.sandbox.world.terrain import Land, smoothstep

_SCARP = 0.82  # normalised radius where the scarp starts
_BARE_EDGE = 0.92  # normalised radius inside which the scar is fully bare


@dataclass(frozen=True)
class Slump:
    id: int
    x: float  # centre, EPSG:3413 m
    y: float
    ux: float  # unit vector pointing downslope
    uy: float
    radius: float  # half-width across the slope, m
    elongation: float  # along-slope half-length / radius
    depth: float  # maximum lowering at the headwall, m
    harmonics: tuple[tuple[float, float], ...]  # (amplitude, phase) for k = 2, 3, ...
    initiated: int  # year the slump became active (drives TCVIS trends)

    @property
    def extent(self) -> float:
        """Radius of a circle that contains the whole slump."""
        wobble = 1.0 + sum(abs(a) for a, _ in self.harmonics)
        return self.radius * max(self.elongation, 1.0) * wobble + 1.0

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        e = self.extent
        return (self.x - e, self.y - e, self.x + e, self.y + e)

    def _rim(self, theta: np.ndarray) -> np.ndarray:
        rim = np.ones_like(theta)
        for k, (amplitude, phase) in enumerate(self.harmonics, start=2):
            rim = rim + amplitude * np.cos(k * theta + phase)
        return rim

    def effect(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lowering in m, bare fraction 0..1) at EPSG:3413 points."""
        dx = x - self.x
        dy = y - self.y
        u = (dx * self.ux + dy * self.uy) / (self.radius * self.elongation)
        v = (-dx * self.uy + dy * self.ux) / self.radius
        theta = np.arctan2(v, -u)
        rho = np.hypot(u, v) / self._rim(theta)
        # 1 at the headwall (upslope end), 0 at the outlet; smooth through the centre.
        headwall = np.clip((1.0 - u) * 0.5, 0.0, 1.0)
        inside = smoothstep(1.0, _SCARP, rho)
        lowering = self.depth * inside * (0.15 + 0.85 * headwall**0.8)
        bare = smoothstep(1.0, _BARE_EDGE, rho) * (0.8 + 0.2 * headwall)
        return lowering.astype(np.float32), bare.astype(np.float32)

    def polygon(self, points: int = 96) -> Polygon:
        """The rim as a polygon in EPSG:3413 (counter-clockwise)."""
        theta = np.linspace(0.0, 2.0 * math.pi, points, endpoint=False)
        rim = self._rim(theta)
        u = -rim * np.cos(theta) * self.radius * self.elongation
        v = rim * np.sin(theta) * self.radius
        px = self.x + u * self.ux - v * self.uy
        py = self.y + u * self.uy + v * self.ux
        poly = Polygon(np.column_stack([px, py]))
        return poly if poly.exterior.is_ccw else Polygon(poly.exterior.coords[::-1])


LandSampler = Callable[[np.ndarray, np.ndarray], Land]


@dataclass(frozen=True)
class PlacementRegion:
    """Where to put ``count`` slumps: a polygon in EPSG:3413 and a label for the seed."""

    label: str
    area: Polygon
    count: int


def _candidate_stats(
    sample: LandSampler, x: np.ndarray, y: np.ndarray, radius: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Slope (degrees), downslope unit vector and max water near each candidate."""
    step = 15.0
    ring = np.linspace(0.0, 2.0 * math.pi, 8, endpoint=False)
    px = np.concatenate(
        [x, x + step, x - step, x, x] + [x + 1.2 * radius * np.cos(a) for a in ring]
    )
    py = np.concatenate(
        [y, y, y, y + step, y - step] + [y + 1.2 * radius * np.sin(a) for a in ring]
    )
    sampled = sample(px, py)
    n = len(x)
    h = sampled.height.reshape(-1, n)
    w = sampled.water.reshape(-1, n)
    gx = (h[1] - h[2]) / (2 * step)
    gy = (h[3] - h[4]) / (2 * step)
    norm = np.hypot(gx, gy)
    slope = np.degrees(np.arctan(norm))
    safe = np.where(norm > 0, norm, 1.0)
    return slope, -gx / safe, -gy / safe, w.max(axis=0)


def place_slumps(seed: int, regions: Sequence[PlacementRegion], sample: LandSampler) -> list[Slump]:
    """Slumps for each region in order, on slopes, off water and apart from each other.

    Candidates are drawn in batches from a generator seeded by the world seed and the
    region label and accepted greedily, so the result is a pure function of the inputs.
    If steep enough ground is scarce the slope requirement is relaxed rather than
    producing fewer slumps than asked.
    """
    placed: list[Slump] = []
    for region in regions:
        generator = rng(seed, "slumps", region.label)
        xmin, ymin, xmax, ymax = region.area.bounds
        accepted = 0
        for min_slope in (2.0, 0.7, 0.0):
            for _batch in range(8):
                if accepted >= region.count:
                    break
                n = 256
                cx = generator.uniform(xmin, xmax, n)
                cy = generator.uniform(ymin, ymax, n)
                radius = generator.uniform(60.0, 170.0, n)
                elongation = generator.uniform(1.0, 1.35, n)
                depth = generator.uniform(2.0, 6.0, n)
                amps = generator.uniform(0.0, 0.08, (n, 3))
                phases = generator.uniform(0.0, 2.0 * math.pi, (n, 3))
                initiated = generator.integers(2001, 2016, n)
                slope, dx, dy, water = _candidate_stats(sample, cx, cy, radius)
                for i in range(n):
                    if accepted >= region.count:
                        break
                    if not (min_slope <= slope[i] <= 25.0) or water[i] > 0.2:
                        continue
                    if min_slope == 0.0 and dx[i] == 0 and dy[i] == 0:
                        dx[i], dy[i] = 1.0, 0.0
                    candidate = Slump(
                        id=len(placed) + 1,
                        x=float(cx[i]),
                        y=float(cy[i]),
                        ux=float(dx[i]),
                        uy=float(dy[i]),
                        radius=float(radius[i]),
                        elongation=float(elongation[i]),
                        depth=float(depth[i]),
                        harmonics=tuple(
                            (float(a), float(p)) for a, p in zip(amps[i], phases[i], strict=True)
                        ),
                        initiated=int(initiated[i]),
                    )
                    if not region.area.contains(candidate.polygon(24).envelope):
                        continue
                    if any(
                        math.hypot(o.x - candidate.x, o.y - candidate.y)
                        < 1.2 * (o.extent + candidate.extent)
                        for o in placed
                    ):
                        continue
                    placed.append(candidate)
                    accepted += 1
    return placed
