"""Render one Sentinel-2 L2A acquisition of a tile window into per-asset arrays.

The 10 m reflectance of all twelve bands is computed from the ground (land cover
fractions, greenness, terrain shading) and the sky (clouds, shadows, cirrus, snow),
plus sensor noise; 20 m and 60 m products are exact 2×2 / 6×6 block means, the way the
window's aligned grids nest. SCL is classified at 20 m from the same fractions
averaged to 20 m, and SCL_60m takes the centre 20 m pixel of each 60 m pixel. Rows are
processed in blocks (multiples of 6) so a full 10980² tile stays within a few GB.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from darts.sandbox.world import scl as scl_codes
from darts.sandbox.world import spectra
from darts.sandbox.world.coords import GridCoords, RasterGrid, transformer, world_coords
from darts.sandbox.world.field import Ground, WorldField
from darts.sandbox.world.seeds import rng
from darts.sandbox.world.spec import Acquisition, TileWindow
from darts.sandbox.world.sun import sun_angles
from darts.sandbox.world.weather import sky

BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12")
BANDS_60M = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B09", "B11", "B12")
_NOISE = 0.002  # sensor noise, reflectance units, per 10 m pixel
_SWATH_TILT = math.radians(12.0)  # the swath edge runs ~12° off grid north

GroundSource = Callable[[TileWindow, int, int], tuple[GridCoords, Ground]]


def window_centre_lonlat(window: TileWindow) -> tuple[float, float]:
    xmin, ymin, xmax, ymax = window.grid(10).bounds
    lon, lat = transformer(window.epsg, 4326).transform((xmin + xmax) / 2, (ymin + ymax) / 2)
    return float(lon), float(lat)


def render_time(acq: Acquisition) -> datetime:
    """Time whose sun lights the pixels; a shared ground date gets one fixed sun."""
    if acq.ground_date is None:
        return acq.sensing
    d = acq.ground_date
    return datetime(d.year, d.month, d.day, 20, 30, tzinfo=UTC)


def render_key(acq: Acquisition) -> str:
    """Equal keys render equal pixels (used to encode repeated scenes once)."""
    w = acq.weather
    stamp = render_time(acq).isoformat()
    return f"{acq.window}|{stamp}|{w}"


def swath_valid(grid: RasterGrid, window: TileWindow, edge: bool) -> np.ndarray:
    """Pixels whose centre lies inside the swath (all of them unless ``edge``)."""
    if not edge:
        return np.ones(grid.shape, dtype=bool)
    xmin, ymin, xmax, ymax = window.grid(10).bounds
    x_edge = xmin + 0.7 * (xmax - xmin)
    y_mid = (ymin + ymax) / 2
    t = grid.transform
    x = t.c + (np.arange(grid.width) + 0.5) * t.a
    y = t.f + (np.arange(grid.height) + 0.5) * t.e
    return ((x[None, :] - x_edge) - math.tan(_SWATH_TILT) * (y[:, None] - y_mid)) <= 0.0


def swath_line(window: TileWindow) -> tuple[tuple[float, float], tuple[float, float]]:
    """Two points (map coordinates) on the swath edge line, for footprints."""
    xmin, ymin, xmax, ymax = window.grid(10).bounds
    x_edge = xmin + 0.7 * (xmax - xmin)
    y_mid = (ymin + ymax) / 2
    dy = (ymax - ymin) * 2
    return (
        (x_edge - math.tan(_SWATH_TILT) * dy, y_mid - dy),
        (x_edge + math.tan(_SWATH_TILT) * dy, y_mid + dy),
    )


def shading(height: np.ndarray, res: float, azimuth: float, elevation: float) -> np.ndarray:
    """Illumination factor (1 on flat ground) from a height block with a 1-row halo."""
    dzdy_rows, dzdx = np.gradient(height, res)
    dzdn = -dzdy_rows  # rows run south
    az, el = math.radians(azimuth), math.radians(elevation)
    sx, sy, sz = math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)
    norm = np.sqrt(dzdx * dzdx + dzdn * dzdn + 1.0)
    cos_i = (-dzdx * sx - dzdn * sy + sz) / norm
    return np.clip(0.75 + 0.25 * cos_i / sz, 0.5, 1.4)[1:-1].astype(np.float32)


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Mean over f×f pixel blocks (strided sums: much faster than reshape + mean)."""
    if f == 6:
        return _block_mean(_block_mean(a, 2), 3)
    total = np.zeros((*a.shape[:-2], a.shape[-2] // f, a.shape[-1] // f), dtype=np.float32)
    for i in range(f):
        for j in range(f):
            total += a[..., i::f, j::f]
    return total * np.float32(1.0 / (f * f))


def _tci(red: np.ndarray, green: np.ndarray, blue: np.ndarray, valid: np.ndarray) -> np.ndarray:
    rgb = np.stack([red, green, blue]) * (2.5 * 255.0)
    tci = np.clip(np.rint(rgb), 1, 255).astype(np.uint8)
    tci[:, ~valid] = 0
    return tci


def surface_reflectance(
    water: np.ndarray,
    bare: np.ndarray,
    greenness: np.ndarray,
    season_vigor: float,
    shade: np.ndarray,
    snow: np.ndarray,
) -> np.ndarray:
    """Clear-sky surface reflectance (12 bands) from land-cover fractions.

    Written with in-place operations on one scratch array: the 12-band temporaries
    are ~70 MB each for a 1200² window, and allocating them dominated the cost.
    """
    green_mix = np.clip(0.5 + 0.5 * greenness, 0.0, 1.0) * np.float32(season_vigor)
    vegetated = np.clip(1.0 - water - bare, 0.0, 1.0)
    surface = np.multiply(spectra.TUNDRA_GREEN - spectra.TUNDRA_SPARSE, green_mix)
    surface += spectra.TUNDRA_SPARSE
    surface *= vegetated
    scratch = np.multiply(spectra.WATER, water)
    surface += scratch
    np.multiply(spectra.SLUMP_MUD, bare, out=scratch)
    surface += scratch
    surface *= water + (1.0 - water) * shade
    if snow.any():
        np.subtract(spectra.SNOW, surface, out=scratch)
        scratch *= snow
        surface += scratch
    return surface


def vigor(day_of_year: int) -> float:
    """Seasonal greenness: peaks late July, low at snow-melt and in late September."""
    return 0.35 + 0.65 * math.exp(-(((day_of_year - 205) / 40.0) ** 2))


@dataclass(frozen=True)
class GroundBlock:
    x: np.ndarray
    y: np.ndarray
    ground: Ground  # rows [r0, r1) of the window
    padded_height: np.ndarray  # heights of rows [r0 - 1, r1 + 1) (edges repeated)


def ground_block(source: GroundSource, window: TileWindow, r0: int, r1: int) -> GroundBlock:
    """Rows [r0, r1) of a window's ground, plus the height halo that shading needs."""
    halo0, halo1 = max(r0 - 1, 0), min(r1 + 1, window.height)
    coords, ground = source(window, halo0, halo1)
    inner = slice(r0 - halo0, r0 - halo0 + (r1 - r0))
    height = ground.height
    if halo0 == r0:
        height = np.concatenate([height[:1], height])
    if halo1 == r1:
        height = np.concatenate([height, height[-1:]])
    rows = Ground(
        ground.height[inner],
        ground.water[inner],
        ground.bare[inner],
        ground.greenness[inner],
        ground.slump[inner],
    )
    return GroundBlock(coords.x[inner], coords.y[inner], rows, height)


@dataclass
class SceneArrays:
    rasters: dict[str, np.ndarray]  # asset key (e.g. "B02_10m") -> array
    scl_percent: dict[int, float]


def _allocate(window: TileWindow) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for res, bands in ((10, BANDS_10M), (20, BANDS_20M), (60, BANDS_60M)):
        h, w = window.grid(res).shape
        for band in bands:
            out[f"{band}_{res}m"] = np.zeros((h, w), dtype=np.uint16)
        out[f"TCI_{res}m"] = np.zeros((3, h, w), dtype=np.uint8)
        out[f"AOT_{res}m"] = np.zeros((h, w), dtype=np.uint16)
        out[f"WVP_{res}m"] = np.zeros((h, w), dtype=np.uint16)
        if res != 10:
            out[f"SCL_{res}m"] = np.zeros((h, w), dtype=np.uint8)
    return out


def render(
    world: WorldField,
    acq: Acquisition,
    ground_source: GroundSource,
    block_rows: int = 366,
) -> SceneArrays:
    window = acq.window
    if window.height <= 2400:
        block_rows = window.height  # small windows: one block, one ground sample
    out = _allocate(window)
    when = render_time(acq)
    lon, lat = window_centre_lonlat(window)
    azimuth, elevation = sun_angles(when, lon, lat)
    season = vigor(acq.season_date.timetuple().tm_yday)
    grids = {res: window.grid(res) for res in (10, 20, 60)}
    valid = {res: swath_valid(grids[res], window, acq.weather.swath_edge) for res in grids}
    key = render_key(acq)

    for block, r0 in enumerate(range(0, window.height, block_rows)):
        r1 = min(r0 + block_rows, window.height)
        block_data = ground_block(ground_source, window, r0, r1)
        x, y, ground = block_data.x, block_data.y, block_data.ground
        shade = shading(block_data.padded_height, 10.0, azimuth, elevation)
        water, bare = ground.water, ground.bare
        sky_state = sky(x, y, ground.height, acq.weather, world, azimuth, elevation)

        surface = surface_reflectance(water, bare, ground.greenness, season, shade, sky_state.snow)
        cloud = sky_state.cloud
        # In place, one 12-band scratch array (see surface_reflectance).
        refl = surface
        refl *= (1.0 - 0.7 * sky_state.shadow) * (1.0 - cloud)
        scratch = np.multiply(spectra.CLOUD, cloud * sky_state.texture)
        refl += scratch
        if sky_state.cirrus.any():
            np.multiply(spectra.CIRRUS, sky_state.cirrus, out=scratch)
            refl += scratch
        rng(world.seed, "sensor", key, block).standard_normal(dtype=np.float32, out=scratch)
        scratch *= np.float32(_NOISE)
        refl += scratch
        del scratch

        fractions = np.stack(
            [cloud, sky_state.cirrus, sky_state.shadow, sky_state.snow, water, bare]
        )
        atmos = np.stack([sky_state.aot * 1000.0, sky_state.wvp * 1000.0])
        for res, bands in ((10, BANDS_10M), (20, BANDS_20M), (60, BANDS_60M)):
            f = res // 10
            rows = slice(r0 // f, r1 // f)
            v = valid[res][rows]
            refl_r = refl if f == 1 else _block_mean(refl, f)
            for band in bands:
                dn = spectra.to_dn(refl_r[spectra.BAND_INDEX[band]])
                dn[~v] = 0
                out[f"{band}_{res}m"][rows] = dn
            idx = spectra.BAND_INDEX
            out[f"TCI_{res}m"][:, rows] = _tci(
                refl_r[idx["B04"]], refl_r[idx["B03"]], refl_r[idx["B02"]], v
            )
            atmos_r = atmos if f == 1 else _block_mean(atmos, f)
            for i, name in enumerate(("AOT", "WVP")):
                values = np.clip(np.rint(atmos_r[i]), 1, 65535).astype(np.uint16)
                values[~v] = 0
                out[f"{name}_{res}m"][rows] = values
            if res == 20:
                fr = _block_mean(fractions, 2)
                out["SCL_20m"][rows] = scl_codes.classify(v, *fr)
    out["SCL_60m"][:] = out["SCL_20m"][1::3, 1::3]
    out["SCL_60m"][~valid[60]] = 0
    return SceneArrays(out, scl_codes.percentages(out["SCL_20m"]))


def whole_window_ground(world: WorldField) -> GroundSource:
    """A ground source that samples each window once and serves row ranges from it."""
    cache: dict[TileWindow, tuple[GridCoords, Ground]] = {}

    def source(window: TileWindow, r0: int, r1: int) -> tuple[GridCoords, Ground]:
        if window not in cache:
            coords = world_coords(window.grid(10))
            cache[window] = (coords, world.sample(coords))
        coords, ground = cache[window]
        return _rows(coords, ground, r0, r1)

    return source


def blockwise_ground(world: WorldField) -> GroundSource:
    """A ground source that samples only the rows asked for (large windows)."""

    def source(window: TileWindow, r0: int, r1: int) -> tuple[GridCoords, Ground]:
        coords = world_coords(window.grid(10).rows(r0, r1))
        return coords, world.sample(coords)

    return source


def _rows(coords: GridCoords, ground: Ground, r0: int, r1: int) -> tuple[GridCoords, Ground]:
    sl = slice(r0, r1)
    sub = GridCoords(
        coords.x[sl],
        coords.y[sl],
        coords.coarse_x,
        coords.coarse_y,
        coords.coarse_rows,
        coords.coarse_cols,
    )
    return sub, Ground(
        ground.height[sl], ground.water[sl], ground.bare[sl], ground.greenness[sl], ground.slump[sl]
    )
