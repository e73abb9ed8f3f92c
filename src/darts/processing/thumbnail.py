"""``thumbnail.png``: a quick look a person can check a scene's detections on.

- Background: true colour from ``red``/``green``/``blue`` reflectance, block-averaged
  down to at most :data:`THUMBNAIL_MAX_SIZE` px on the long side, with one robust
  stretch (2nd..98th percentile of all three bands together, so the colour balance
  is kept; a per-band stretch tints scenes dominated by snow or water). Pixels
  without reflectance are black; areas outside the valid mask are shown at half
  brightness, so one sees where the model could not report anything.
- Without optical bands: the probabilities in grey, 0 → dark grey, 1 → white, no
  prediction → black (so "probability 0" and "no data" stay distinguishable).
- Detections: the outline of every object of the final detections (``binarized``
  inside the valid mask: the pixels with probability ≥ the binarisation threshold
  that survived postprocessing, i.e. the objects in ``prediction_segments``) in
  :data:`OUTLINE_COLOUR`. An object smaller than a thumbnail pixel still shows as one
  pixel, because a thumbnail pixel counts as detected if any scene pixel in it is.

Below the map, a caption (`darts.processing.thumbnail_caption`): the scene id as the
title, the date, tile and source, a legend of these colours and a scale bar. The map
itself is the top-left :func:`thumbnail_shape` of the image, pixel for pixel.

Rendering only reads the input; it never depends on other exports (pitfall 22).

Memory: the scene is read in strips of rows (:data:`_ROWS_PER_STEP` thumbnail rows),
so no full-scene temporary is made, and variables backed lazily (e.g. reflectance
from `feature_dataset(..., lazy=True)`) are only ever computed one strip at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr
from PIL import Image
from scipy import ndimage

from darts.grid.scene import Grid
from darts.processing.export_staging import staged
from darts.processing.provenance import Provenance
from darts.processing.run_metadata import ExportError
from darts.processing.thumbnail_caption import add_caption, legend_entries, metres_per_pixel

THUMBNAIL_MAX_SIZE = 1024
THUMBNAIL_NAME = "thumbnail.png"
# Magenta: next to nothing in tundra, water, snow or cloud has this colour.
OUTLINE_COLOUR = (255, 0, 255)
RGB_BANDS = ("red", "green", "blue")
STRETCH_PERCENTILES = (2.0, 98.0)
# Output rows reduced per step: bounds the temporary arrays to a strip of the scene
# instead of a full-scene float copy per band.
_ROWS_PER_STEP = 64


def thumbnail_factor(shape: tuple[int, int]) -> int:
    """The integer block size that brings the long side to at most the maximum."""
    return max(1, math.ceil(max(shape) / THUMBNAIL_MAX_SIZE))


def thumbnail_shape(shape: tuple[int, int]) -> tuple[int, int]:
    return reduced_shape(shape, thumbnail_factor(shape))


def reduced_shape(shape: tuple[int, ...], factor: int) -> tuple[int, int]:
    return (math.ceil(shape[0] / factor), math.ceil(shape[1] / factor))


def block_mean(array: np.ndarray | xr.DataArray, factor: int) -> np.ndarray:
    """float32 mean of the finite values in each ``factor``×``factor`` block (edge
    blocks are partial); NaN where a block has none. ``array``: 2-D, anything numpy
    can convert (integers count as values), read one strip of rows at a time."""
    rows, cols = reduced_shape(array.shape, factor)
    out = np.full((rows, cols), np.nan, dtype=np.float32)
    for row0 in range(0, rows, _ROWS_PER_STEP):
        row1 = min(rows, row0 + _ROWS_PER_STEP)
        strip = _padded_strip(array, factor, row0, row1, cols, fill=np.nan)
        finite = np.isfinite(strip)
        shape = (row1 - row0, factor, cols, factor)
        sums = np.where(finite, strip, 0.0).reshape(shape).sum(axis=(1, 3), dtype=np.float64)
        counts = finite.reshape(shape).sum(axis=(1, 3))
        has = counts > 0
        out[row0:row1][has] = (sums[has] / counts[has]).astype(np.float32)
    return out


def block_any(mask: np.ndarray | xr.DataArray, factor: int) -> np.ndarray:
    """True where any pixel of the ``factor``×``factor`` block is True."""
    return _block_any(lambda rows: np.asarray(mask[rows], dtype=bool), mask.shape, factor)


def _block_any(
    read: Callable[[slice], np.ndarray], shape: tuple[int, ...], factor: int
) -> np.ndarray:
    """`block_any` of the bool mask whose rows ``read(rows)`` returns."""
    rows, cols = reduced_shape(shape, factor)
    out = np.zeros((rows, cols), dtype=bool)
    for row0 in range(0, rows, _ROWS_PER_STEP):
        row1 = min(rows, row0 + _ROWS_PER_STEP)
        source = read(slice(row0 * factor, row1 * factor))
        strip = _padded(source, factor, row1 - row0, cols, fill=False)
        out[row0:row1] = strip.reshape(row1 - row0, factor, cols, factor).any(axis=(1, 3))
    return out


def _padded_strip(
    array: np.ndarray | xr.DataArray,
    factor: int,
    row0: int,
    row1: int,
    cols: int,
    *,
    fill: float | bool,
) -> np.ndarray:
    """Input rows for output rows row0..row1, padded with ``fill`` to whole blocks."""
    source = np.asarray(array[row0 * factor : row1 * factor])
    return _padded(source, factor, row1 - row0, cols, fill=fill)


def _padded(
    source: np.ndarray, factor: int, rows: int, cols: int, *, fill: float | bool
) -> np.ndarray:
    dtype = bool if isinstance(fill, bool) else np.float32
    strip = np.full((rows * factor, cols * factor), fill, dtype=dtype)
    strip[: source.shape[0], : source.shape[1]] = source
    return strip


def stretch(bands: np.ndarray) -> np.ndarray:
    """(3, H, W) float reflectance → (H, W, 3) uint8 with one joint percentile stretch."""
    finite = bands[np.isfinite(bands)]
    if finite.size == 0:
        return np.zeros((*bands.shape[1:], 3), dtype=np.uint8)
    low, high = (float(v) for v in np.percentile(finite, STRETCH_PERCENTILES))
    if high <= low:
        # A flat image: any positive span shows it as one grey instead of dividing by 0.
        high = low + 1.0
    scaled = np.clip((bands - low) / (high - low), 0.0, 1.0) * 255.0
    image = np.where(np.isfinite(scaled), np.rint(scaled), 0.0).astype(np.uint8)
    return np.moveaxis(image, 0, -1)


def probability_grey(probabilities: np.ndarray) -> np.ndarray:
    """(H, W) probabilities → (H, W, 3) uint8 grey: 0 → 64, 1 → 255, NaN → 0."""
    grey = np.where(
        np.isfinite(probabilities), 64.0 + np.clip(probabilities, 0.0, 1.0) * 191.0, 0.0
    )
    return np.repeat(np.rint(grey).astype(np.uint8)[..., None], 3, axis=-1)


def outline(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` that have an 8-neighbour outside it (or the image edge)."""
    inner = ndimage.binary_erosion(mask, structure=np.ones((3, 3), dtype=bool), border_value=0)
    return mask & ~inner


def render_thumbnail(result: xr.Dataset) -> np.ndarray:
    """The thumbnail as an (H, W, 3) uint8 array."""
    for name in ("probabilities", "binarized", "valid"):
        if name not in result.data_vars:
            raise ExportError(f"cannot draw the thumbnail: the scene result has no {name!r}")
    valid = result["valid"]
    shape = valid.shape
    factor = thumbnail_factor(shape)
    if has_optical(result):
        bands = np.stack([block_mean(result[n], factor) for n in RGB_BANDS])
        image = stretch(bands)
        # Below half valid: mostly outside the area the model may report on.
        valid_share = block_mean(_Rows(lambda rows: valid[rows].values == 1, shape), factor)
        image[valid_share < 0.5] //= 2
    else:
        image = probability_grey(block_mean(result["probabilities"], factor))

    def detections(rows: slice) -> np.ndarray:
        return (result["binarized"][rows].values == 1) & (valid[rows].values == 1)

    image[outline(_block_any(detections, shape, factor))] = OUTLINE_COLOUR
    return image


def has_optical(result: xr.Dataset) -> bool:
    """Whether the background is true colour (else grey probabilities)."""
    return all(name in result.data_vars for name in RGB_BANDS)


class _Rows:
    """A 2-D array-like whose row slices are computed by ``read`` (for `block_mean`)."""

    def __init__(self, read: Callable[[slice], np.ndarray], shape: tuple[int, ...]) -> None:
        self.read, self.shape = read, shape

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self.read(rows)


def write_thumbnail(
    result: xr.Dataset, grid: Grid, out_dir: Path, provenance: Provenance
) -> list[Path]:
    path = out_dir / THUMBNAIL_NAME
    legend = legend_entries(optical=has_optical(result), outline_colour=OUTLINE_COLOUR)
    scale = metres_per_pixel(grid, thumbnail_factor(grid.shape))
    image = Image.fromarray(add_caption(render_thumbnail(result), provenance, legend, scale))
    with staged(path) as tmp:
        image.save(tmp, format="PNG")
    return [path]
