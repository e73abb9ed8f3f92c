"""Model input features, computed per window from compact scene-grid inputs.

Thirteen float32 feature bands of a 10980² scene would take 6.3 GB, so they never
exist at once. Instead `build_inputs` keeps what the features are derived from, on the
scene grid and in the smallest honest types (optical DN uint16 with their packing
attributes, quality uint8, DEM float32, TCVIS uint8 + a valid mask as bits), and
`feature_window` derives the features of one window (a patch) on demand: terrain on
the window grown by `TERRAIN_HALO_PX`, then cropped, so a patch sees exactly the
values a whole-scene computation would give it.

Scene edges: outside the scene there is no DEM. The TPI averages only the heights
that exist (NaN beyond the edge), and the 3×3 stencils repeat the edge row/column, so
every scene pixel with a height gets all terrain features.

`feature_window` returns values already normalised to model space; `feature_dataset`
returns physical values (reflectance, metres, degrees) for exports and checks.

Optical bands that arrive lazily (a scene opened from the store: nothing read yet)
stay lazy, behind a small cache of decoded store chunks (`ChunkCachedArray`): a
10980² scene's four bands would take 964 MB in memory, while patches visited row by
row only ever need about one row of chunks. Without the cache every patch would
decode every chunk it touches again (~9× the scene in total).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import xarray as xr
from pyproj import CRS
from scipy.ndimage import maximum_filter1d
from xarray.backends import BackendArray
from xarray.core import indexing

from darts.errors import DartsError
from darts.grid.scene import DIMS, GRID_MAPPING, Grid, grid_of_dataset
from darts.processing import terrain
from darts.processing.indices import OPTICAL_ALIASES, ndvi
from darts.processing.normalize import NORMALIZATION, UnknownBandError, normalize
from darts.processing.reflectance import dn_to_reflectance, is_dn_band
from darts.processing.reproject import (
    DEM_VARIABLE,
    TCVIS_BANDS,
    VALID,
    TileCache,
    TiledArray,
    _as_slice,
    reproject_dem,
    reproject_tcvis,
)

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
    ``raster:scale``/``raster:offset``/``nodata``, or float reflectance); optical bands
    not yet read (a scene opened from the store) stay lazy, behind a cache of decoded
    chunks. The DEM and TCVIS are reprojected onto the scene grid, unless they already
    lie on it (the output of `reproject_dem` / `reproject_tcvis` for this scene: a
    caller short of memory reprojects each as it loads it and drops the source before
    loading the next). ``tcvis_valid`` is kept as bits. ``quality_data_mask`` becomes 0
    wherever auxiliary data the features need is missing: no height within a pixel's
    3×3 neighbourhood (its slope etc. would be undefined), or no TCVIS value. Inputs
    are never modified.
    """
    if QUALITY_BAND not in optical.data_vars:
        raise MissingFeatureInputError(
            f"the optical scene has no {QUALITY_BAND!r} band (load it with load_optical)"
        )
    grid = grid_of_dataset(optical)
    coords = _scene_coords(optical)
    variables: dict[str, Any] = {
        name: _chunk_cached(optical[name])
        for name in OPTICAL_ALIASES.values()
        if name in optical.data_vars
    }
    invalid: np.ndarray | None = None
    if dem is not None:
        on_grid = dem if on_scene_grid(dem, optical) else reproject_dem(dem, grid)
        heights = on_grid[DEM_VARIABLE].values
        variables[DEM_BAND] = (DIMS, heights, {"units": "m", "long_name": "ArcticDEM height"})
        invalid = _dem_gaps(heights)
        del on_grid
    if tcvis is not None:
        tc = tcvis if on_scene_grid(tcvis, optical) else reproject_tcvis(tcvis, grid)
        if VALID not in tc.data_vars:
            raise MissingFeatureInputError(
                f"TCVIS on the scene grid needs its {VALID!r} variable (see reproject_tcvis)"
            )
        for band in TCVIS_BANDS:
            variables[band] = tc[band].variable  # as given: in memory, or lazy
        no_tcvis = _rows_where_zero(tc[VALID])
        # One bit per pixel, not a byte (15 instead of 120 MB for a 10980² scene).
        flags = indexing.LazilyIndexedArray(PackedFlags(~no_tcvis))
        variables[TCVIS_VALID] = xr.Variable(DIMS, flags, {"flag_values": [0, 1]})
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


class ChunkCachedArray(TiledArray):
    """A lazy 2-D variable read one storage chunk at a time, keeping the ``capacity``
    most recently used decoded chunks. Thread-safe: concurrent readers of one chunk
    wait for a single decode."""

    def __init__(self, source: xr.Variable, chunks: tuple[int, int], capacity: int) -> None:
        rows, cols = chunks

        def decode(i: int, j: int) -> np.ndarray:
            part = source[i * rows : (i + 1) * rows, j * cols : (j + 1) * cols]
            return np.asarray(part.values)

        super().__init__(TileCache(decode, capacity), source.shape, chunks, source.dtype)
        self.chunks = chunks

    @property
    def decoded(self) -> int:
        """Chunks decoded so far (for tests and benchmarks)."""
        return self.cache.made


def _chunk_cached(band: xr.DataArray) -> xr.DataArray | xr.Variable:
    """``band`` itself when its values are in memory; a lazy band (read from the
    store on access) behind a `ChunkCachedArray` holding one row of storage chunks
    plus two, enough that patches visited row by row decode most chunks once."""
    variable = band.variable
    if variable._in_memory or band.ndim != 2:
        return band
    preferred = band.encoding.get("preferred_chunks") or {}
    chunks = band.encoding.get("chunks") or tuple(preferred.get(d, 2048) for d in band.dims)
    rows, cols = (max(1, min(int(c), n)) for c, n in zip(chunks, band.shape, strict=True))
    capacity = -(-band.shape[1] // cols) + 2
    cached = ChunkCachedArray(variable, (rows, cols), capacity)
    lazy = xr.Variable(band.dims, indexing.LazilyIndexedArray(cached), dict(band.attrs))
    lazy.encoding = dict(band.encoding)
    return lazy


def on_scene_grid(aux: xr.Dataset, optical: xr.Dataset) -> bool:
    """True when ``aux`` already lies on the scene grid of ``optical`` (what
    `reproject_dem` / `reproject_tcvis` return for it): no source georeferencing of its
    own, the scene's shape and the scene's pixel-centre coordinates."""
    if "crs" in aux.attrs or "transform" in aux.attrs:
        return False  # a datacube read, on the auxiliary data's own grid
    if any(aux.sizes.get(dim) != optical.sizes.get(dim) for dim in DIMS):
        return False
    if any(dim not in aux.coords or dim not in optical.coords for dim in DIMS):
        return False
    x_res, y_res = (abs(float(v)) for v in grid_of_dataset(optical).resolution)
    return all(
        np.allclose(aux[dim].values, optical[dim].values, rtol=0.0, atol=1e-6 * res)
        for dim, res in zip(DIMS, (y_res, x_res), strict=True)
    )


class PackedFlags(BackendArray):  # type: ignore[misc]
    """A 2-D uint8 0/1 array kept as bits (`numpy.packbits` along rows), unpacked for
    the part that is read."""

    def __init__(self, flags: np.ndarray) -> None:
        flags = np.asarray(flags, dtype=bool)
        if flags.ndim != 2:
            raise ValueError("PackedFlags holds a 2-D array")
        self.shape = flags.shape
        self.dtype = np.dtype(np.uint8)
        self.bits = np.packbits(flags, axis=1)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._read
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> PackedFlags:
        return self  # read-only

    def _read(self, key: tuple[Any, ...]) -> np.ndarray:
        (r0, r1, rstep), (c0, c1, cstep) = (
            _as_slice(k, n) for k, n in zip(key, self.shape, strict=True)
        )
        first = c0 // 8
        bytes_ = self.bits[r0:r1, first : -(-c1 // 8)]
        out = np.unpackbits(bytes_, axis=1)[:, c0 - 8 * first : c1 - 8 * first]
        out = out[::rstep, ::cstep]
        drop = tuple(axis for axis, k in enumerate(key) if not isinstance(k, slice))
        return out.squeeze(drop) if drop else out


def release_caches(inputs: xr.Dataset) -> None:
    """Drop the decoded store chunks (and any lazily reprojected tiles) the lazy
    variables of ``inputs`` keep: ~0.27 GB for the four optical bands of a 10980²
    scene. They are made again if read again."""
    for variable in inputs.variables.values():
        backend = getattr(variable._data, "array", None)
        if isinstance(backend, TiledArray):
            backend.cache.clear()


def _rows_where_zero(flags: xr.DataArray) -> np.ndarray:
    """bool ``flags == 0``, read in strips of rows (a lazy variable is computed one
    strip at a time)."""
    out = np.empty(flags.shape, dtype=bool)
    for r0 in range(0, flags.shape[0], _BLOCK):
        out[r0 : r0 + _BLOCK] = flags[r0 : r0 + _BLOCK].values == 0
    return out


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
    inputs: xr.Dataset,
    window: Window,
    bands: Sequence[str],
    params: FeatureParams,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """float32 array (len(bands), h, w) of model-space (normalised) features, written
    into ``out`` when given (e.g. a slot of a model input buffer)."""
    r0, r1, c0, c1 = window
    shape = (len(bands), r1 - r0, c1 - c0)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise ValueError(f"out must be float32 {shape}, is {out.dtype} {out.shape}")
    positions: dict[str, list[int]] = {}
    for index, band in enumerate(bands):
        positions.setdefault(band, []).append(index)
    # Each band is normalised into place as soon as it is computed: only one physical
    # band (and the intermediates of the one being computed) exists at a time.
    for band, values in _physical_parts(inputs, window, bands, params):
        first, *more = positions[band]
        normalize(band, values, out=out[first])
        for index in more:
            out[index] = out[first]
    return out


def feature_dataset(
    inputs: xr.Dataset,
    bands: Sequence[str],
    params: FeatureParams,
    window: Window | None = None,
    *,
    lazy: bool = False,
) -> xr.Dataset:
    """Physical (not normalised) float32 features of ``window`` (default: the scene),
    with the scene's coordinates.

    ``lazy``: nothing is computed now; each variable computes the part of it that is
    read, when it is read (``ds[band][rows]``, ``.isel``; ``.values`` computes it all).
    A 10980² scene's float32 band is 482 MB, so consumers that work in strips (the
    thumbnail, the COG writer) read a lazy dataset in bounded memory. ``inputs`` must
    stay unchanged while the dataset is in use."""
    height, width = inputs.sizes["y"], inputs.sizes["x"]
    r0, r1, c0, c1 = window if window is not None else (0, height, 0, width)
    _check_window(inputs, (r0, r1, c0, c1))
    _require(inputs, bands)
    region = inputs.isel(y=slice(r0, r1), x=slice(c0, c1))
    coords = _scene_coords(region)
    data_vars: dict[str, Any] = {}
    if lazy:
        for band in bands:
            attrs = {"units": _UNITS[band], "nodata": float("nan")}
            source = _LazyFeature(inputs, band, params, (r0, r1, c0, c1))
            data_vars[band] = xr.Variable(DIMS, indexing.LazilyIndexedArray(source), attrs)
    else:
        arrays = _physical_blocked(inputs, (r0, r1, c0, c1), bands, params)
        data_vars = {
            band: (DIMS, arrays[band], {"units": _UNITS[band], "nodata": float("nan")})
            for band in bands
        }
    attrs = {**asdict(params), "preprocessing_version": params.preprocessing_version}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _physical_blocked(
    inputs: xr.Dataset, window: Window, bands: Sequence[str], params: FeatureParams
) -> dict[str, np.ndarray]:
    """`_physical` of a window of any size, computed in `_BLOCK`-edge blocks so that
    no more than one block's terrain intermediates exist at once."""
    r0, r1, c0, c1 = window
    arrays = {band: np.empty((r1 - r0, c1 - c0), dtype=np.float32) for band in bands}
    for br in range(r0, r1, _BLOCK):
        for bc in range(c0, c1, _BLOCK):
            block = (br, min(br + _BLOCK, r1), bc, min(bc + _BLOCK, c1))
            values = _physical(inputs, block, bands, params)
            for band in bands:
                arrays[band][br - r0 : block[1] - r0, bc - c0 : block[3] - c0] = values.pop(band)
    return arrays


class _LazyFeature(BackendArray):  # type: ignore[misc]
    """One physical feature band of a window of the scene, computed for the part that
    is indexed (see `feature_dataset`)."""

    def __init__(
        self, inputs: xr.Dataset, band: str, params: FeatureParams, window: Window
    ) -> None:
        self.inputs, self.band, self.params, self.window = inputs, band, params, window
        r0, r1, c0, c1 = window
        self.shape = (r1 - r0, c1 - c0)
        self.dtype = np.dtype(np.float32)

    def __deepcopy__(self, memo: dict[int, Any]) -> _LazyFeature:
        # Read-only: a deep copy (xarray makes them, e.g. in align) may share it.
        return self

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._read
        )

    def _read(self, key: tuple[Any, ...]) -> np.ndarray:
        (a0, a1, astep), (b0, b1, bstep) = (
            _as_slice(k, n) for k, n in zip(key, self.shape, strict=True)
        )
        if a1 <= a0 or b1 <= b0:
            out = np.empty((max(a1 - a0, 0), max(b1 - b0, 0)), dtype=self.dtype)
        else:
            r0, _r1, c0, _c1 = self.window
            part = (r0 + a0, r0 + a1, c0 + b0, c0 + b1)
            out = _physical_blocked(self.inputs, part, [self.band], self.params)[self.band]
        out = out[::astep, ::bstep]
        drop = tuple(axis for axis, k in enumerate(key) if not isinstance(k, slice))
        return out.squeeze(drop) if drop else out


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
    values = dict(_physical_parts(inputs, window, bands, params))
    return {band: values[band] for band in bands}


def _physical_parts(
    inputs: xr.Dataset, window: Window, bands: Sequence[str], params: FeatureParams
) -> Iterator[tuple[str, np.ndarray]]:
    """(band, physical float32 values in ``window``) for each distinct band of
    ``bands``, as soon as each is computed, so a consumer can use one and let it go
    before the next exists (in an order of their own, not that of ``bands``)."""
    rows, cols = _check_window(inputs, window)
    _require(inputs, bands)
    wanted = set(bands)
    for_ndvi: dict[str, np.ndarray] = {}
    for band in OPTICAL_FEATURES:
        needed_for_ndvi = "ndvi" in wanted and band in ("red", "nir")
        if band in wanted or needed_for_ndvi:
            values = _reflectance(inputs[OPTICAL_ALIASES[band]].isel(y=rows, x=cols))
            if needed_for_ndvi:
                for_ndvi[band] = values
            if band in wanted:
                yield band, values
            del values
    if "ndvi" in wanted:
        yield "ndvi", ndvi(for_ndvi.pop("red"), for_ndvi.pop("nir"))
    relief = [b for b in TERRAIN_FEATURES if b in wanted]
    if relief:
        yield from _terrain(inputs, window, relief, params)
    tc = [b for b in TCVIS_FEATURES if b in wanted]
    if tc:
        no_value = inputs[TCVIS_VALID].isel(y=rows, x=cols).values == 0
        for band in tc:
            index = inputs[band].isel(y=rows, x=cols).values.astype(np.float32)
            index[no_value] = np.nan
            yield band, index


def _reflectance(band: xr.DataArray) -> np.ndarray:
    if not is_dn_band(band):
        return np.asarray(band.values, dtype=np.float32)
    if band.dtype == np.uint16:
        # A table of every DN's reflectance, made by the conversion itself: the same
        # values, one lookup per pixel instead of a float64 round trip.
        key = tuple(repr(band.attrs.get(k)) for k in ("raster:scale", "raster:offset", "nodata"))
        table = _REFLECTANCE_TABLES.get(key)
        if table is None:
            every_dn = xr.DataArray(np.arange(65536, dtype=np.uint16), attrs=band.attrs)
            table = np.asarray(dn_to_reflectance(every_dn).values, dtype=np.float32)
            table.flags.writeable = False
            _REFLECTANCE_TABLES[key] = table
        return table[np.asarray(band.values)]
    return np.asarray(dn_to_reflectance(band).values, dtype=np.float32)


# DN → reflectance tables by packing attributes (256 KB each; scenes share a few).
_REFLECTANCE_TABLES: dict[tuple[str, ...], np.ndarray] = {}


def _terrain(
    inputs: xr.Dataset, window: Window, names: Iterable[str], params: FeatureParams
) -> Iterator[tuple[str, np.ndarray]]:
    """(name, values) of the terrain features ``names`` of ``window``, one at a time."""
    grid = grid_of_dataset(inputs)
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
    del block
    crop = (slice(halo, halo + r1 - r0), slice(halo, halo + c1 - c0))
    north = _north_bearing(grid, params)
    names = list(names)
    # The 3×3 stencils need the window plus a one-pixel ring, not the whole TPI halo;
    # slope, aspect and hillshade share one Horn gradient.
    ring = (slice(halo - 1, halo + r1 - r0 + 1), slice(halo - 1, halo + c1 - c0 + 1))
    stencil_area = for_stencils[ring]
    inner = (slice(1, -1), slice(1, -1))
    if "relative_elevation" in names:
        tpi = terrain.relative_elevation(
            for_tpi, pixel, params.tpi_outer_radius_m, params.tpi_inner_radius_m
        )
        yield "relative_elevation", tpi[crop]
        del tpi
    del for_tpi
    if "curvature" in names:
        yield "curvature", terrain.curvature(stencil_area, pixel)[inner]
    stencils = [name for name in ("slope", "aspect", "hillshade") if name in names]
    if stencils:
        east, north_gradient = terrain.horn_gradient(stencil_area, pixel)
        gradient = (east[inner], north_gradient[inner])
        for name in stencils:
            if name == "slope":
                yield name, terrain.slope(None, pixel, gradient=gradient)
            elif name == "aspect":
                yield name, terrain.aspect(None, pixel, north_bearing_deg=north, gradient=gradient)
            else:
                yield (
                    name,
                    terrain.hillshade(
                        None,
                        pixel,
                        params.sun_azimuth_deg,
                        params.sun_elevation_deg,
                        north_bearing_deg=north,
                        gradient=gradient,
                    ),
                )


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
