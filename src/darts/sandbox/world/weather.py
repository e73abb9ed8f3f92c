"""Per-acquisition sky and snow: clouds, cirrus, cloud shadows, snow, aerosols, vapour.

Cloud fields live in EPSG:3413 like the ground and are seeded by the weather
``pattern``, so two tiles of one datatake (same pattern) see the same clouds where
they overlap. Coverage is steered by thresholding a fractal field at the quantile that
gives the requested fraction (approximately: the item's numbers are computed from the
resulting SCL, never copied from the spec). Shadows are the cloud field displaced
towards the sun by cloud height / tan(sun elevation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from darts.sandbox.world.noise import fbm
from darts.sandbox.world.seeds import derive_seed
from darts.sandbox.world.spec import Weather
from darts.sandbox.world.terrain import smoothstep

_CLOUD_SPREAD = 0.26  # standard deviation of the cloud fbm field (measured)
_CLOUD_HEIGHT_M = 1500.0


@dataclass(frozen=True)
class Sky:
    cloud: np.ndarray  # opacity 0..1
    texture: np.ndarray  # brightness multiplier of cloud tops
    cirrus: np.ndarray  # 0..1
    shadow: np.ndarray  # 0..1
    snow: np.ndarray  # 0..1 of the ground
    aot: np.ndarray  # aerosol optical thickness
    wvp: np.ndarray  # water vapour, cm


def _threshold(fraction: float) -> float:
    fraction = min(max(fraction, 1e-4), 1 - 1e-4)
    return _CLOUD_SPREAD * NormalDist().inv_cdf(1.0 - fraction)


def _opacity(x: np.ndarray, y: np.ndarray, weather: Weather, seed: int) -> np.ndarray:
    if weather.cloud <= 0.0:
        return np.zeros(np.shape(x), dtype=np.float32)
    if weather.cloud >= 1.0:
        return np.ones(np.shape(x), dtype=np.float32)
    field = fbm(x, y, 5000.0, 5, seed, "cloud")
    t = _threshold(weather.cloud)
    return smoothstep(t - 0.03, t + 0.08, field).astype(np.float32)


def sun_vector_3413(x: float, y: float, azimuth_deg: float) -> tuple[float, float]:
    """Horizontal unit vector towards the sun, in EPSG:3413 axes, at (x, y)."""
    r = math.hypot(x, y)
    north = (-x / r, -y / r)  # towards the pole
    east = (north[1], -north[0])
    az = math.radians(azimuth_deg)
    return (
        math.sin(az) * east[0] + math.cos(az) * north[0],
        math.sin(az) * east[1] + math.cos(az) * north[1],
    )


def sky(
    x: np.ndarray,
    y: np.ndarray,
    height: np.ndarray,
    weather: Weather,
    world_seed: int,
    sun_azimuth: float,
    sun_elevation: float,
) -> Sky:
    seed = derive_seed(world_seed, "weather", weather.pattern)
    cloud = _opacity(x, y, weather, seed)
    texture = (1.0 + 0.25 * fbm(x, y, 800.0, 3, seed, "cloud-texture")).astype(np.float32)
    if weather.cloud > 0.0 and weather.cloud < 1.0:
        cx, cy = float(np.mean(x)), float(np.mean(y))
        sx, sy = sun_vector_3413(cx, cy, sun_azimuth)
        reach = _CLOUD_HEIGHT_M / math.tan(math.radians(max(sun_elevation, 5.0)))
        above = _opacity(x + sx * reach, y + sy * reach, weather, seed)
        shadow = np.clip(above - cloud, 0.0, 1.0).astype(np.float32)
    else:
        shadow = np.zeros_like(cloud)
    if weather.cirrus > 0.0:
        veil = np.clip(0.55 + fbm(x, y, 9000.0, 3, seed, "cirrus") * 1.5, 0.0, 1.0)
        cirrus = (weather.cirrus * veil).astype(np.float32)
    else:
        cirrus = np.zeros_like(cloud)
    if weather.snow > 0.0:
        snow_field = fbm(x, y, 1500.0, 4, seed, "snow") + 0.004 * (height - 120.0)
        t = _threshold(weather.snow)
        snow = smoothstep(t - 0.05, t + 0.05, snow_field).astype(np.float32)
    else:
        snow = np.zeros_like(cloud)
    haze = fbm(x, y, 20000.0, 2, seed, "aerosol")
    aot = (0.07 + 0.03 * haze).astype(np.float32)
    wvp = (1.1 + 0.3 * fbm(x, y, 20000.0, 2, seed, "vapour")).astype(np.float32)
    return Sky(cloud, texture, cirrus, shadow, snow, aot, wvp)
