"""Terrain features of a DEM on a projected, north-up grid: numpy in, numpy out.

Every function takes heights in metres (NaN = no data) and the pixel edge in metres,
and returns float32. A NaN height makes every output that uses it NaN. Pixels whose
neighbourhood leaves the array (the outermost row/column for the 3×3 stencils) are NaN
too: the caller supplies a halo of `TERRAIN_HALO_PX` pixels around the area it wants
(see ``darts.processing.features``) and crops it off afterwards. Work is done in
float64 on the array given, so call these per window (a patch plus its halo), not on
a whole 10980² scene.

Stencils use the 3×3 neighbourhood ``a b c / d e f / g h i`` with rows running south
(north-up grid), so ``dz/d_east = ((c + 2f + i) − (a + 2d + g)) / 8·px`` and
``dz/d_north = ((a + 2b + c) − (g + 2h + i)) / 8·px`` (Horn 1981).

Conventions
-----------
- slope: Horn gradient, degrees 0..90.
- aspect: the direction the slope *faces* (downhill), degrees clockwise from north,
  0..360. Flat pixels (both gradients exactly 0) have no direction and are **NaN**;
  normalised model input for NaN is 0, which is also what the reference fed its models
  for flat ground (it wrote −1 there, which normalisation clips to 0).
- hillshade: cosine of the angle between the surface normal and the sun,
  ``(sin(elev) − cos(elev)·(gE·sin az + gN·cos az)) / sqrt(1 + gE² + gN²)`` clipped to
  0..1 (self-shadowed slopes are 0); flat ground gives sin(elevation).
- curvature: Zevenbergen–Thorne, with the sign and scaling of the reference
  (xarray-spatial / ArcGIS): ``−2·(D + E)·100`` with ``D = ((d + f)/2 − e)/px²`` and
  ``E = ((b + h)/2 − e)/px²``. Positive = convex (hilltop), negative = concave
  (hollow); the paraboloid ``z = k(x² + y²)`` gives ``−400·k`` everywhere.
- relative_elevation (TPI): height minus the mean of the *valid* heights within a
  disk (``inner ≤ distance ≤ outer``, metres; the centre counts when inner is 0).

North for aspect and hillshade
------------------------------
Both are measured on the grid, then expressed against a chosen north through
``north_bearing_deg``: the bearing, clockwise from grid north (+y), of that north at the
scene. ``aspect = (grid aspect − north_bearing) mod 360``; the sun's azimuth becomes
``azimuth + north_bearing`` on the grid. `north_bearing_for` gives the bearing for a
`TerrainConvention`:

- ``"true-north"``: true north of the scene CRS at the scene centre (for UTM a few
  degrees at most), so aspect and sun azimuth are geographic.
- ``"reference"``: true north *of EPSG:3413* at the scene centre, ≈ −(λ + 45°) for
  longitude λ. This reproduces the reference implementation, which applied the
  grid-north correction of EPSG:3413 (``true = grid − θ₃₄₁₃``) to aspect computed on
  the UTM grid; models trained with DARTS learned that rotation. Relative to true north
  both aspect and the sun's azimuth are rotated by ``θ_scene − θ₃₄₁₃`` ≈ λ + 45°,
  e.g. about −75° at 120° W and −105° at 150° W (the "~90°" of processing.md).
  The sign is our reading of processing.md (EPSG:3413's correction applied as if the
  UTM grid were EPSG:3413's), not checked against the reference code; only this
  rotation is reproduced, the formulas are the ones above.
"""

from __future__ import annotations

import math
from enum import StrEnum
from functools import lru_cache

import numpy as np
from pyproj import CRS, Transformer
from scipy.signal import fftconvolve

__all__ = [
    "TERRAIN_HALO_PX",
    "TerrainConvention",
    "aspect",
    "curvature",
    "hillshade",
    "north_bearing_for",
    "preprocessing_version",
    "relative_elevation",
    "slope",
    "terrain_convention",
    "true_north_bearing",
]


class TerrainConvention(StrEnum):
    REFERENCE = "reference"
    TRUE_NORTH = "true-north"


# Recorded in every run's metadata: which north the aspect/hillshade inputs used.
PREPROCESSING_VERSIONS = {
    TerrainConvention.REFERENCE: "darts-reference-v1",
    TerrainConvention.TRUE_NORTH: "true-north-v1",
}
REFERENCE_CRS = "EPSG:3413"  # ArcticDEM's polar stereographic grid


def terrain_convention(value: str | TerrainConvention) -> TerrainConvention:
    try:
        return TerrainConvention(value)
    except ValueError:
        choices = ", ".join(repr(c.value) for c in TerrainConvention)
        raise ValueError(f"unknown terrain convention {value!r}; choose one of {choices}") from None


def preprocessing_version(convention: str | TerrainConvention) -> str:
    return PREPROCESSING_VERSIONS[terrain_convention(convention)]


def TERRAIN_HALO_PX(pixel_m: float, outer_radius_m: float) -> int:
    """Pixels of context needed on every side: the TPI disk's reach, and at least the
    one pixel the 3×3 stencils need."""
    return max(1, _disk_reach(pixel_m, outer_radius_m))


# -- relative elevation ---------------------------------------------------------------


def tpi_kernel(pixel_m: float, outer_radius_m: float, inner_radius_m: float = 0.0) -> np.ndarray:
    """0/1 float64 kernel of the offsets whose distance d (metres) has inner ≤ d ≤ outer."""
    if outer_radius_m <= 0 or inner_radius_m < 0 or inner_radius_m > outer_radius_m:
        raise ValueError(
            f"TPI radii must satisfy 0 ≤ inner ≤ outer and outer > 0, got inner "
            f"{inner_radius_m:g} m, outer {outer_radius_m:g} m"
        )
    reach = _disk_reach(pixel_m, outer_radius_m)
    offsets = np.arange(-reach, reach + 1, dtype=np.float64) * pixel_m
    distance = np.hypot(offsets[:, None], offsets[None, :])
    # A relative tolerance keeps pixels exactly on the circle (e.g. 100 m at 10 m) in.
    tol = 1e-9 * outer_radius_m
    kernel = (distance <= outer_radius_m + tol) & (distance >= inner_radius_m - tol)
    if not kernel.any():
        raise ValueError(
            f"the TPI annulus {inner_radius_m:g}–{outer_radius_m:g} m holds no pixel "
            f"centre at {pixel_m:g} m pixels"
        )
    return kernel.astype(np.float64)


def relative_elevation(
    dem: np.ndarray, pixel_m: float, outer_radius_m: float = 100.0, inner_radius_m: float = 0.0
) -> np.ndarray:
    """Topographic position index: height − mean of the valid heights in the disk or
    annulus around each pixel. NaN where the height is NaN or no neighbour is valid."""
    heights = np.asarray(dem, dtype=np.float64)
    kernel = tpi_kernel(pixel_m, outer_radius_m, inner_radius_m)
    valid = np.isfinite(heights)
    out = np.full(heights.shape, np.nan, dtype=np.float32)
    if not valid.any():
        return out
    # Heights relative to the window's mean: the FFT sums then carry small numbers, so
    # rounding noise stays far below a millimetre even at 3000 m.
    base = float(heights[valid].mean())
    centred = np.where(valid, heights - base, 0.0)
    sums = fftconvolve(centred, kernel, mode="same")
    if valid.all():
        # The usual window (no gap): the counts depend on the shape alone.
        counts = _full_counts(heights.shape, pixel_m, outer_radius_m, inner_radius_m)
        if counts.all():
            out[...] = centred - sums / counts
            return out
    counts = np.rint(fftconvolve(valid.astype(np.float64), kernel, mode="same"))
    ok = valid & (counts > 0)
    out[ok] = centred[ok] - sums[ok] / counts[ok]
    return out


@lru_cache(maxsize=4)
def _full_counts(
    shape: tuple[int, int], pixel_m: float, outer_radius_m: float, inner_radius_m: float
) -> np.ndarray:
    """Kernel pixels inside an all-valid array of ``shape``, at each pixel (read-only,
    cached: the patches of a scene have a few shapes). Exact: with ``R[r, i]`` = row
    ``r + dy_i`` is inside and ``C[i, c]`` = the number of the kernel's columns in row
    ``dy_i`` that land inside at column ``c``, the counts are the small-integer
    product ``R @ C``."""
    kernel = tpi_kernel(pixel_m, outer_radius_m, inner_radius_m) > 0
    reach = kernel.shape[0] // 2
    rows, cols = shape
    offsets = np.arange(-reach, reach + 1)
    inside_r = (np.arange(rows)[:, None] + offsets[None, :] >= 0) & (
        np.arange(rows)[:, None] + offsets[None, :] < rows
    )
    shifted = np.arange(cols)[None, :] + offsets[:, None]  # (dx, col) → column read
    inside_c = ((shifted >= 0) & (shifted < cols)).astype(np.float64)
    per_row = kernel.astype(np.float64) @ inside_c  # (dy, col): kernel columns inside
    counts = inside_r.astype(np.float64) @ per_row
    counts.flags.writeable = False
    return counts


# -- 3×3 stencils ----------------------------------------------------------------------


def horn_gradient(dem: np.ndarray, pixel_m: float) -> tuple[np.ndarray, np.ndarray]:
    """(dz/d_east, dz/d_north) as float64; NaN on the outermost ring and wherever the
    3×3 neighbourhood (centre included) holds a NaN."""
    z = np.asarray(dem, dtype=np.float64)
    east = np.full(z.shape, np.nan)
    north = np.full(z.shape, np.nan)
    if z.shape[0] < 3 or z.shape[1] < 3:
        return east, north
    a, b, c = z[:-2, :-2], z[:-2, 1:-1], z[:-2, 2:]
    d, f = z[1:-1, :-2], z[1:-1, 2:]
    g, h, i = z[2:, :-2], z[2:, 1:-1], z[2:, 2:]
    # ((c + 2f + i) − (a + 2d + g)) / 8px and ((a + 2b + c) − (g + 2h + i)) / 8px,
    # evaluated in place in that order (the same values as the plain expressions).
    for out, (p, q, r), (s, t, u) in (
        (east[1:-1, 1:-1], (c, f, i), (a, d, g)),
        (north[1:-1, 1:-1], (a, b, c), (g, h, i)),
    ):
        other = np.multiply(t, 2)
        other += s
        other += u
        np.multiply(q, 2, out=out)
        out += p
        out += r
        out -= other
        out /= 8 * pixel_m
    # Horn's stencil skips the centre, but a pixel without a height has no terrain.
    missing = np.isnan(z)
    east[missing] = np.nan
    north[missing] = np.nan
    return east, north


Gradient = tuple[np.ndarray, np.ndarray]
"""What `horn_gradient` returns; slope, aspect and hillshade of one window can share it."""


def _gradient(dem: np.ndarray | None, pixel_m: float, gradient: Gradient | None) -> Gradient:
    if gradient is not None:
        return gradient
    if dem is None:
        raise ValueError("give the DEM or its gradient")
    return horn_gradient(dem, pixel_m)


def slope(
    dem: np.ndarray | None, pixel_m: float, *, gradient: Gradient | None = None
) -> np.ndarray:
    """Degrees from horizontal, Horn 3×3. ``gradient``: `horn_gradient(dem, pixel_m)`,
    when the caller already has it."""
    east, north = _gradient(dem, pixel_m, gradient)
    steepness = np.hypot(east, north)
    np.arctan(steepness, out=steepness)
    np.degrees(steepness, out=steepness)
    return steepness.astype(np.float32)


def aspect(
    dem: np.ndarray | None,
    pixel_m: float,
    *,
    north_bearing_deg: float = 0.0,
    gradient: Gradient | None = None,
) -> np.ndarray:
    """Direction the slope faces, degrees clockwise from north (0..360); NaN when flat.
    ``north_bearing_deg``: see the module docstring (0 = grid north)."""
    east, north = _gradient(dem, pixel_m, gradient)
    with np.errstate(invalid="ignore"):
        flat = (east == 0) & (north == 0)
    # Downhill is minus the gradient; atan2(east, north) is a bearing from north.
    result = np.negative(east)
    np.arctan2(result, np.negative(north), out=result)
    np.degrees(result, out=result)
    result -= north_bearing_deg
    np.mod(result, 360.0, out=result)
    result[flat] = np.nan
    # mod can round a tiny negative up to exactly 360.0; that direction is 0.
    result[result >= 360.0] = 0.0
    return result.astype(np.float32)


def hillshade(
    dem: np.ndarray | None,
    pixel_m: float,
    azimuth_deg: float,
    elevation_deg: float,
    *,
    north_bearing_deg: float = 0.0,
    gradient: Gradient | None = None,
) -> np.ndarray:
    """Illumination 0..1 by a sun at ``azimuth_deg`` (clockwise from north) and
    ``elevation_deg`` above the horizon; flat ground gives sin(elevation)."""
    east, north = _gradient(dem, pixel_m, gradient)
    azimuth = math.radians(azimuth_deg + north_bearing_deg)  # the sun's bearing on the grid
    elevation = math.radians(elevation_deg)
    # (sin(e) − cos(e)·(east·sin(a) + north·cos(a))) / sqrt(1 + east² + north²),
    # evaluated in place in that order (the same values as the plain expression).
    shade = east * math.sin(azimuth)
    part = north * math.cos(azimuth)
    shade += part
    shade *= math.cos(elevation)
    np.subtract(math.sin(elevation), shade, out=shade)
    length = np.multiply(east, east)
    length += 1.0
    np.multiply(north, north, out=part)
    length += part
    np.sqrt(length, out=length)
    shade /= length
    np.clip(shade, 0.0, 1.0, out=shade)
    return shade.astype(np.float32)


def curvature(dem: np.ndarray, pixel_m: float) -> np.ndarray:
    """Zevenbergen–Thorne curvature ×100/cell² (sign and scale: module docstring)."""
    z = np.asarray(dem, dtype=np.float64)
    out = np.full(z.shape, np.nan, dtype=np.float32)
    if z.shape[0] < 3 or z.shape[1] < 3:
        return out
    centre = z[1:-1, 1:-1]
    along_x = (z[1:-1, :-2] + z[1:-1, 2:]) / 2 - centre
    along_y = (z[:-2, 1:-1] + z[2:, 1:-1]) / 2 - centre
    out[1:-1, 1:-1] = -2.0 * (along_x + along_y) * 100.0 / (pixel_m * pixel_m)
    return out


# -- which north -------------------------------------------------------------------------


def true_north_bearing(crs: str, x: float, y: float) -> float:
    """Bearing of true north on the grid of ``crs`` at (x, y), degrees clockwise from
    the grid's +y axis (the negative of the usual grid convergence)."""
    return _true_north_bearing(CRS.from_user_input(crs).to_wkt(), float(x), float(y))


def north_bearing_for(
    convention: str | TerrainConvention, scene_crs: str, x: float, y: float
) -> float:
    """The ``north_bearing_deg`` for aspect/hillshade on a scene grid in ``scene_crs``,
    evaluated at (x, y), normally the scene centre (module docstring)."""
    chosen = terrain_convention(convention)
    if chosen is TerrainConvention.TRUE_NORTH:
        return true_north_bearing(scene_crs, x, y)
    lon, lat = _to_lonlat(CRS.from_user_input(scene_crs).to_wkt(), float(x), float(y))
    return _bearing_at_lonlat(CRS.from_user_input(REFERENCE_CRS).to_wkt(), lon, lat)


@lru_cache(maxsize=64)
def _true_north_bearing(crs_wkt: str, x: float, y: float) -> float:
    lon, lat = _to_lonlat(crs_wkt, x, y)
    return _bearing_at_lonlat(crs_wkt, lon, lat)


def _to_lonlat(crs_wkt: str, x: float, y: float) -> tuple[float, float]:
    to_geo = Transformer.from_crs(CRS.from_wkt(crs_wkt), "EPSG:4326", always_xy=True)
    lon, lat = to_geo.transform(x, y)
    return float(lon), float(lat)


@lru_cache(maxsize=64)
def _bearing_at_lonlat(crs_wkt: str, lon: float, lat: float) -> float:
    # The grid direction of a short step along the meridian (≈ 1 m), centred on the point
    # but kept on this side of the pole.
    step = 1e-5
    south, north = max(lat - step, -90.0), min(lat + step, 90.0)
    to_grid = Transformer.from_crs("EPSG:4326", CRS.from_wkt(crs_wkt), always_xy=True)
    x0, y0 = to_grid.transform(lon, south)
    x1, y1 = to_grid.transform(lon, north)
    bearing = math.degrees(math.atan2(x1 - x0, y1 - y0))
    return (bearing + 180.0) % 360.0 - 180.0


def _disk_reach(pixel_m: float, radius_m: float) -> int:
    if pixel_m <= 0:
        raise ValueError(f"pixel size must be positive, got {pixel_m:g} m")
    # Pixel centres at exactly the radius belong to the disk (d ≤ r).
    return math.floor(radius_m / pixel_m + 1e-9)
