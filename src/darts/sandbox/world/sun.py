"""Solar azimuth and elevation for a time and place (low-precision almanac, ~0.5°).

Used for the items' ``view:sun_azimuth`` / ``view:sun_elevation``, the granule
metadata and the terrain shading and cloud shadows of the synthetic scenes.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

_J2000 = datetime(2000, 1, 1, 12, 0, 0, tzinfo=UTC)


def sun_angles(when: datetime, lon: float, lat: float) -> tuple[float, float]:
    """(azimuth clockwise from north, elevation) in degrees."""
    d = (when - _J2000).total_seconds() / 86400.0
    g = math.radians((357.529 + 0.98560028 * d) % 360.0)
    q = (280.459 + 0.98564736 * d) % 360.0
    ecliptic_lon = math.radians(q + 1.915 * math.sin(g) + 0.020 * math.sin(2 * g))
    obliquity = math.radians(23.439 - 0.00000036 * d)
    right_ascension = math.atan2(
        math.cos(obliquity) * math.sin(ecliptic_lon), math.cos(ecliptic_lon)
    )
    declination = math.asin(math.sin(obliquity) * math.sin(ecliptic_lon))
    gmst_hours = (18.697374558 + 24.06570982441908 * d) % 24.0
    hour_angle = math.radians(gmst_hours * 15.0 + lon) - right_ascension
    phi = math.radians(lat)
    elevation = math.asin(
        math.sin(phi) * math.sin(declination)
        + math.cos(phi) * math.cos(declination) * math.cos(hour_angle)
    )
    azimuth = math.atan2(
        -math.sin(hour_angle),
        math.tan(declination) * math.cos(phi) - math.sin(phi) * math.cos(hour_angle),
    )
    return math.degrees(azimuth) % 360.0, math.degrees(elevation)
