"""Scene classification (SCL) from the same fractions that made the optical pixels,
and the per-class percentages the items carry.

Percentages follow the L2A convention: ``nodata`` is the share of all pixels of the
SCL_20m raster, every other class is a share of the valid (non-zero) pixels, rounded to
6 decimals; ``eo:cloud_cover`` = medium + high probability clouds + thin cirrus and
``eo:snow_cover`` = snow, both rounded to 2 decimals.
"""

from __future__ import annotations

import numpy as np

NO_DATA, SATURATED, DARK, SHADOW, VEGETATION, NOT_VEGETATED, WATER = 0, 1, 2, 3, 4, 5, 6
UNCLASSIFIED, CLOUD_MEDIUM, CLOUD_HIGH, CIRRUS, SNOW = 7, 8, 9, 10, 11

# (value, name in classification:classes, key in properties.statistics or None)
CLASSES = (
    (0, "no_data", "nodata"),
    (1, "saturated_or_defective", "saturated_defective"),
    (2, "dark_area_pixels", "dark_area"),
    (3, "cloud_shadows", "cloud_shadow"),
    (4, "vegetation", "vegetation"),
    (5, "not_vegetated", "not_vegetated"),
    (6, "water", "water"),
    (7, "unclassified", "unclassified"),
    (8, "cloud_medium_probability", "medium_proba_clouds"),
    (9, "cloud_high_probability", "high_proba_clouds"),
    (10, "thin_cirrus", "thin_cirrus"),
    (11, "snow", None),  # the recorded items keep snow out of `statistics`
)


def classify(
    valid: np.ndarray,
    cloud: np.ndarray,
    cirrus: np.ndarray,
    shadow: np.ndarray,
    snow: np.ndarray,
    water: np.ndarray,
    bare: np.ndarray,
) -> np.ndarray:
    """SCL codes; later rules win, so the order below is the priority (lowest first)."""
    scl = np.full(valid.shape, VEGETATION, dtype=np.uint8)
    scl[bare >= 0.5] = NOT_VEGETATED
    scl[water >= 0.5] = WATER
    scl[snow >= 0.5] = SNOW
    scl[shadow >= 0.3] = SHADOW
    scl[cirrus >= 0.25] = CIRRUS
    scl[cloud >= 0.3] = CLOUD_MEDIUM
    scl[cloud >= 0.6] = CLOUD_HIGH
    scl[~valid] = NO_DATA
    return scl


def percentages(scl: np.ndarray) -> dict[int, float]:
    """Class value -> percentage (nodata of all pixels, the rest of valid pixels)."""
    counts = np.bincount(scl.ravel(), minlength=12)
    total = int(counts.sum())
    valid = total - int(counts[0])
    result = {0: round(100.0 * int(counts[0]) / total, 6) if total else 0.0}
    for value in range(1, 12):
        result[value] = round(100.0 * int(counts[value]) / valid, 6) if valid else 0.0
    return result


def statistics(percent: dict[int, float]) -> dict[str, float]:
    return {key: percent[value] for value, _, key in CLASSES if key is not None}


def classification_classes(percent: dict[int, float]) -> list[dict[str, object]]:
    classes: list[dict[str, object]] = []
    for value, name, _ in CLASSES:
        entry: dict[str, object] = {"percentage": percent[value], "name": name, "value": value}
        if value == 0:
            entry["nodata"] = True
        classes.append(entry)
    return classes


def cloud_cover(percent: dict[int, float]) -> float:
    return round(percent[CLOUD_MEDIUM] + percent[CLOUD_HIGH] + percent[CIRRUS], 2)


def snow_cover(percent: dict[int, float]) -> float:
    return round(percent[SNOW], 2)
