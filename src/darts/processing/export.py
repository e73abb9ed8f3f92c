"""Export one scene's inference result into its own folder.

``export_scene`` writes the requested files (see the table in processing.md), then
``stac_item.json`` (a STAC Item of those files: `darts.processing.stac_item`) and, last,
``darts_inference.json``: the caller's metadata plus the list of files written with
their sizes and SHA-256, the STAC item included. That record is the scene's completion
mark (:func:`is_complete`); a scene that crashed mid-export has none and is redone.

Every file carries the scene's `Provenance` (scene, tile, date, source, models,
parameters digest): polygon columns, GeoTIFF metadata, the thumbnail's caption, the
STAC item's properties. The caller builds it; the writers only read it.

Guarantees:

- Every file appears under its final name only when complete (temp name + rename).
- A re-export first deletes the old record, so old and new files are never vouched
  for together, and replaces the folder's outputs as a whole: files of an earlier
  export that this one did not write (another export set) are removed before the new
  record is written.
- Outputs depend only on the input dataset: each writer reads the input without
  modifying it (pitfall 22), the writers run in one fixed order whatever order the
  caller lists them in, and no file embeds the time it was written.
- One folder has one writer at a time; the pipeline gives each scene its own folder.

Optional raster exports take these variables, when present, unless ``layers``
overrides the names: see :data:`OPTIONAL_LAYERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from darts.grid.errors import GridError
from darts.grid.scene import Grid, grid_of_variable
from darts.processing.export_rasters import (
    write_binarized,
    write_layers,
    write_model_probabilities,
    write_probabilities,
)
from darts.processing.export_staging import remove_staged, sync_dir
from darts.processing.export_vectors import write_extent, write_segments
from darts.processing.provenance import ModelRef, Provenance
from darts.processing.run_metadata import (
    RECORD_NAME,
    ExportError,
    discard_record,
    file_entries,
    write_record,
)
from darts.processing.run_metadata import (
    is_complete as _record_complete,
)
from darts.processing.stac_item import STAC_ITEM_NAME, write_stac_item
from darts.processing.thumbnail import write_thumbnail

__all__ = [
    "DEFAULT_EXPORTS",
    "EXPORT_KEYS",
    "OPTIONAL_LAYERS",
    "RECORD_NAME",
    "STAC_ITEM_NAME",
    "ExportError",
    "ModelRef",
    "Provenance",
    "export_scene",
    "is_complete",
    "scene_output_dir",
]

EXPORT_KEYS = (
    "probabilities",
    "binarized",
    "polygonized",
    "extent",
    "thumbnail",
    "optical",
    "dem",
    "tcvis",
)
DEFAULT_EXPORTS = ("probabilities", "binarized", "polygonized", "extent", "thumbnail")
REQUIRED_VARIABLES = ("probabilities", "binarized", "valid")

# Variables each optional raster export writes (those present, in this band order).
OPTIONAL_LAYERS: Mapping[str, tuple[str, ...]] = {
    "optical": ("red", "green", "blue", "nir"),
    "dem": ("dem", "relative_elevation", "slope", "aspect", "hillshade", "curvature"),
    "tcvis": ("tc_brightness", "tc_greenness", "tc_wetness"),
}
OPTIONAL_FILES = {"optical": "optical.tif", "dem": "dem.tif", "tcvis": "tcvis.tif"}
# Overviews of aspect (a circular quantity) must not be averaged; TCVIS and
# reflectance may.
_OPTIONAL_RESAMPLING = {"optical": "AVERAGE", "dem": "NEAREST", "tcvis": "AVERAGE"}

Writer = Callable[[xr.Dataset, Grid, Path, Provenance], list[Path]]
_WRITERS: Mapping[str, Writer] = {
    "probabilities": write_probabilities,
    "binarized": write_binarized,
    "polygonized": write_segments,
    "extent": write_extent,
    "thumbnail": write_thumbnail,
}
# The record's export keys of the STAC item and of each model's own probabilities.
STAC_EXPORT = "stac"
MODEL_PROBABILITIES_EXPORT = "model_probabilities"


def scene_output_dir(output_root: Path, scene_id: str) -> Path:
    """``output_root / scene_id``; the id must be one plain path component."""
    if (
        not scene_id
        or scene_id in (".", "..")
        or "/" in scene_id
        or "\\" in scene_id
        or "\x00" in scene_id
    ):
        raise ExportError(f"scene id {scene_id!r} cannot name an output folder")
    return Path(output_root) / scene_id


def is_complete(out_dir: Path, *, verify_checksums: bool = False) -> bool:
    """True when the scene's export finished: the record is present and parseable and
    every file it lists exists with the recorded size (and SHA-256, if asked: that
    reads every byte, so a scan over many scenes normally leaves it off)."""
    return _record_complete(Path(out_dir), verify_checksums=verify_checksums)


def export_scene(
    result: xr.Dataset,
    out_dir: Path,
    *,
    exports: Sequence[str] = DEFAULT_EXPORTS,
    metadata: Mapping[str, Any],
    provenance: Provenance,
    layers: Mapping[str, Sequence[str]] | None = None,
    model_layers: Mapping[str, str] | None = None,
) -> dict[str, list[Path]]:
    """Write ``exports`` of ``result`` into ``out_dir``, then the STAC item, and the
    completion record last.

    ``result``: dims (y, x), x/y pixel-centre coordinates and a ``spatial_ref``
    coordinate (``crs_wkt``, ``GeoTransform``); variables ``probabilities`` (float,
    NaN = no prediction), ``binarized`` and ``valid`` (uint8 0/1), optionally the
    bands of :data:`OPTIONAL_LAYERS`. ``layers`` replaces the variable names of
    optional exports (e.g. ``{"dem": ["slope"]}``). ``model_layers`` (label →
    variable) adds each model's own probabilities as ``probabilities-<label>.tif``.

    ``provenance`` goes into every file; ``metadata`` into the record as given.

    Returns export key → files written, plus ``"stac"`` → the STAC item and
    ``"metadata"`` → the record.
    """
    requested = _validated_exports(exports)
    names = {**OPTIONAL_LAYERS, **{k: tuple(v) for k, v in (layers or {}).items()}}
    unknown_layers = set(names) - set(OPTIONAL_LAYERS)
    if unknown_layers:
        raise ExportError(f"layers given for exports that take none: {sorted(unknown_layers)}")
    grid = _checked_grid(result)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    discard_record(out_dir)
    remove_staged(out_dir)

    written: dict[str, list[Path]] = {}
    # Fixed order (EXPORT_KEYS), not the caller's: outputs cannot depend on it.
    for key in EXPORT_KEYS:
        if key not in requested:
            continue
        if key in OPTIONAL_FILES:
            written[key] = write_layers(
                result,
                grid,
                out_dir / OPTIONAL_FILES[key],
                names[key],
                overview_resampling=_OPTIONAL_RESAMPLING[key],
                provenance=provenance,
            )
        else:
            written[key] = _WRITERS[key](result, grid, out_dir, provenance)
    if model_layers:
        written[MODEL_PROBABILITIES_EXPORT] = write_model_probabilities(
            result, grid, out_dir, model_layers, provenance
        )
    # Each file is hashed once: for the STAC item, then for the record.
    entries = file_entries(out_dir, written)
    written[STAC_EXPORT] = write_stac_item(provenance, grid, out_dir, entries)
    _remove_leftovers(out_dir, written)
    # The renames above must be durable before the record that vouches for them.
    sync_dir(out_dir)
    written["metadata"] = [write_record(out_dir, metadata, written, known=entries)]
    return written


def _remove_leftovers(out_dir: Path, written: Mapping[str, Sequence[Path]]) -> None:
    """Delete the files an earlier export left that this one did not write: the folder
    is the scene's, and its outputs are replaced as a whole, never mixed."""
    keep = {path.name for paths in written.values() for path in paths}
    for entry in out_dir.iterdir():
        if entry.is_file() and entry.name not in keep and entry.name != RECORD_NAME:
            entry.unlink(missing_ok=True)


def _validated_exports(exports: Sequence[str]) -> set[str]:
    if isinstance(exports, str):
        raise ExportError("exports must be a list of export keys, not one string")
    unknown = [key for key in exports if key not in EXPORT_KEYS]
    if unknown:
        raise ExportError(
            f"unknown export(s) {', '.join(map(repr, unknown))}; known: {', '.join(EXPORT_KEYS)}"
        )
    return set(exports)


def _checked_grid(result: xr.Dataset) -> Grid:
    missing = [name for name in REQUIRED_VARIABLES if name not in result.data_vars]
    if missing:
        raise ExportError(f"the scene result lacks the variable(s) {', '.join(missing)}")
    for name in REQUIRED_VARIABLES:
        if result[name].dims != ("y", "x"):
            raise ExportError(f"{name!r} must have dims ('y', 'x'), has {result[name].dims}")
    if result["probabilities"].dtype.kind != "f":
        raise ExportError("'probabilities' must be floating point (NaN = no prediction)")
    try:
        return grid_of_variable(result, "probabilities")
    except GridError as error:
        raise ExportError(f"the scene result is not georeferenced: {error}") from None
