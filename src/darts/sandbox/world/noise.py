"""Hashed value noise: a smooth random field defined at every point of the plane.

The world must agree with itself wherever it is sampled (a UTM scene, a polar
stereographic DEM tile, a lat/lon TCVIS grid, one block of a large raster), so the
noise is a pure function of the coordinates: lattice values come from an integer hash of
(lattice index, seed), not from a random generator whose state depends on what was
drawn before. Only the lattice cells a block touches are hashed, then each pixel
interpolates its four corners with a quintic fade (no visible grid creases).
"""

from __future__ import annotations

import math

import numpy as np

from darts.sandbox.world.seeds import derive_seed

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M3 = np.uint64(0xBF58476D1CE4E5B9)
_M4 = np.uint64(0x94D049BB133111EB)


def _hash_unit(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Uniform values in [-1, 1) from integer lattice indices (splitmix64 finaliser)."""
    with np.errstate(over="ignore"):
        h = ix.astype(np.int64).view(np.uint64) * _M1
        h ^= iy.astype(np.int64).view(np.uint64) * _M2
        h ^= np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
        h ^= h >> np.uint64(30)
        h *= _M3
        h ^= h >> np.uint64(27)
        h *= _M4
        h ^= h >> np.uint64(31)
    return ((h >> np.uint64(40)).astype(np.float64) * (2.0 / (1 << 24)) - 1.0).astype(np.float32)


def value_noise(x: np.ndarray, y: np.ndarray, scale: float, seed: int) -> np.ndarray:
    """Smooth noise in [-1, 1] with features about ``scale`` metres across.

    The lattice is rotated and shifted per seed so that octaves and layers do not line
    up with each other or with any raster grid.
    """
    angle = (seed % 3600) / 3600.0 * 2.0 * math.pi
    shift_u = (seed >> 12) % 1000 / 1000.0
    shift_v = (seed >> 24) % 1000 / 1000.0
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    # Few, reused temporaries: allocation, not arithmetic, dominates at these sizes.
    u = x * (cos_a / scale)
    u -= y * (sin_a / scale)
    u += shift_u
    v = x * (sin_a / scale)
    v += y * (cos_a / scale)
    v += shift_v
    iu = np.floor(u)
    iv = np.floor(v)
    fu = np.subtract(u, iu, out=u).astype(np.float32)
    fv = np.subtract(v, iv, out=v).astype(np.float32)
    del u, v
    u0, v0 = int(iu.min()), int(iv.min())
    nu = int(iu.max()) - u0 + 2
    nv = int(iv.max()) - v0 + 2
    lattice_v, lattice_u = np.meshgrid(
        np.arange(v0, v0 + nv, dtype=np.int64),
        np.arange(u0, u0 + nu, dtype=np.int64),
        indexing="ij",
    )
    lattice = _hash_unit(lattice_u, lattice_v, seed).ravel()
    iv -= v0
    iv *= nu
    iu -= u0
    iv += iu
    index = iv.astype(np.intp)
    del iu, iv
    a = lattice[index]
    b = lattice[index + 1]
    index += nu
    c = lattice[index]
    d = lattice[index + 1]
    su = fu * fu * fu * (fu * (fu * 6.0 - 15.0) + 10.0)
    sv = fv * fv * fv * (fv * (fv * 6.0 - 15.0) + 10.0)
    top = a + (b - a) * su
    bottom = c + (d - c) * su
    return top + (bottom - top) * sv


_COARSE = 4  # coarse sampling step (pixels) for smooth octaves
_SMOOTH_RATIO = 16.0  # an octave is "smooth" if its scale >= this many coarse steps


def _pixel_spacing(x: np.ndarray, y: np.ndarray) -> float:
    """Smallest distance between neighbouring pixel centres of a 2-D coordinate grid."""
    dx = float(np.hypot(x[0, 1] - x[0, 0], y[0, 1] - y[0, 0]))
    dy = float(np.hypot(x[1, 0] - x[0, 0], y[1, 0] - y[0, 0]))
    return min(dx, dy)


def _coarse_nodes(a: np.ndarray) -> np.ndarray:
    """Values at every ``_COARSE``-th row/column, extrapolated one node past the end."""
    h, w = a.shape
    nh, nw = -(-(h - 1) // _COARSE) + 1, -(-(w - 1) // _COARSE) + 1
    rows = np.arange(nh) * _COARSE
    cols = np.arange(nw) * _COARSE
    # The grids are smooth, so linear extrapolation of coordinates is exact enough.
    r_in = np.minimum(rows, h - 1)
    c_in = np.minimum(cols, w - 1)
    base = a[np.ix_(r_in, c_in)]
    dr = (a[h - 1] - a[h - 2]) if h > 1 else np.zeros(w)
    dc = (a[:, w - 1] - a[:, w - 2]) if w > 1 else np.zeros(h)
    base = base + (rows - r_in)[:, None] * dr[c_in][None, :]
    base = base + (cols - c_in)[None, :] * dc[r_in][:, None]
    return base


def _upsample(coarse: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear interpolation from ``_COARSE``-spaced nodes to the full grid."""
    k = _COARSE
    weights = (np.arange(k, dtype=np.float32) / k)[None, :, None]
    # Along columns: out[:, k*j + i] = lerp(c[:, j], c[:, j+1], i/k).
    left, right = coarse[:, :-1, None], coarse[:, 1:, None]
    cols = (left + (right - left) * weights.reshape(1, 1, k)).reshape(coarse.shape[0], -1)
    cols = np.concatenate([cols, coarse[:, -1:]], axis=1)[:, :w]
    top, bottom = cols[:-1, None, :], cols[1:, None, :]
    full = (top + (bottom - top) * weights).reshape(-1, cols.shape[1])
    full = np.concatenate([full, cols[-1:]], axis=0)[:h]
    return full


def fbm(
    x: np.ndarray,
    y: np.ndarray,
    scale: float,
    octaves: int,
    seed: int,
    label: str,
    persistence: float = 0.5,
) -> np.ndarray:
    """Fractal sum of ``octaves`` noise layers, largest ``scale`` first, normalised to ±1.

    On 2-D grids, octaves that are smooth at the grid's spacing (scale >= 64 pixels)
    are sampled every 4th pixel and interpolated bilinearly: the error is below ~0.5 %
    of the octave's amplitude, so grids of any resolution still agree, and it roughly
    halves the cost of the world's fields.
    """
    amplitudes = [persistence**o for o in range(octaves)]
    norm = np.float32(sum(amplitudes))
    scales = [scale / (2.0**o) for o in range(octaves)]
    seeds = [derive_seed(seed, "fbm", label, o) for o in range(octaves)]
    smooth: list[int] = []
    if np.ndim(x) == 2 and min(np.shape(x)) >= 2 * _COARSE:
        spacing = _pixel_spacing(x, y) * _COARSE
        smooth = [o for o in range(octaves) if scales[o] >= _SMOOTH_RATIO * spacing]
    total = np.zeros(np.shape(x), dtype=np.float32)
    if smooth:
        cx, cy = _coarse_nodes(x), _coarse_nodes(y)
        coarse = np.zeros(cx.shape, dtype=np.float32)
        for o in smooth:
            coarse += np.float32(amplitudes[o]) * value_noise(cx, cy, scales[o], seeds[o])
        total += _upsample(coarse, *np.shape(x))
    for o in range(octaves):
        if o not in smooth:
            total += np.float32(amplitudes[o]) * value_noise(x, y, scales[o], seeds[o])
    return total / norm
