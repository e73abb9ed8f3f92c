"""Cloud-Optimized GeoTIFFs of a scene result, on the scene's own CRS and grid.

Encodings (what a GIS user gets):

- ``probabilities.tif``: uint8 percent, ``round(p · 100)`` (nearest, ties to even),
  0..100; 255 = nodata where there is no prediction (NaN) or the pixel is outside the
  final valid mask. A percent byte is a quarter of the float32 size and 1 % steps are
  far finer than the model's calibration.
- ``binarized.tif``: uint8 1 = detection, 0 = no detection, 255 = nodata outside the
  valid mask. processing.md only says "uint8 0/1"; the nodata value is our choice so
  that "looked and found nothing" (0) and "could not look" (255) differ.
- ``probabilities-<model>.tif`` (``--write-model-outputs``): each model's own
  probabilities, encoded like ``probabilities.tif``.
- optional layers (optical, DEM derivatives, TCVIS): one band per variable, named by
  its band description, float32 with NaN nodata (integer layers keep their type).

All files are COGs written by GDAL's COG driver through rasterio: DEFLATE with a
predictor, 512 px internal tiles, overviews down to one tile. Nothing here modifies
the input arrays (pitfall 22): every encoding builds a new array.

What a GIS (or ``gdalinfo``) shows besides the pixels, so a file is understood on its own:

- the scene's provenance as metadata items of the default domain (scene id, tile,
  datetime, source, models with checksums, darts version, parameters digest: see
  `darts.processing.provenance`), on every file;
- a description per band; on ``probabilities.tif`` the band scale 0.01 and offset 0,
  so tools that apply them read probabilities 0..1;
- on ``binarized.tif`` a colour table: 0 black, 1 :data:`DETECTION_COLOUR` (the
  thumbnail's outline colour), nodata grey. TIFF palettes have no alpha; GIS tools hide
  the nodata value themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import xarray as xr
from affine import Affine
from rasterio.crs import CRS as RioCRS
from rasterio.windows import Window

from darts.grid.scene import Grid
from darts.processing.export_staging import staged
from darts.processing.provenance import Provenance
from darts.processing.run_metadata import ExportError

PROBABILITY_NODATA = 255
BINARIZED_NODATA = 255
# Stored percent × PROBABILITY_SCALE = probability.
PROBABILITY_SCALE = 0.01
DETECTION_COLOUR = (255, 0, 255)
BINARIZED_COLOURS: dict[int, tuple[int, int, int, int]] = {
    0: (0, 0, 0, 255),
    1: (*DETECTION_COLOUR, 255),
    BINARIZED_NODATA: (128, 128, 128, 255),
}
_BLOCKSIZE = 512
# Rows encoded or written at a time (a 10980-px-wide float32 strip of 1024 rows: 45 MB).
_ROWS = 1024


def encode_probabilities(probabilities: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """uint8 percent with :data:`PROBABILITY_NODATA` where NaN or not valid."""
    p, valid = np.asarray(probabilities), np.asarray(valid)
    out = np.empty(p.shape, dtype=np.uint8)
    for rows in _row_blocks(p.shape):
        part, keep = p[rows], np.isfinite(p[rows]) & (valid[rows] == 1)
        # Clipping guards against float noise just outside [0, 1] wrapping around.
        percent = np.rint(np.clip(part, 0.0, 1.0) * 100.0)
        out[rows] = np.where(keep, percent, PROBABILITY_NODATA).astype(np.uint8)
    return out


def encode_binarized(binarized: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """uint8 0/1 inside the valid mask, :data:`BINARIZED_NODATA` outside."""
    binarized, valid = np.asarray(binarized), np.asarray(valid)
    out = np.empty(binarized.shape, dtype=np.uint8)
    for rows in _row_blocks(binarized.shape):
        detections = (binarized[rows] == 1).astype(np.uint8)
        out[rows] = np.where(valid[rows] == 1, detections, np.uint8(BINARIZED_NODATA))
    return out


def _row_blocks(shape: tuple[int, ...]) -> list[slice]:
    """Row slices of :data:`_ROWS` rows: encodings work on one at a time, so their
    temporaries are a strip of the scene, not scene-sized."""
    return [slice(r, min(r + _ROWS, shape[0])) for r in range(0, shape[0], _ROWS)]


def rasterio_crs(grid: Grid) -> RioCRS:
    # The EPSG code, when there is one, gives GIS tools a recognisable name.
    return RioCRS.from_user_input(grid.crs_code) if grid.crs_code else RioCRS.from_wkt(grid.crs_wkt)


def write_cog(
    path: Path,
    bands: Sequence[np.ndarray | xr.DataArray],
    grid: Grid,
    *,
    nodata: float | None,
    descriptions: Sequence[str],
    overview_resampling: str,
    tags: Mapping[str, str] | None = None,
    scale: float | None = None,
    colours: Mapping[int, tuple[int, int, int, int]] | None = None,
) -> Path:
    """Write ``bands`` (2-D arrays of one dtype, on ``grid``) as a COG at ``path``.
    Each band is read (and converted, for a lazy `xarray.DataArray`) in strips of
    rows. ``tags``: dataset metadata items; ``scale``: every band's scale (offset 0);
    ``colours``: a colour table for the (single, uint8) band."""
    if not bands or len(bands) != len(descriptions):
        raise ExportError(f"{path.name}: need one description per band and at least one band")
    dtype = bands[0].dtype
    for band in bands:
        if band.shape != grid.shape or band.dtype != dtype:
            raise ExportError(
                f"{path.name}: bands must share dtype {dtype} and the grid shape {grid.shape}"
            )
    profile: dict[str, Any] = {
        "driver": "COG",
        "width": grid.shape[1],
        "height": grid.shape[0],
        "count": len(bands),
        "dtype": dtype.name,
        "crs": rasterio_crs(grid),
        "transform": Affine(*grid.transform),
        "nodata": nodata,
        "compress": "DEFLATE",
        # Horizontal (integer) / floating-point predictor: smooth fields compress better.
        "predictor": "YES",
        "blocksize": _BLOCKSIZE,
        "overview_resampling": overview_resampling,
        # A full scene of float32 optical bands is ~2 GB uncompressed.
        "bigtiff": "IF_SAFER",
    }
    # The COG driver assembles the file when the dataset closes; the inner context
    # exits first, so the file is complete before staging renames it.
    with staged(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        for index, (band, description) in enumerate(zip(bands, descriptions, strict=True), 1):
            for rows in _row_blocks(grid.shape):
                window = Window(0, rows.start, grid.shape[1], rows.stop - rows.start)
                dst.write(np.asarray(band[rows], dtype=dtype), index, window=window)
            dst.set_band_description(index, description)
        if tags:
            dst.update_tags(**tags)
        if scale is not None:
            dst.scales = (scale,) * len(bands)
            dst.offsets = (0.0,) * len(bands)
        if colours is not None:
            dst.write_colormap(1, dict(colours))
    return path


def write_probabilities(
    result: xr.Dataset, grid: Grid, out_dir: Path, provenance: Provenance
) -> list[Path]:
    encoded = encode_probabilities(result["probabilities"].values, result["valid"].values)
    path = write_cog(
        out_dir / "probabilities.tif",
        [encoded],
        grid,
        nodata=PROBABILITY_NODATA,
        descriptions=["probability_percent"],
        # GDAL's averaging skips nodata, so overviews do not bleed 255 into the data.
        overview_resampling="AVERAGE",
        tags=provenance.raster_tags(),
        scale=PROBABILITY_SCALE,
    )
    return [path]


def write_model_probabilities(
    result: xr.Dataset,
    grid: Grid,
    out_dir: Path,
    layers: Mapping[str, str],
    provenance: Provenance,
) -> list[Path]:
    """Each model's own probabilities (``--write-model-outputs``), encoded like
    ``probabilities.tif`` under the same valid mask: ``probabilities-<label>.tif`` for
    each label → variable of ``layers``."""
    paths = []
    for label, variable in layers.items():
        encoded = encode_probabilities(result[variable].values, result["valid"].values)
        paths.append(
            write_cog(
                out_dir / f"probabilities-{label}.tif",
                [encoded],
                grid,
                nodata=PROBABILITY_NODATA,
                descriptions=[f"probability_percent of model {label}"],
                overview_resampling="AVERAGE",
                tags=provenance.raster_tags(),
                scale=PROBABILITY_SCALE,
            )
        )
    return paths


def write_binarized(
    result: xr.Dataset, grid: Grid, out_dir: Path, provenance: Provenance
) -> list[Path]:
    encoded = encode_binarized(result["binarized"].values, result["valid"].values)
    path = write_cog(
        out_dir / "binarized.tif",
        [encoded],
        grid,
        nodata=BINARIZED_NODATA,
        descriptions=["detection"],
        # Classes: an overview pixel must be one of 0/1, never an average.
        overview_resampling="MODE",
        tags=provenance.raster_tags(),
        colours=BINARIZED_COLOURS,
    )
    return [path]


def write_layers(
    result: xr.Dataset,
    grid: Grid,
    path: Path,
    names: Sequence[str],
    *,
    overview_resampling: str,
    provenance: Provenance,
) -> list[Path]:
    """Write the variables of ``names`` that ``result`` holds as one multi-band COG.

    Raises when none of them is present: the export was asked for explicitly, and an
    empty or missing file would pass unnoticed.
    """
    present = [name for name in names if name in result.data_vars]
    if not present:
        raise ExportError(
            f"cannot write {path.name}: the scene result has none of the variables "
            f"{', '.join(names)}"
        )
    # DataArrays, not their values: lazily computed layers are read strip by strip.
    arrays = [result[name].variable for name in present]
    dtypes = {a.dtype for a in arrays}
    nodata: float | None
    bands: list[Any]
    if len(dtypes) == 1 and next(iter(dtypes)).kind in "ui":
        # Integer layers (e.g. TCVIS bytes) stay compact; their nodata, if declared.
        nodata = _declared_nodata(result[present[0]])
        bands = arrays
    else:
        nodata = float("nan")
        bands = [_AsFloat32(a) for a in arrays]
    write_cog(
        path,
        bands,
        grid,
        nodata=nodata,
        descriptions=present,
        overview_resampling=overview_resampling,
        tags=provenance.raster_tags(),
    )
    return [path]


def _declared_nodata(array: xr.DataArray) -> float | None:
    for source in (array.attrs, array.encoding):
        for key in ("_FillValue", "nodata", "missing_value"):
            value = source.get(key)
            if value is not None:
                return float(value)
    return None


class _AsFloat32:
    """Rows of a 2-D variable as float32, converted one strip at a time."""

    def __init__(self, variable: xr.Variable) -> None:
        self.variable = variable
        self.shape = variable.shape
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return np.asarray(self.variable[rows].values, dtype=np.float32)
