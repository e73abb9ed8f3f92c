"""Band names for CDSE Sentinel-2 L2A scenes: what users type → which asset to fetch.

CDSE items have one asset per band *and resolution* (``B02_10m``, ``B02_20m``,
``B02_60m``, ``SCL_20m`` …). Users say ``B02``, ``b2``, ``blue``, ``B02_10m`` or
``all``; each name resolves to one asset key, by default the band's finest **native**
resolution (the one whose asset has the role ``sampling:original``): B02/B03/B04/B08 at
10 m, B05/B06/B07/B8A/B11/B12/SCL at 20 m, B01/B09 at 60 m. ``B01_20m`` exists in the
items but is ESA's own upsampling of the 60 m data, so fetching it would cost 9× the
bytes for no information; a user who wants it anyway can name ``B01_20m`` explicitly.

Decision: **band names in the scene store are the asset keys** (``B02_10m``,
``B05_20m``, ``SCL_20m``). Every band is stored on the scene's 10 m grid, but the
suffix keeps saying which product file the values came from, so ``B02_20m`` (ESA's
downsampled B02, upsampled again) can never be confused with the real 10 m ``B02_10m``
in a cache that is shared between runs with different settings. The store keeps
whatever was downloaded; a later run that asks for more bands appends them.

``SCL_20m`` is always added: the pipeline masks clouds and nodata with it.
B10 (cirrus) is not part of L2A products and is therefore not offered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from darts.errors import ConfigError
from darts.sources.scene_source import MissingAssetError

# The bands in Sentinel-2's usual order, with their native resolution in metres.
NATIVE_RESOLUTION: dict[str, int] = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B11": 20,
    "B12": 20,
}
SCL_BAND = "SCL"
SCL_KEY = "SCL_20m"
RESOLUTIONS = (10, 20, 60)

DEFAULT_BANDS: tuple[str, ...] = ("B02_10m", "B03_10m", "B04_10m", "B08_10m")
ALL = "all"

# STAC `eo:common_name`s as CDSE writes them, plus the plain "nir" the DARTS docs use.
COMMON_NAMES: dict[str, str] = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge071": "B05",
    "rededge075": "B06",
    "rededge078": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "swir16": "B11",
    "swir22": "B12",
}

# B2, b02, B8A, b8a, optionally with _10m/_20m/_60m; SCL optionally with a resolution.
_BAND_PATTERN = re.compile(r"^(?:b(?P<num>\d{1,2}|8a)|(?P<scl>scl))(?:_(?P<res>10|20|60)m)?$")


def native_key(band: str) -> str:
    """The asset key of ``band`` (``B02``, ``SCL``) at its native resolution."""
    if band == SCL_BAND:
        return SCL_KEY
    return f"{band}_{NATIVE_RESOLUTION[band]}m"


def valid_band_names() -> list[str]:
    """Every spelling `normalize_bands` accepts, for error messages and --help."""
    names = [*NATIVE_RESOLUTION, SCL_BAND]
    return [*names, "<band>_10m|_20m|_60m", *COMMON_NAMES, ALL]


def parse_band_name(name: str) -> tuple[str, int | None]:
    """(band, resolution or None) for one user-given name; ConfigError if unknown."""
    text = name.strip().lower()
    if text in COMMON_NAMES:
        return COMMON_NAMES[text], None
    match = _BAND_PATTERN.match(text)
    if match:
        if match["scl"]:
            band = SCL_BAND
        elif match["num"] == "8a":
            band = "B8A"
        else:
            band = f"B{int(match['num']):02d}"
        if band == SCL_BAND or band in NATIVE_RESOLUTION:
            return band, int(match["res"]) if match["res"] else None
    raise ConfigError(
        f"unknown Sentinel-2 band {name!r}; valid names are: {', '.join(valid_band_names())} "
        "(case-insensitive; B10 is not part of L2A products)"
    )


def normalize_bands(names: Iterable[str] | str | None = None) -> list[str]:
    """The asset keys for user band names, in request order, without repeats, SCL last.

    ``None`` (or an empty list) means `DEFAULT_BANDS`. Names without a resolution get
    the band's native one; this needs no item, so offline code and the CLI's option
    check agree with what `resolve_bands` fetches for any CDSE item.
    """
    if isinstance(names, str):
        names = [names]
    requested = list(names or [])
    if not requested:
        requested = list(DEFAULT_BANDS)
    keys: list[str] = []
    for name in requested:
        if not isinstance(name, str):
            raise ConfigError(f"band names must be strings, got {name!r}")
        if name.strip().lower() == ALL:
            keys += [native_key(band) for band in NATIVE_RESOLUTION]
            continue
        band, res = parse_band_name(name)
        keys.append(native_key(band) if res is None else f"{band}_{res}m")
    if SCL_KEY not in keys:
        keys.append(SCL_KEY)
    return list(dict.fromkeys(keys))


def resolve_bands(
    names: Iterable[str] | str | None, item: Mapping[str, Any] | None = None
) -> list[str]:
    """Like `normalize_bands`, then checked against ``item``'s assets.

    A band named without a resolution whose native asset the item lacks falls back to
    the band's finest asset the item does have (so a product variant without, say,
    ``B05_20m`` still yields B05 from ``B05_60m``); a band named with an explicit
    resolution must exist as given. `MissingAssetError` names the item and the band.
    """
    names = [names] if isinstance(names, str) else list(names or [])
    keys = normalize_bands(names)
    if item is None:
        return keys
    assets = item.get("assets") or {}
    explicit = _explicit_keys(names)
    resolved: list[str] = []
    for key in keys:
        if key in assets:
            resolved.append(key)
            continue
        band = key.split("_")[0]
        fallback = None
        if key not in explicit:
            fallback = next((f"{band}_{r}m" for r in RESOLUTIONS if f"{band}_{r}m" in assets), None)
        if fallback is None:
            have = sorted(k for k in assets if k.startswith(f"{band}_"))
            raise MissingAssetError(
                f"item {item.get('id')!r} has no asset {key!r}"
                + (f" (it has {', '.join(have)})" if have else f" nor any other {band} asset")
            )
        resolved.append(fallback)
    return list(dict.fromkeys(resolved))


def _explicit_keys(names: list[str]) -> set[str]:
    """Keys the user named with a resolution (those must not be substituted)."""
    if not names:
        return set(DEFAULT_BANDS)
    explicit: set[str] = set()
    for name in names:
        if name.strip().lower() == ALL:
            continue
        band, res = parse_band_name(name)
        if res is not None:
            explicit.add(f"{band}_{res}m")
    return explicit
