"""From the ensemble's probabilities to the final valid mask and binary detections.

Steps, as processing.md lists them:

1. valid = quality ≥ ``quality_level``;
2. erode it with a disk of radius ``mask_erosion_size`` px (offsets with
   i² + j² ≤ r²), so detections keep a distance from clouds and no-data;
3. blank the outer ``edge_erosion_size`` px of the scene (default: the mask erosion);
   pixels whose probability was never computed (NaN) are not valid either;
4. probabilities outside valid become NaN;
5. binarise: probability ≥ ``binarization_threshold``;
6. drop objects touching invalid area (an 8-neighbour of an invalid pixel, the outside
   of the scene counting as invalid): they are cut off, not whole;
7. drop objects smaller than ``min_object_size`` px.

One connectivity everywhere (pitfall 23): objects are 8-connected (`CONNECTIVITY`,
`STRUCTURE`) for labelling and for "touching" (an object pixel with an invalid pixel
among its 8 neighbours), and the polygons exported later must use the same. The mask
erosion is the disk processing.md names, with the parameter as its radius.

Inputs are never modified (pitfall 22): every output is a new array, so the order in
which later steps read them does not matter. The one exception is explicit: a caller
may hand its probability raster over (``take_probabilities``) instead of having it
copied. Memory for a 10980² scene: bool/uint8 masks (120 MB each), one int32 label
image (482 MB) and the float32 probability copy (unless handed over); the erosion and
the label lookups work in row blocks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import xarray as xr
from scipy.ndimage import label, minimum_filter1d

from darts.grid.scene import DIMS, GRID_MAPPING

CONNECTIVITY = 8
STRUCTURE = np.ones((3, 3), dtype=bool)  # the 8-neighbourhood
STRUCTURE.flags.writeable = False  # shared by every caller: never to be changed
# Rows per erosion block: a block holds ~r + 1 eroded copies of (rows + 2r) × width
# bytes (≈ 70 MB for r = 10 on a 10980-px-wide scene).
_EROSION_ROWS = 512


@dataclass(frozen=True)
class PostprocessParams:
    binarization_threshold: float = 0.5
    mask_erosion_size: int = 10
    edge_erosion_size: int | None = None  # None: same as mask_erosion_size
    min_object_size: int = 32
    quality_level: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.binarization_threshold <= 1.0:
            raise ValueError(
                f"binarization_threshold must be within 0..1, got {self.binarization_threshold}"
            )
        for name in ("mask_erosion_size", "min_object_size", "quality_level"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.edge_erosion_size is not None and self.edge_erosion_size < 0:
            raise ValueError(
                f"edge_erosion_size must not be negative, got {self.edge_erosion_size}"
            )

    @property
    def edge_size(self) -> int:
        if self.edge_erosion_size is None:
            return self.mask_erosion_size
        return self.edge_erosion_size


def postprocess(
    probabilities: xr.DataArray,
    quality: xr.DataArray,
    params: PostprocessParams | None = None,
    *,
    take_probabilities: bool = False,
) -> xr.Dataset:
    """``probabilities`` (float32 0..1, NaN = not computed) and ``quality`` (uint8 0/1/2)
    on one grid → Dataset of ``probabilities`` (float32, NaN outside valid),
    ``binarized`` (uint8 0/1) and ``valid`` (uint8 0/1), with the input coordinates.

    ``take_probabilities``: the caller hands its float32 ``probabilities`` array over
    and never uses it again (the pipeline, with the blended raster of a scene); it
    becomes the output's ``probabilities`` instead of being copied, which saves a
    scene-sized copy (482 MB for 10980²). Otherwise the inputs are never modified."""
    params = params or PostprocessParams()
    if probabilities.dims != DIMS or quality.dims != DIMS:
        raise ValueError(f"probabilities and quality must have dims {DIMS}")
    if probabilities.shape != quality.shape:
        raise ValueError(
            f"probabilities {probabilities.shape} and quality {quality.shape} differ in shape"
        )
    if take_probabilities and probabilities.dtype == np.float32:
        prob = probabilities.values  # handed over: ours to change
    else:
        prob = np.array(probabilities.values, dtype=np.float32)  # a copy: never the input
    valid = valid_mask(np.asarray(quality.values), params)
    valid &= np.isfinite(prob)
    prob[~valid] = np.nan
    binary = prob >= np.float32(params.binarization_threshold)  # NaN compares False
    binary = remove_objects(binary, valid, params.min_object_size)

    coords = {
        name: probabilities.coords[name]
        for name in (*DIMS, GRID_MAPPING)
        if name in probabilities.coords
    }
    attrs = {**asdict(params), "connectivity": CONNECTIVITY}
    return xr.Dataset(
        {
            "probabilities": (DIMS, prob, {"long_name": "probability of a thaw slump"}),
            "binarized": (DIMS, binary.view(np.uint8), {"flag_values": [0, 1]}),
            "valid": (DIMS, valid.view(np.uint8), {"flag_values": [0, 1]}),
        },
        coords=coords,
        attrs=attrs,
    )


def valid_mask(quality: np.ndarray, params: PostprocessParams) -> np.ndarray:
    """Steps 1–3 on the quality classes: a new bool array."""
    valid = np.asarray(quality) >= params.quality_level
    valid = erode_disk(valid, params.mask_erosion_size)
    blank_edge(valid, params.edge_size)
    return valid


def erode_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """New bool mask: pixels with no False pixel within Euclidean distance ``radius``
    (erosion by the disk i² + j² ≤ r²). Outside the array does not count as False."""
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0:
        return mask.copy()
    # The disk is a stack of horizontal segments, one per row offset dy, of half-width
    # isqrt(r² − dy²). Eroding by it = eroding each row by those segments (a running
    # minimum, O(1) per pixel) and AND-ing the row-shifted results: ~3r passes over the
    # mask instead of the ~πr² of a direct erosion.
    offsets = range(-radius, radius + 1)
    half_widths = {dy: math.isqrt(radius * radius - dy * dy) for dy in offsets}
    height = mask.shape[0]
    out = np.empty(mask.shape, dtype=bool)
    for r0 in range(0, height, _EROSION_ROWS):
        r1 = min(r0 + _EROSION_ROWS, height)
        g0, g1 = max(r0 - radius, 0), min(r1 + radius, height)
        block = mask[g0:g1].view(np.uint8)
        by_width = {
            w: minimum_filter1d(block, 2 * w + 1, axis=1, mode="constant", cval=1).view(bool)
            for w in set(half_widths.values())
        }
        result = np.ones((r1 - r0, mask.shape[1]), dtype=bool)
        for dy, w in half_widths.items():
            # Rows beyond the scene are skipped: they count as valid.
            lo, hi = max(r0 + dy, g0), min(r1 + dy, g1)
            if lo < hi:
                result[lo - r0 - dy : hi - r0 - dy] &= by_width[w][lo - g0 : hi - g0]
        out[r0:r1] = result
    return out


def blank_edge(mask: np.ndarray, size: int) -> None:
    """Set the outer ``size`` rows and columns of ``mask`` (our own array) to False."""
    if size <= 0:
        return
    mask[:size] = False
    mask[-size:] = False
    mask[:, :size] = False
    mask[:, -size:] = False


def remove_objects(binary: np.ndarray, valid: np.ndarray, min_size: int) -> np.ndarray:
    """New bool array without the 8-connected objects of ``binary`` that touch a pixel
    outside ``valid`` (or the scene edge) or have fewer than ``min_size`` pixels."""
    binary = np.asarray(binary, dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    labels, count = label(binary, structure=STRUCTURE, output=np.int32)
    if count == 0:
        return np.zeros(binary.shape, dtype=bool)
    # Pixels with all 8 neighbours valid (and inside the scene); an object pixel
    # outside that set touches invalid area. 3×3 erosion = running minimum along both
    # axes.
    inner = minimum_filter1d(valid.view(np.uint8), 3, axis=1, mode="constant", cval=0)
    inner = minimum_filter1d(inner, 3, axis=0, mode="constant", cval=0).view(bool)
    # A strip of rows at a time: the object pixels' labels of a whole noisy scene, or
    # the intp copy indexing makes of the label image, would be scene-sized temporaries.
    strips = [slice(r0, r0 + _EROSION_ROWS) for r0 in range(0, binary.shape[0], _EROSION_ROWS)]
    sizes = np.zeros(count + 1, dtype=np.int64)
    touching = []
    for rows in strips:
        strip, objects = labels[rows], binary[rows]
        sizes += np.bincount(strip[objects], minlength=count + 1)
        touching.append(np.unique(strip[objects & ~inner[rows]]))
    keep = sizes >= max(min_size, 1)
    keep[0] = False  # background
    keep[np.concatenate(touching)] = False
    kept = np.empty(binary.shape, dtype=bool)
    for rows in strips:
        kept[rows] = keep[labels[rows]]
    return kept
