"""Per-acquisition sky and snow: clouds, cirrus, cloud shadows, snow, aerosols, vapour.

Cloud fields live in EPSG:3413 like the ground and are seeded by the weather
``pattern``, so two tiles of one datatake (same pattern) see the same clouds where
they overlap. Coverage is steered by thresholding a fractal field at the quantile that
gives the requested fraction over the world's calibration box (the main window), so the
main scenes get about the cloud and snow cover the spec asks for; the items' numbers are
computed from the resulting SCL, never copied from the spec. Shadows are the cloud field displaced
towards the sun by cloud height / tan(sun elevation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from darts.sandbox.world.field import WorldField
from darts.sandbox.world.noise import fbm
from darts.sandbox.world.seeds import derive_seed
from darts.sandbox.world.spec import Weather
from darts.sandbox.world.terrain import land, smoothstep

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


def _threshold(reference: np.ndarray, fraction: float) -> float:
    """The field value exceeded by ``fraction`` of the calibration points."""
    return float(np.quantile(reference, 1.0 - min(max(fraction, 0.0), 1.0)))


def _cloud_field(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    return fbm(x, y, 5000.0, 5, seed, "cloud")


def _opacity(
    x: np.ndarray, y: np.ndarray, weather: Weather, seed: int, threshold: float
) -> np.ndarray:
    if weather.cloud <= 0.0:
        return np.zeros(np.shape(x), dtype=np.float32)
    if weather.cloud >= 1.0:
        return np.ones(np.shape(x), dtype=np.float32)
    # The soft edge sits mostly above the threshold, so the opaque (SCL cloud) share
    # is close to the requested fraction.
    return smoothstep(threshold - 0.04, threshold + 0.02, _cloud_field(x, y, seed)).astype(
        np.float32
    )


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


def _snow_field(x: np.ndarray, y: np.ndarray, height: np.ndarray, seed: int) -> np.ndarray:
    return fbm(x, y, 1500.0, 4, seed, "snow") + 0.004 * (height - 120.0)


def snow_cover(
    x: np.ndarray, y: np.ndarray, height: np.ndarray, weather: Weather, world: WorldField
) -> np.ndarray:
    """Fraction of the ground under snow: patchy, more of it on higher ground."""
    if weather.snow <= 0.0:
        return np.zeros(np.shape(x), dtype=np.float32)
    seed = derive_seed(world.seed, "weather", weather.pattern)
    rx, ry = world.calibration_points()
    reference = _snow_field(rx, ry, land(world.seed, rx, ry, detail=False).height, seed)
    t = _threshold(reference, weather.snow)
    return smoothstep(t - 0.05, t + 0.05, _snow_field(x, y, height, seed)).astype(np.float32)


def sky(
    x: np.ndarray,
    y: np.ndarray,
    height: np.ndarray,
    weather: Weather,
    world: WorldField,
    sun_azimuth: float,
    sun_elevation: float,
) -> Sky:
    seed = derive_seed(world.seed, "weather", weather.pattern)
    threshold = _threshold(_cloud_field(*world.calibration_points(), seed), weather.cloud)
    cloud = _opacity(x, y, weather, seed, threshold)
    texture = (1.0 + 0.25 * fbm(x, y, 800.0, 3, seed, "cloud-texture")).astype(np.float32)
    if weather.cloud > 0.0 and weather.cloud < 1.0:
        cx, cy = float(np.mean(x)), float(np.mean(y))
        sx, sy = sun_vector_3413(cx, cy, sun_azimuth)
        reach = _CLOUD_HEIGHT_M / math.tan(math.radians(max(sun_elevation, 5.0)))
        above = _opacity(x + sx * reach, y + sy * reach, weather, seed, threshold)
        shadow = np.clip(above - cloud, 0.0, 1.0).astype(np.float32)
    else:
        shadow = np.zeros_like(cloud)
    if weather.cirrus > 0.0:
        veil = np.clip(0.55 + fbm(x, y, 9000.0, 3, seed, "cirrus") * 1.5, 0.0, 1.0)
        cirrus = (weather.cirrus * veil).astype(np.float32)
    else:
        cirrus = np.zeros_like(cloud)
    snow = snow_cover(x, y, height, weather, world)
    haze = fbm(x, y, 20000.0, 2, seed, "aerosol")
    aot = (0.07 + 0.03 * haze).astype(np.float32)
    wvp = (1.1 + 0.3 * fbm(x, y, 20000.0, 2, seed, "vapour")).astype(np.float32)
    return Sky(cloud, texture, cirrus, shadow, snow, aot, wvp)
