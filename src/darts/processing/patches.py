"""How patches tile a scene and how their predictions blend back into one raster.

Tiling: patches of ``patch_size`` start every ``patch_size - overlap`` pixels; the last
row and column of patches is shifted inward to end exactly at the scene edge (so no
patch reaches outside the scene and every pixel is covered). A scene dimension smaller
than a patch gets one window spanning it; inference pads that window's input.

Blending: each patch's probabilities are weighted by a separable linear ramp that
rises over the ``overlap`` pixels at each patch edge, so neighbouring patches cross-fade
instead of meeting at a seam where both are least reliable (their borders). The ramp
never reaches zero, so a pixel covered by a single patch (at the scene edge) keeps its
value.

Memory: the only scene-sized array is the float32 sum of weighted probabilities. The
matching sum of weights is not stored: it depends only on which patches ran, so
:meth:`Blender.finish` recomputes it one band of rows at a time (a band is at most one
patch tall) and divides in place. For a 10980² scene that is 482 MB instead of the
964 MB (or a lossy float16 weight array) a stored weight sum would need, and the
division uses exact float32 weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from darts.errors import ConfigError

Window = tuple[int, int, int, int]
"""(row0, row1, col0, col1), half-open, in scene pixels."""


@dataclass(frozen=True)
class PatchParams:
    patch_size: int = 1024
    overlap: int = 256
    batch_size: int = 8
    reflection_padding: int = 0
    """Extra context in pixels on each side of every patch, cropped from the output.
    Inside the scene it is real neighbouring data; beyond the scene edge the scene is
    mirrored. 0 (the default, as in the reference's settings) relies on the overlap
    alone to keep patch borders out of the blended result."""

    def __post_init__(self) -> None:
        if self.patch_size < 1:
            raise ConfigError(f"--patch-size {self.patch_size} must be at least 1 pixel")
        if not 0 <= self.overlap < self.patch_size:
            raise ConfigError(
                f"--overlap {self.overlap} must be at least 0 and smaller than "
                f"--patch-size {self.patch_size}"
            )
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size {self.batch_size} must be at least 1")
        if self.reflection_padding < 0:
            raise ConfigError(
                f"--reflection-padding {self.reflection_padding} must not be negative"
            )


def iter_patch_windows(shape: tuple[int, int], params: PatchParams) -> list[Window]:
    """Every patch window of a scene of ``shape`` (rows, cols), row by row."""
    height, width = shape
    rows = _starts(height, params.patch_size, params.patch_size - params.overlap)
    cols = _starts(width, params.patch_size, params.patch_size - params.overlap)
    return [
        (r, min(r + params.patch_size, height), c, min(c + params.patch_size, width))
        for r in rows
        for c in cols
    ]


def ramp_weight(patch_size: int, overlap: int) -> np.ndarray:
    """float32 (patch_size, patch_size): 1 inside, falling linearly over ``overlap``
    pixels towards each edge to 1/(overlap + 1). Two patches overlapping by exactly
    ``overlap`` pixels have weights summing to 1 across their shared strip."""
    index = np.arange(patch_size, dtype=np.float64)
    rise = (index + 1) / (overlap + 1)
    fall = (patch_size - index) / (overlap + 1)
    profile = np.minimum(1.0, np.minimum(rise, fall)).astype(np.float32)
    return np.outer(profile, profile)


class Blender:
    """Accumulates weighted patch probabilities into a scene raster."""

    def __init__(self, shape: tuple[int, int], params: PatchParams) -> None:
        self.shape = shape
        self._ramp = ramp_weight(params.patch_size, params.overlap)
        self._sum = np.zeros(shape, dtype=np.float32)
        self._windows: list[Window] = []

    def add(self, window: Window, probabilities: np.ndarray) -> None:
        """Add one patch's (h, w) probabilities; ``probabilities`` is overwritten
        (weighted in place, to avoid a temporary per patch)."""
        r0, r1, c0, c1 = window
        probabilities *= self._ramp[: r1 - r0, : c1 - c0]
        self._sum[r0:r1, c0:c1] += probabilities
        self._windows.append(window)

    def finish(self) -> np.ndarray:
        """The blended float32 raster, NaN where no patch was added. Call once: the
        result reuses the accumulator's memory."""
        out = self._sum
        height, width = self.shape
        cuts = sorted({0, height, *(w[0] for w in self._windows), *(w[1] for w in self._windows)})
        for top, bottom in pairwise(cuts):
            weight = np.zeros((bottom - top, width), dtype=np.float32)
            for r0, r1, c0, c1 in self._windows:
                if r0 <= top and bottom <= r1:
                    weight[:, c0:c1] += self._ramp[top - r0 : bottom - r0, : c1 - c0]
            band = out[top:bottom]
            covered = weight > 0
            np.divide(band, weight, out=band, where=covered)
            band[~covered] = np.nan
        return out


def _starts(length: int, patch: int, step: int) -> list[int]:
    if length <= 0:
        return []
    if length <= patch:
        return [0]
    # range stops short of the last full-patch start; that one is added shifted inward
    # so the final patch ends exactly at the edge.
    return [*range(0, length - patch, step), length - patch]
