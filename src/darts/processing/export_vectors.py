"""Vector exports: one polygon per detected object, and the valid-data footprint.

Objects are the connected components of the detections (``binarized == 1`` inside
the valid mask) under **8-connectivity**, the definition the whole postprocessing
chain uses (pitfall 23). Each object is labelled once with ``scipy.ndimage.label``
and polygonised from its own label only, so one object is one row even where
GDAL's polygoniser returns several parts for it (pixels touching only at a corner
form rings GEOS considers invalid; those are repaired and merged).

Object ids are 1..n in the order of each object's first pixel in row-major order
(topmost row, then leftmost column in it): independent of how the labeller numbers
components internally.

Zonal statistics come from the float probabilities of the object's pixels, never
from the uint8 file (pitfall 22: in the reference, statistics depended on whether
the probability raster had already been converted in place).

Every row starts with the scene's provenance (:data:`PROVENANCE_COLUMNS`: scene id,
MGRS tile, acquisition datetime, source, models as ``file@checksum``), so layers of
many scenes concatenate into one table that still says where each object came from.
The columns and their types are the same for every scene, with or without objects
(strings as strings, the datetime as UTC milliseconds, also in an empty layer), so a
merge never meets a column of another type.

Geometries are always MultiPolygons so each layer has one geometry type. Both a
GeoPackage and a GeoParquet file are written with identical content. The
GeoPackage's ``last_change`` timestamp is pinned so the file depends only on its
content; when the export ran belongs in the completion record, if anywhere.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import rasterio.features
import shapely
import xarray as xr
from affine import Affine
from pyproj import CRS
from scipy import ndimage
from shapely.geometry import shape

from darts.grid.scene import Grid
from darts.processing.export_staging import staged
from darts.processing.provenance import Provenance
from darts.processing.run_metadata import ExportError

# Must equal darts.processing.postprocess.CONNECTIVITY: objects counted, filtered and
# exported must be the same objects.
POLYGON_CONNECTIVITY = 8
_STRUCTURE = np.ones((3, 3), dtype=bool)  # the 8-neighbourhood, for scipy.ndimage
_RELABEL_ROWS = 512

PROVENANCE_COLUMNS = ("scene_id", "tile_id", "scene_datetime", "source", "models")
SEGMENT_COLUMNS = (
    "object_id",
    "pixel_count",
    "area_m2",
    "prob_min",
    "prob_max",
    "prob_mean",
    "prob_median",
    "prob_std",
)
EXTENT_COLUMNS = ("pixel_count", "area_m2")
GEOMETRY_TYPE = "MultiPolygon"
# pandas ≥ 3 names its string dtype "str"; before that, "str" meant object columns,
# which an empty layer would write as Parquet's null type.
_STRING_DTYPE: Any = "str" if int(pd.__version__.split(".")[0]) >= 3 else pd.StringDtype()
_DATETIME_DTYPE = "datetime64[ms, UTC]"
GPKG_LAST_CHANGE = "1970-01-01T00:00:00.000Z"


def detections_of(result: xr.Dataset) -> np.ndarray:
    """Boolean detections: binarized pixels inside the final valid mask (the same
    pixels ``binarized.tif`` shows as 1)."""
    return (np.asarray(result["binarized"].values) == 1) & (np.asarray(result["valid"].values) == 1)


def label_objects(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected labels 1..n ordered by each object's first pixel in row-major order."""
    labels, count = ndimage.label(mask, structure=_STRUCTURE)
    if count == 0:
        return labels, 0
    firsts = []
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        assert box is not None  # every label 1..count has pixels
        top = box[0].start
        row = labels[top, box[1]]
        firsts.append((top, box[1].start + int(np.argmax(row == label)), label))
    order = np.zeros(count + 1, dtype=labels.dtype)
    for new, (_row, _col, old) in enumerate(sorted(firsts), start=1):
        order[old] = new
    # Renumbered in place, a strip of rows at a time: no second scene-sized label image.
    for r0 in range(0, labels.shape[0], _RELABEL_ROWS):
        strip = labels[r0 : r0 + _RELABEL_ROWS]
        strip[...] = order[strip]
    return labels, count


def pixel_area_m2(grid: Grid) -> float | None:
    """Area of one pixel in m² for a projected CRS; None for a geographic one, where
    pixels differ in area and each object is measured on the ellipsoid instead."""
    crs = CRS.from_wkt(grid.crs_wkt)
    a, b, _c, d, e, _f = grid.transform
    if crs.is_projected:
        factor = crs.axis_info[0].unit_conversion_factor
        return abs(a * e - b * d) * factor * factor
    if crs.is_geographic:
        return None
    raise ExportError(f"cannot measure areas in CRS {crs.name!r}")


def _area_m2(
    geometry: shapely.Geometry, pixel_count: int, grid: Grid, pixel_area: float | None
) -> float:
    if pixel_area is not None:
        # Exact for pixel-aligned polygons, and free of polygon arithmetic.
        return float(pixel_count * pixel_area)
    area, _perimeter = CRS.from_wkt(grid.crs_wkt).get_geod().geometry_area_perimeter(geometry)
    return float(abs(area))


def polygonize(mask: np.ndarray, transform: Affine) -> shapely.MultiPolygon:
    """The pixels of ``mask`` as one valid MultiPolygon in map coordinates."""
    parts = [
        shapely.make_valid(shape(geometry))
        for geometry, _value in rasterio.features.shapes(
            mask.astype(np.uint8),
            mask=mask,
            connectivity=POLYGON_CONNECTIVITY,
            transform=transform,
        )
    ]
    merged = shapely.union_all(parts)
    polygons = [g for g in shapely.get_parts(merged) if isinstance(g, shapely.Polygon)]
    return shapely.MultiPolygon(polygons)


def segments_frame(result: xr.Dataset, grid: Grid, provenance: Provenance) -> gpd.GeoDataFrame:
    """One row per object with its pixel count, area and probability statistics."""
    labels, _count = label_objects(detections_of(result))
    probabilities = np.asarray(result["probabilities"].values)
    transform = Affine(*grid.transform)
    pixel_area = pixel_area_m2(grid)
    rows: list[dict[str, Any]] = []
    geometries: list[shapely.Geometry] = []
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        assert box is not None
        mask = labels[box] == label
        geometry = polygonize(mask, transform @ Affine.translation(box[1].start, box[0].start))
        values = probabilities[box][mask].astype(np.float64)
        pixel_count = int(mask.sum())
        rows.append(
            {
                "object_id": label,
                "pixel_count": pixel_count,
                "area_m2": _area_m2(geometry, pixel_count, grid, pixel_area),
                **zonal_stats(values),
            }
        )
        geometries.append(geometry)
    return _frame(rows, geometries, SEGMENT_COLUMNS, grid, provenance)


def zonal_stats(values: np.ndarray) -> dict[str, float]:
    """min/max/mean/median/population std of the finite values (NaN if none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        nan = float("nan")
        return dict.fromkeys(("prob_min", "prob_max", "prob_mean", "prob_median", "prob_std"), nan)
    return {
        "prob_min": float(finite.min()),
        "prob_max": float(finite.max()),
        "prob_mean": float(finite.mean()),
        "prob_median": float(np.median(finite)),
        "prob_std": float(finite.std()),
    }


def extent_frame(result: xr.Dataset, grid: Grid, provenance: Provenance) -> gpd.GeoDataFrame:
    """The valid-data footprint as one MultiPolygon row (no row if nothing is valid)."""
    valid = np.asarray(result["valid"].values) == 1
    pixel_count = int(valid.sum())
    rows: list[dict[str, Any]] = []
    geometries: list[shapely.Geometry] = []
    if pixel_count:
        geometry = polygonize(valid, Affine(*grid.transform))
        area = _area_m2(geometry, pixel_count, grid, pixel_area_m2(grid))
        rows.append({"pixel_count": pixel_count, "area_m2": area})
        geometries.append(geometry)
    return _frame(rows, geometries, EXTENT_COLUMNS, grid, provenance)


def _frame(
    rows: list[dict[str, Any]],
    geometries: list[shapely.Geometry],
    columns: Sequence[str],
    grid: Grid,
    provenance: Provenance,
) -> gpd.GeoDataFrame:
    dtypes = {"object_id": "int64", "pixel_count": "int64"}
    data: dict[str, Any] = provenance_columns(provenance, len(rows))
    for column in columns:
        data[column] = np.array([row[column] for row in rows], dtype=dtypes.get(column, "float64"))
    crs = grid.crs_code or grid.crs_wkt
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geometries, crs=crs), crs=crs)


def provenance_columns(
    provenance: Provenance, rows: int
) -> dict[str, pd.api.extensions.ExtensionArray]:
    """:data:`PROVENANCE_COLUMNS` for ``rows`` rows, typed the same when there are none."""
    texts = {
        "scene_id": provenance.scene_id,
        "tile_id": provenance.tile_id,
        "source": provenance.source,
        "models": provenance.models_text(short=True),
    }
    acquired = pd.Timestamp(provenance.acquired) if provenance.acquired else pd.NaT
    columns = {name: pd.array([value] * rows, dtype=_STRING_DTYPE) for name, value in texts.items()}
    columns["scene_datetime"] = pd.array([acquired] * rows, dtype=_DATETIME_DTYPE)
    return {name: columns[name] for name in PROVENANCE_COLUMNS}


def write_vectors(frame: gpd.GeoDataFrame, out_dir: Path, stem: str) -> list[Path]:
    """``{stem}.gpkg`` (layer ``stem``) and ``{stem}.parquet`` with the same content."""
    gpkg = out_dir / f"{stem}.gpkg"
    with staged(gpkg) as tmp:
        pyogrio.write_dataframe(frame, tmp, layer=stem, driver="GPKG", geometry_type=GEOMETRY_TYPE)
        _pin_last_change(tmp)
    parquet = out_dir / f"{stem}.parquet"
    with staged(parquet) as tmp:
        frame.to_parquet(tmp, index=False, compression="zstd", geometry_encoding="WKB")
    return [gpkg, parquet]


def _pin_last_change(path: Path) -> None:
    # GDAL stamps gpkg_contents.last_change with the wall clock; without pinning, two
    # exports of the same result would differ byte-wise.
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.execute("UPDATE gpkg_contents SET last_change = ?", (GPKG_LAST_CHANGE,))
    finally:
        connection.close()
    # So would SQLite's file change counter (header bytes 24-27, repeated as the
    # "version-valid-for" number at 92-95, which must equal it): it counts the write
    # transactions, and GDAL's number of them varies from run to run.
    with path.open("r+b") as file:
        for offset in _SQLITE_CHANGE_COUNTERS:
            file.seek(offset)
            file.write((1).to_bytes(4, "big"))


# Offsets of the SQLite header's file change counter and version-valid-for number.
_SQLITE_CHANGE_COUNTERS = (24, 92)


def write_segments(
    result: xr.Dataset, grid: Grid, out_dir: Path, provenance: Provenance
) -> list[Path]:
    return write_vectors(segments_frame(result, grid, provenance), out_dir, "prediction_segments")


def write_extent(
    result: xr.Dataset, grid: Grid, out_dir: Path, provenance: Provenance
) -> list[Path]:
    return write_vectors(extent_frame(result, grid, provenance), out_dir, "prediction_extent")
