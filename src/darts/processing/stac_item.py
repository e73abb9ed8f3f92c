"""``stac_item.json``: a scene's outputs as a STAC Item, for catalogue tools.

A folder of scene results is easiest to search and serve when each scene describes
itself in the format catalogue tools already index (stac-fastapi, pgSTAC, STAC browsers,
QGIS's STAC plugin, pystac): a STAC 1.1.0 Item beside the outputs, with

- ``id`` the scene id, ``geometry``/``bbox`` the scene footprint in EPSG:4326 (the source
  document's footprint when the pipeline passes it, else the outline of the scene grid),
  ``datetime`` the acquisition (``start_datetime``/``end_datetime`` for a composite);
- one asset per output file, by a relative href (the folder can move), with its media
  type, roles, ``file:size`` and ``file:checksum`` (a SHA-256 multihash: ``1220`` + hex)
  and, for GeoTIFFs, ``proj:code``/``proj:shape``/``proj:transform``, ``bands`` (the
  band names) and ``raster:bands`` (data type, nodata, scale/offset) read back from
  the file itself, so the item describes the file as written; the completion record
  (``darts_inference.json``) is an asset too, without checksum (it is written after
  this item and lists this item's own SHA-256);
- a ``derived_from`` link to the source scene (its STAC ``self`` link when the
  document has one, else its id);
- the provenance as properties: ``grid:code`` (``MGRS-<tile>``), ``darts:source``,
  ``darts:version``, ``darts:models`` (file names with SHA-256), ``darts:parameters``
  and their digest ``darts:parameters_sha256``.

The item holds no absolute path and no clock time: it depends only on the inputs.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import rasterio
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import mapping, shape

from darts.grid.scene import Grid
from darts.processing.export_staging import staged
from darts.processing.provenance import Provenance, iso_utc
from darts.processing.run_metadata import RECORD_NAME, ExportError

STAC_ITEM_NAME = "stac_item.json"
STAC_VERSION = "1.1.0"
EXTENSIONS = (
    "https://stac-extensions.github.io/file/v2.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    # v1.1.0's ``raster:bands``: what odc-stac, stackstac and pystac's extension read.
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
)
# The multihash prefix of a SHA-256 digest: function code 0x12, length 0x20 bytes.
SHA256_MULTIHASH = "1220"
MEDIA_TYPES = {
    ".tif": "image/tiff; application=geotiff; profile=cloud-optimized",
    ".gpkg": "application/geopackage+sqlite3",
    ".parquet": "application/vnd.apache.parquet",
    ".png": "image/png",
    ".json": "application/json",
}
ROLES = {"thumbnail": ["thumbnail"], "metadata": ["metadata"]}
TITLES = {
    "probabilities": "RTS probability in percent (scale 0.01: 0..1)",
    "model_probabilities": "One model's RTS probability in percent (scale 0.01: 0..1)",
    "binarized": "RTS detections: 1 detected, 0 not",
    "polygonized": "RTS objects with zonal statistics of the probability",
    "extent": "Footprint of the valid data",
    "thumbnail": "Quick look with detections, legend and scale bar",
    "optical": "Sentinel-2 reflectance",
    "dem": "ArcticDEM and terrain features",
    "tcvis": "TCVIS (Landsat Tasseled-Cap trends)",
    "metadata": "DARTS completion record: parameters, models, versions, output checksums",
}
# Vertices per side of the grid outline, so its reprojection follows the curve; and the
# decimals kept of a degree (1e-7° is about 1 cm).
_OUTLINE_POINTS = 8
_DEGREE_DECIMALS = 7


def stac_item(
    provenance: Provenance, grid: Grid, out_dir: Path, entries: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The STAC Item of a scene whose output files ``entries`` describes (file entries
    of the completion record: export, file, size, sha256)."""
    geometry = _footprint(provenance, grid)
    properties: dict[str, Any] = {"datetime": iso_utc(provenance.acquired)}
    if provenance.period_start and provenance.period_end:
        properties["start_datetime"] = iso_utc(provenance.period_start)
        properties["end_datetime"] = iso_utc(provenance.period_end)
    if properties["datetime"] is None and "start_datetime" not in properties:
        raise ExportError(f"scene {provenance.scene_id}: no acquisition time for the STAC item")
    if provenance.tile_id:
        properties["grid:code"] = f"MGRS-{provenance.tile_id}"
    properties.update(
        {
            "darts:source": provenance.source,
            "darts:version": provenance.darts_version,
            "darts:models": [{"name": m.name, "sha256": m.sha256} for m in provenance.models],
            "darts:parameters": dict(provenance.parameters),
            "darts:parameters_sha256": provenance.parameters_sha256,
        }
    )
    assets = _assets(out_dir, entries)
    assets["metadata"] = _asset(RECORD_NAME, "metadata")
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": list(EXTENSIONS),
        "id": provenance.scene_id,
        "geometry": geometry,
        "bbox": list(shape(geometry).bounds),
        "properties": properties,
        "links": [_derived_from(provenance)],
        "assets": assets,
    }


def write_stac_item(
    provenance: Provenance, grid: Grid, out_dir: Path, entries: Sequence[Mapping[str, Any]]
) -> list[Path]:
    document = stac_item(provenance, grid, out_dir, entries)
    path = out_dir / STAC_ITEM_NAME
    try:
        text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ExportError(f"the STAC item is not JSON-serialisable: {error}") from None
    with staged(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return [path]


def _assets(out_dir: Path, entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    stems = [Path(entry["file"]).stem for entry in entries]
    assets: dict[str, Any] = {}
    for entry in sorted(entries, key=lambda e: e["file"]):
        name = Path(entry["file"])
        # Files sharing a stem (the GeoPackage and GeoParquet of a layer) are told
        # apart by their format.
        key = name.stem if stems.count(name.stem) == 1 else f"{name.stem}_{name.suffix[1:]}"
        asset = _asset(name.name, entry["export"])
        asset["file:size"] = entry["size"]
        asset["file:checksum"] = SHA256_MULTIHASH + entry["sha256"]
        if name.suffix == ".tif":
            asset.update(_raster_fields(out_dir / name))
        assets[key] = asset
    return assets


def _asset(file_name: str, export: str) -> dict[str, Any]:
    suffix = Path(file_name).suffix
    asset: dict[str, Any] = {"href": f"./{file_name}", "type": MEDIA_TYPES.get(suffix)}
    if export in TITLES:
        asset["title"] = TITLES[export]
    asset["roles"] = list(ROLES.get(export, ["data"]))
    return {key: value for key, value in asset.items() if value is not None}


def _raster_fields(path: Path) -> dict[str, Any]:
    """Projection and bands of a GeoTIFF, as the file has them."""
    with rasterio.open(path) as src:
        crs = src.crs
        epsg = crs.to_epsg() if crs else None
        fields: dict[str, Any] = {
            "proj:shape": [src.height, src.width],
            "proj:transform": list(src.transform)[:6],
        }
        if epsg is not None:
            fields["proj:code"] = f"EPSG:{epsg}"
        elif crs is not None:
            fields["proj:wkt2"] = crs.to_wkt()
        names, bands = [], []
        for index, dtype in enumerate(src.dtypes):
            names.append({"name": src.descriptions[index] or f"band_{index + 1}"})
            band: dict[str, Any] = {"data_type": dtype}
            if src.nodata is not None:
                band["nodata"] = _nodata(src.nodata)
            scale, offset = src.scales[index], src.offsets[index]
            if (scale, offset) != (1.0, 0.0):
                band["scale"] = scale
                band["offset"] = offset
            bands.append(band)
        fields["bands"] = names
        fields["raster:bands"] = bands
    return fields


def _nodata(value: float) -> float | int | str:
    # STAC writes the non-finite nodata values as strings; JSON has no NaN.
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return int(value) if float(value).is_integer() else float(value)


def _footprint(provenance: Provenance, grid: Grid) -> dict[str, Any]:
    if provenance.footprint:
        try:
            geometry = shape(provenance.footprint)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ExportError(
                f"scene {provenance.scene_id}: its footprint is not a GeoJSON geometry: {error}"
            ) from None
        if not geometry.is_empty:
            return mapping(geometry)
    return mapping(_grid_outline(grid))


def _grid_outline(grid: Grid) -> shapely.Polygon:
    """The scene grid's outline in EPSG:4326 (lon, lat), densified before reprojection."""
    rows, cols = grid.shape
    a, b, c, d, e, f = grid.transform
    corners = [(0, 0), (cols, 0), (cols, rows), (0, rows), (0, 0)]
    ring = []
    for (col0, row0), (col1, row1) in itertools.pairwise(corners):
        for i in range(_OUTLINE_POINTS):
            t = i / _OUTLINE_POINTS
            col, row = col0 + (col1 - col0) * t, row0 + (row1 - row0) * t
            ring.append((c + a * col + b * row, f + d * col + e * row))
    to_lonlat = Transformer.from_crs(
        CRS.from_wkt(grid.crs_wkt), CRS.from_epsg(4326), always_xy=True
    )
    xs, ys = to_lonlat.transform([p[0] for p in ring], [p[1] for p in ring])
    digits = _DEGREE_DECIMALS
    return shapely.Polygon(
        [(round(x, digits), round(y, digits)) for x, y in zip(xs, ys, strict=True)]
    )


def _derived_from(provenance: Provenance) -> dict[str, Any]:
    link: dict[str, Any] = {
        "rel": "derived_from",
        "href": provenance.source_href or provenance.scene_id,
        "title": f"{provenance.source} scene {provenance.scene_id}",
    }
    if provenance.source_href:
        link["type"] = "application/geo+json"
    return link
