"""Model input features, computed per window from compact scene-grid inputs.

Thirteen float32 feature bands of a 10980² scene would take 6.3 GB, so they never
exist at once. Instead `build_inputs` keeps what the features are derived from, on the
scene grid and in the smallest honest types (optical DN uint16 with their packing
attributes, quality uint8, DEM float32, TCVIS uint8 + a valid mask), and
`feature_window` derives the features of one window (a patch) on demand: terrain on
the window grown by `TERRAIN_HALO_PX`, then cropped, so a patch sees exactly the
values a whole-scene computation would give it.

Scene edges: outside the scene there is no DEM. The TPI averages only the heights
that exist (NaN beyond the edge), and the 3×3 stencils repeat the edge row/column, so
every scene pixel with a height gets all terrain features.

`feature_window` returns values already normalised to model space; `feature_dataset`
returns physical values (reflectance, metres, degrees) for exports and checks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import xarray as xr
from pyproj import CRS
from scipy.ndimage import maximum_filter1d

from darts.errors import DartsError
from darts.processing import terrain
from darts.processing.indices import OPTICAL_ALIASES, ndvi
from darts.processing.normalize import NORMALIZATION, UnknownBandError, normalize
from darts.processing.reflectance import dn_to_reflectance, is_dn_band
from darts.processing.reproject import (
    DEM_VARIABLE,
    TCVIS_BANDS,
    VALID,
    reproject_dem,
    reproject_tcvis,
    scene_grid,
)
from darts.store.georef import DIMS, GRID_MAPPING, Grid

ALL_FEATURES = (
    "red",
    "green",
    "blue",
    "nir",
    "ndvi",
    "relative_elevation",
    "slope",
    "aspect",
    "hillshade",
    "curvature",
    "tc_brightness",
    "tc_greenness",
    "tc_wetness",
)
OPTICAL_FEATURES = ("red", "green", "blue", "nir")
TERRAIN_FEATURES = ("relative_elevation", "slope", "aspect", "hillshade", "curvature")
TCVIS_FEATURES = TCVIS_BANDS

# The same name darts.pipelines.optical gives the mask it adds to a scene.
QUALITY_BAND = "quality_data_mask"
DEM_BAND = DEM_VARIABLE
TCVIS_VALID = "tcvis_valid"

Window = tuple[int, int, int, int]  # row0, row1, col0, col1 (half-open)

# feature_dataset works in blocks of this edge so a whole-scene call never holds more
# than one block's float64 terrain intermediates.
_BLOCK = 1024

_UNITS = {
    "red": "1",
    "green": "1",
    "blue": "1",
    "nir": "1",
    "ndvi": "1",
    "relative_elevation": "m",
    "slope": "degree",
    "aspect": "degree",
    "hillshade": "1",
    "curvature": "100/cell²",
    "tc_brightness": "1",
    "tc_greenness": "1",
    "tc_wetness": "1",
}


class MissingFeatureInputError(DartsError):
    """A model needs a band whose source data the scene's inputs do not hold."""


@dataclass(frozen=True)
class FeatureParams:
    """How features are derived. Sun angles come from the item (`for_item`)."""

    tpi_outer_radius_m: float = 100.0
    tpi_inner_radius_m: float = 0.0
    terrain_convention: str = terrain.TerrainConvention.REFERENCE.value
    sun_azimuth_deg: float = 225.0
    sun_elevation_deg: float = 25.0

    def __post_init__(self) -> None:
        convention = terrain.terrain_convention(self.terrain_convention)
        # Stored as the plain string so the params serialise as they were configured.
        object.__setattr__(self, "terrain_convention", convention.value)
        if not (0.0 <= self.tpi_inner_radius_m <= self.tpi_outer_radius_m) or not (
            self.tpi_outer_radius_m > 0
        ):
            raise ValueError(
                "TPI radii must satisfy 0 ≤ inner ≤ outer and outer > 0, got inner "
                f"{self.tpi_inner_radius_m:g} m, outer {self.tpi_outer_radius_m:g} m"
            )
        if not math.isfinite(self.sun_azimuth_deg) or not (0.0 <= self.sun_elevation_deg <= 90.0):
            raise ValueError(
                f"sun azimuth must be finite and elevation within 0..90°, got "
                f"{self.sun_azimuth_deg:g}° / {self.sun_elevation_deg:g}°"
            )

    @property
    def preprocessing_version(self) -> str:
        return terrain.preprocessing_version(self.terrain_convention)

    @classmethod
    def for_item(cls, item: Mapping[str, Any], **overrides: Any) -> FeatureParams:
        """Params with the sun position of a STAC item (``view:sun_azimuth``,
        ``view:sun_elevation``); defaults where the item has none. ``overrides`` win."""
        properties = item.get("properties") or {}
        values: dict[str, Any] = {}
        azimuth = _number(properties.get("view:sun_azimuth"))
        elevation = _number(properties.get("view:sun_elevation"))
        if azimuth is not None:
            values["sun_azimuth_deg"] = azimuth
        if elevation is not None:
            values["sun_elevation_deg"] = elevation
        values.update(overrides)
        return cls(**values)


# -- the compact scene inputs ----------------------------------------------------------


def build_inputs(
    optical: xr.Dataset,
    dem: xr.Dataset | None,
    tcvis: xr.Dataset | None,
    params: FeatureParams,
) -> xr.Dataset:
    """The scene-grid inputs every feature is derived from.

    Optical bands (``B02_10m`` … ``B08_10m``) are kept as given (uint16 DN with
    ``raster:scale``/``raster:offset``/``nodata``, or float reflectance); the DEM and
    TCVIS are reprojected onto the scene grid. ``quality_data_mask`` becomes 0 wherever
    auxiliary data the features need is missing: no height within a pixel's 3×3
    neighbourhood (its slope etc. would be undefined), or no TCVIS value. Inputs are
    never modified.
    """
    if QUALITY_BAND not in optical.data_vars:
        raise MissingFeatureInputError(
            f"the optical scene has no {QUALITY_BAND!r} band (load it with load_optical)"
        )
    grid = scene_grid(optical)
    coords = _scene_coords(optical)
    variables: dict[str, Any] = {
        name: optical[name] for name in OPTICAL_ALIASES.values() if name in optical.data_vars
    }
    invalid: np.ndarray | None = None
    if dem is not None:
        heights = reproject_dem(dem, grid)[DEM_VARIABLE].values
        variables[DEM_BAND] = (DIMS, heights, {"units": "m", "long_name": "ArcticDEM height"})
        invalid = _dem_gaps(heights)
    if tcvis is not None:
        tc = reproject_tcvis(tcvis, grid)
        for band in TCVIS_BANDS:
            variables[band] = (DIMS, tc[band].values, dict(tc[band].attrs))
        variables[TCVIS_VALID] = (DIMS, tc[VALID].values, {"flag_values": [0, 1]})
        no_tcvis = tc[VALID].values == 0
        invalid = no_tcvis if invalid is None else (invalid | no_tcvis)
    quality = optical[QUALITY_BAND]
    if invalid is not None:
        kept = np.where(invalid, np.uint8(0), quality.values).astype(np.uint8, copy=False)
        quality = quality.copy(data=kept)
    variables[QUALITY_BAND] = quality
    attrs = {
        **optical.attrs,
        **asdict(params),
        "preprocessing_version": params.preprocessing_version,
        "north_bearing_deg": _north_bearing(grid, params),
    }
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def _dem_gaps(heights: np.ndarray) -> np.ndarray:
    """Pixels with no height in their 3×3 neighbourhood (inside the scene)."""
    missing = np.isnan(heights)
    if not missing.any():
        return missing
    # A 3×3 dilation as running maxima along both axes: two cheap passes over uint8.
    grown = maximum_filter1d(missing.view(np.uint8), 3, axis=1, mode="constant", cval=0)
    return maximum_filter1d(grown, 3, axis=0, mode="constant", cval=0).view(bool)


# -- features of one window ------------------------------------------------------------


def feature_window(
    inputs: xr.Dataset, window: Window, bands: Sequence[str], params: FeatureParams
) -> np.ndarray:
    """float32 array (len(bands), h, w) of model-space (normalised) features."""
    physical = _physical(inputs, window, bands, params)
    r0, r1, c0, c1 = window
    out = np.empty((len(bands), r1 - r0, c1 - c0), dtype=np.float32)
    for index, band in enumerate(bands):
        out[index] = normalize(band, physical[band])
    return out


def feature_dataset(
    inputs: xr.Dataset,
    bands: Sequence[str],
    params: FeatureParams,
    window: Window | None = None,
) -> xr.Dataset:
    """Physical (not normalised) float32 features of ``window`` (default: the scene),
    with the scene's coordinates."""
    height, width = inputs.sizes["y"], inputs.sizes["x"]
    r0, r1, c0, c1 = window if window is not None else (0, height, 0, width)
    _check_window(inputs, (r0, r1, c0, c1))
    _require(inputs, bands)
    arrays = {band: np.empty((r1 - r0, c1 - c0), dtype=np.float32) for band in bands}
    for br in range(r0, r1, _BLOCK):
        for bc in range(c0, c1, _BLOCK):
            block = (br, min(br + _BLOCK, r1), bc, min(bc + _BLOCK, c1))
            values = _physical(inputs, block, bands, params)
            for band in bands:
                arrays[band][br - r0 : block[1] - r0, bc - c0 : block[3] - c0] = values[band]
    region = inputs.isel(y=slice(r0, r1), x=slice(c0, c1))
    coords = _scene_coords(region)
    data_vars = {
        band: (DIMS, arrays[band], {"units": _UNITS[band], "nodata": float("nan")})
        for band in bands
    }
    attrs = {**asdict(params), "preprocessing_version": params.preprocessing_version}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def valid_window(inputs: xr.Dataset, window: Window, quality_level: int = 1) -> np.ndarray:
    """bool array: the window's pixels whose quality is at least ``quality_level``."""
    rows, cols = _check_window(inputs, window)
    quality = inputs[QUALITY_BAND].isel(y=rows, x=cols).values
    return np.asarray(quality >= quality_level)


# -- internals -------------------------------------------------------------------------


def _physical(
    inputs: xr.Dataset, window: Window, bands: Sequence[str], params: FeatureParams
) -> dict[str, np.ndarray]:
    """Physical float32 values of ``bands`` in ``window``, computing only what they need."""
    rows, cols = _check_window(inputs, window)
    _require(inputs, bands)
    wanted = set(bands)
    values: dict[str, np.ndarray] = {}
    optical = {b for b in OPTICAL_FEATURES if b in wanted}
    if "ndvi" in wanted:
        optical |= {"red", "nir"}
    for band in optical:
        values[band] = _reflectance(inputs[OPTICAL_ALIASES[band]].isel(y=rows, x=cols))
    if "ndvi" in wanted:
        values["ndvi"] = ndvi(values["red"], values["nir"])
    relief = [b for b in TERRAIN_FEATURES if b in wanted]
    if relief:
        values.update(_terrain(inputs, window, relief, params))
    tc = [b for b in TCVIS_FEATURES if b in wanted]
    if tc:
        has_value = inputs[TCVIS_VALID].isel(y=rows, x=cols).values != 0
        for band in tc:
            index = inputs[band].isel(y=rows, x=cols).values.astype(np.float32)
            index[~has_value] = np.nan
            values[band] = index
    return {band: values[band] for band in bands}


def _reflectance(band: xr.DataArray) -> np.ndarray:
    if is_dn_band(band):
        return np.asarray(dn_to_reflectance(band).values, dtype=np.float32)
    return np.asarray(band.values, dtype=np.float32)


def _terrain(
    inputs: xr.Dataset, window: Window, names: Iterable[str], params: FeatureParams
) -> dict[str, np.ndarray]:
    grid = scene_grid(inputs)
    pixel = _pixel_size(grid)
    halo = terrain.TERRAIN_HALO_PX(pixel, max(params.tpi_outer_radius_m, params.tpi_inner_radius_m))
    height, width = grid.shape
    r0, r1, c0, c1 = window
    g0, g1 = max(r0 - halo, 0), min(r1 + halo, height)
    h0, h1 = max(c0 - halo, 0), min(c1 + halo, width)
    block = np.asarray(inputs[DEM_BAND].isel(y=slice(g0, g1), x=slice(h0, h1)).values)
    block = block.astype(np.float64)
    pads = ((halo - (r0 - g0), halo - (g1 - r1)), (halo - (c0 - h0), halo - (h1 - c1)))
    padded = any(p for pair in pads for p in pair)
    # Beyond the scene: no heights for the TPI mean, the edge repeated for the stencils.
    for_tpi = np.pad(block, pads, constant_values=np.nan) if padded else block
    for_stencils = np.pad(block, pads, mode="edge") if padded else block
    crop = (slice(halo, halo + r1 - r0), slice(halo, halo + c1 - c0))
    north = _north_bearing(grid, params)
    computed: dict[str, np.ndarray] = {}
    for name in names:
        if name == "relative_elevation":
            result = terrain.relative_elevation(
                for_tpi, pixel, params.tpi_outer_radius_m, params.tpi_inner_radius_m
            )
        elif name == "slope":
            result = terrain.slope(for_stencils, pixel)
        elif name == "aspect":
            result = terrain.aspect(for_stencils, pixel, north_bearing_deg=north)
        elif name == "hillshade":
            result = terrain.hillshade(
                for_stencils,
                pixel,
                params.sun_azimuth_deg,
                params.sun_elevation_deg,
                north_bearing_deg=north,
            )
        else:
            result = terrain.curvature(for_stencils, pixel)
        computed[name] = result[crop]
    return computed


def _north_bearing(grid: Grid, params: FeatureParams) -> float:
    a, _b, c, _d, e, f = grid.transform
    height, width = grid.shape
    centre = (c + a * width / 2, f + e * height / 2)
    return terrain.north_bearing_for(params.terrain_convention, grid.crs_wkt, *centre)


def _pixel_size(grid: Grid) -> float:
    crs = CRS.from_wkt(grid.crs_wkt)
    units = {axis.unit_name for axis in crs.axis_info}
    if not crs.is_projected or not units <= {"metre", "meter", "m"}:
        raise MissingFeatureInputError(
            f"terrain features need a scene grid in metres; it is in {crs.name!r}"
        )
    x_res, y_res = grid.resolution
    if not math.isclose(x_res, y_res, rel_tol=1e-6):
        raise MissingFeatureInputError(
            f"terrain features need square pixels, the scene has {x_res:g}×{y_res:g} m"
        )
    return x_res


def _require(inputs: xr.Dataset, bands: Sequence[str]) -> None:
    """Every band is known and its source variables are present, else a clear error."""
    for band in bands:
        if band not in NORMALIZATION:
            known = ", ".join(ALL_FEATURES)
            raise UnknownBandError(f"unknown model input band {band!r}; known bands: {known}")
        what, sources = _sources(band)
        for source in sources:
            if source not in inputs.data_vars:
                raise MissingFeatureInputError(
                    f"model input band {band!r} needs {what}, but the scene inputs have no "
                    f"{source!r} (have: {', '.join(str(v) for v in inputs.data_vars)})"
                )


def _sources(band: str) -> tuple[str, tuple[str, ...]]:
    """What a band is derived from: a description and the input variables."""
    if band in OPTICAL_ALIASES:
        return f"the optical band {OPTICAL_ALIASES[band]}", (OPTICAL_ALIASES[band],)
    if band == "ndvi":
        red, nir = OPTICAL_ALIASES["red"], OPTICAL_ALIASES["nir"]
        return f"the optical bands {red} and {nir}", (red, nir)
    if band in TERRAIN_FEATURES:
        return "the ArcticDEM", (DEM_BAND,)
    return "TCVIS data", (band, TCVIS_VALID)


def _scene_coords(ds: xr.Dataset) -> dict[str, xr.DataArray]:
    return {name: ds.coords[name] for name in (*DIMS, GRID_MAPPING) if name in ds.coords}


def _check_window(inputs: xr.Dataset, window: Window) -> tuple[slice, slice]:
    r0, r1, c0, c1 = (int(v) for v in window)
    height, width = inputs.sizes["y"], inputs.sizes["x"]
    if not (0 <= r0 < r1 <= height and 0 <= c0 < c1 <= width):
        raise ValueError(
            f"window rows {r0}:{r1}, cols {c0}:{c1} is empty or outside the {height}×{width} scene"
        )
    return slice(r0, r1), slice(c0, c1)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
