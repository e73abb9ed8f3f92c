"""How a :class:`CubeSpec` is laid out in a Zarr group, and how a stored one is checked.

The cube group's attributes hold the spec under ``darts_cube``; each variable is a 2-D
array ``(y, x)`` over the whole grid, chunked ``chunk × chunk`` and Blosc-compressed
(in ``block × block`` inner chunks of a sharded array when the compression names a block),
each chunk (or inner chunk) followed by its CRC-32C (:mod:`darts.store.checksum`; cubes
made before it have none and are read as they are);
``_tiles`` holds the per-tile records (see :mod:`darts.store.datacube.records`).

The cube is CF-georeferenced, so that xarray + rioxarray (or any CF-aware reader) open
it without DARTS: 1-D ``x`` and ``y`` arrays of pixel-centre coordinates, a scalar
``spatial_ref`` grid mapping (WKT, GDAL ``GeoTransform``), and on every variable
``grid_mapping``/``coordinates`` pointing at it, plus ``scale_factor`` and
``_FillValue`` on float variables (xarray then decodes stored centimetres to float32
metres). These are written once, with the cube; a cube of an earlier darts version
gets them on its next write (:func:`add_georeferencing`). DARTS' own reader never
reads them: it computes coordinates from the grid and reads the variables only.
"""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import numpy as np
import zarr
from pyproj import CRS
from zarr.abc.codec import BytesBytesCodec
from zarr.codecs import BloscCodec

from darts.grid.cube import CubeGrid
from darts.grid.scene import GRID_MAPPING, Grid, crs_code
from darts.store.checksum import codec as checksum_codec
from darts.store.datacube.errors import LAYOUT_VERSION_SETTING, STORED_SCALE
from darts.store.datacube.records import TILES_GROUP
from darts.store.datacube.spec import CubeCompression, CubeSpec, CubeVariable
from darts.store.georef import axis_attributes, spatial_ref_attrs

SPEC_KEY = "darts_cube"
# Bumped when the layout changes in a way old code cannot read. (The CF coordinates
# did not bump it: old code ignores them, and new code writes them when missing.)
LAYOUT_VERSION = 1
# The arrays of the CF georeferencing, in the cube group beside the variables.
# (Named in RESERVED_NAMES, so that no variable takes one.)
GEOREF_ARRAYS = ("y", "x", GRID_MAPPING)
CF_CONVENTIONS = "CF-1.8"
# Coordinate arrays are cut into chunks of about this many values (8 MiB of float64,
# ~40 kB compressed: pixel centres are an arithmetic sequence): one chunk per axis for
# a 10 m ArcticDEM cube (740,020 × 750,020 px), four for a 2 m one.
_COORDINATE_CHUNK_VALUES = 2**20


def spec_to_attrs(spec: CubeSpec) -> dict[str, Any]:
    return {
        SPEC_KEY: {
            "layout_version": LAYOUT_VERSION,
            "kind": spec.kind,
            "grid": spec.grid.to_attrs(),
            "chunk": spec.chunk,
            "variables": [_variable_attrs(v) for v in spec.variables],
            "compression": {
                "codec": spec.compression.codec,
                "level": spec.compression.level,
                "shuffle": spec.compression.shuffle,
                "block": spec.compression.block,
            },
            "attrs": spec.attrs,
        }
    }


def stored_spec(attrs: dict[str, Any]) -> dict[str, Any] | None:
    """The spec attributes of a cube group, or None if the group is not a cube."""
    raw = attrs.get(SPEC_KEY)
    return raw if isinstance(raw, dict) else None


def spec_differences(stored: dict[str, Any], spec: CubeSpec) -> dict[str, tuple[object, object]]:
    """What differs between a stored spec and ``spec``: name -> (stored, wanted).

    Only what decides the meaning of a pixel counts (kind, grid, chunking, variables
    with dtype and fill value); compression and free-form attributes do not.
    """
    wanted = spec_to_attrs(spec)[SPEC_KEY]
    differences: dict[str, tuple[object, object]] = {}
    if stored.get("layout_version") != LAYOUT_VERSION:
        differences[LAYOUT_VERSION_SETTING] = (stored.get("layout_version"), LAYOUT_VERSION)
    if stored.get("kind") != spec.kind:
        differences["kind"] = (stored.get("kind"), spec.kind)
    stored_grid = stored.get("grid") or {}
    for key, value in wanted["grid"].items():
        if not _same(stored_grid.get(key), value):
            differences[f"grid {key}"] = (stored_grid.get(key), value)
    if stored.get("chunk") != spec.chunk:
        differences["chunk"] = (stored.get("chunk"), spec.chunk)
    have = _describe_variables(stored.get("variables") or [])
    want = _describe_variables(wanted["variables"])
    if have != want:
        differences["variables"] = (", ".join(have), ", ".join(want))
        if _unscaled(stored.get("variables") or []) == _unscaled(wanted["variables"]):
            # Only how values are stored differs: a cube of an older darts version.
            differences[STORED_SCALE] = differences.pop("variables")
    return differences


def _unscaled(variables: list[dict[str, Any]]) -> list[str]:
    return _describe_variables([{k: v for k, v in d.items() if k != "scale"} for d in variables])


def stored_grid(stored: dict[str, Any]) -> CubeGrid:
    return CubeGrid.from_attrs(stored["grid"])


def create_cube_group(root: zarr.Group, group: str, spec: CubeSpec) -> zarr.Group:
    """Create the cube's group (or fill the root), its arrays, the CF georeferencing
    and the records group."""
    cube = root.create_group(group) if group else root
    cube.attrs.update({**spec_to_attrs(spec), "Conventions": CF_CONVENTIONS})
    shape = (spec.grid.height, spec.grid.width)
    block = spec.compression.block
    layout: dict[str, Any] = {"chunks": (spec.chunk, spec.chunk)}
    if block is not None:
        layout = {"shards": (spec.chunk, spec.chunk), "chunks": (block, block)}
    for variable in spec.variables:
        attributes = {**variable.attrs, **variable_cf_attrs(variable)}
        cube.create_array(
            variable.name,
            shape=shape,
            **layout,
            dtype=np.dtype(variable.dtype),
            fill_value=variable.stored_fill,
            compressors=chunk_codecs(spec.compression, np.dtype(variable.dtype)),
            dimension_names=("y", "x"),
            attributes=attributes,
        )
    _write_georeferencing(cube, spec, GEOREF_ARRAYS)
    cube.create_group(TILES_GROUP)
    return cube


def variable_cf_attrs(variable: CubeVariable) -> dict[str, Any]:
    """The CF attributes of a variable's array, so that generic readers decode and
    place its pixels as darts does."""
    attributes: dict[str, Any] = {"grid_mapping": GRID_MAPPING, "coordinates": GRID_MAPPING}
    if variable.scale is not None:
        # Stored whole numbers × scale_factor = values. xarray decodes in the dtype of
        # the variable (float32 metres for the DEM), as _FillValue is given (below).
        attributes["scale_factor"] = 1 / variable.scale
    if np.dtype(variable.dtype).kind == "f":
        # In xarray's Zarr v3 spelling (the float64 bytes, base64): it masks the fill
        # value (NaN, already NaN) and keeps float32 float32 instead of decoding the
        # scale in float64. Integer variables have none: they stay integers.
        packed = struct.pack("<d", float(variable.stored_fill))
        attributes["_FillValue"] = base64.standard_b64encode(packed).decode("ascii")
    return attributes


def georeference(spec: CubeSpec) -> Grid:
    """The cube's whole grid as a scene-style :class:`Grid` (CRS, GDAL transform)."""
    grid = spec.grid
    crs = CRS.from_user_input(grid.crs)
    transform = (grid.res, 0.0, grid.x0, 0.0, -grid.res, grid.y0)
    return Grid((grid.height, grid.width), transform, crs_code(crs) or grid.crs, crs.to_wkt())


def georeferencing_keys(group: str) -> list[str]:
    """The metadata keys of the georeferencing arrays of the cube at ``group``: all
    present in a cube made (or written) by this darts version."""
    prefix = f"{group}/" if group else ""
    return [f"{prefix}{name}/zarr.json" for name in GEOREF_ARRAYS]


def add_georeferencing(cube: zarr.Group, spec: CubeSpec) -> None:
    """Give a cube of an earlier darts version (which stored none) the CF
    georeferencing: the missing coordinate arrays, and the CF attributes of the
    variables and the group. Leaves the variables' pixels and the spec untouched."""
    present = set(cube.array_keys())
    _write_georeferencing(cube, spec, tuple(n for n in GEOREF_ARRAYS if n not in present))
    for variable in spec.variables:
        array = cube[variable.name]
        wanted = variable_cf_attrs(variable)
        if any(array.attrs.get(key) != value for key, value in wanted.items()):
            array.update_attributes(wanted)
    if cube.attrs.get("Conventions") != CF_CONVENTIONS:
        cube.update_attributes({"Conventions": CF_CONVENTIONS})


def _write_georeferencing(cube: zarr.Group, spec: CubeSpec, names: tuple[str, ...]) -> None:
    grid = spec.grid
    georef = georeference(spec)
    crs = CRS.from_wkt(georef.crs_wkt)
    if GRID_MAPPING in names:
        # A scalar whose attributes are the grid mapping; its one value is never
        # written (it reads as the fill value 0, as rioxarray writes it).
        cube.create_array(
            GRID_MAPPING,
            shape=(),
            dtype="int64",
            fill_value=0,
            dimension_names=(),
            attributes=spatial_ref_attrs(georef),
        )
    axes = {"y": grid.y_coords(grid.full), "x": grid.x_coords(grid.full)}
    for dim, values in axes.items():
        if dim not in names:
            continue
        # The same values as darts' own reads (CubeGrid.x_coords/y_coords).
        array = cube.create_array(
            dim,
            shape=values.shape,
            chunks=(_coordinate_chunk(spec, len(values)),),
            dtype="float64",
            fill_value=math.nan,
            compressors=[
                BloscCodec(cname="zstd", clevel=5, shuffle="shuffle", typesize=8),
                checksum_codec(),
            ],
            dimension_names=(dim,),
            attributes=axis_attributes(dim, crs),
        )
        array[:] = values


def _coordinate_chunk(spec: CubeSpec, length: int) -> int:
    """About ``_COORDINATE_CHUNK_VALUES``, a multiple of the cube's chunk edge (a
    coordinate chunk then spans whole variable chunks), at most the axis."""
    chunk = max(spec.chunk, _COORDINATE_CHUNK_VALUES // spec.chunk * spec.chunk)
    return max(1, min(chunk, length))


def chunk_codecs(compression: CubeCompression, dtype: np.dtype[Any]) -> list[BytesBytesCodec]:
    """A variable's bytes-to-bytes codecs: Blosc, then the CRC-32C every read checks."""
    return [blosc_codec(compression, dtype), checksum_codec()]


def blosc_codec(compression: CubeCompression, dtype: np.dtype[Any]) -> BloscCodec:
    shuffle = compression.shuffle
    if shuffle == "auto":
        shuffle = "bitshuffle" if dtype.itemsize == 1 else "shuffle"
    return BloscCodec(
        cname=compression.codec,
        clevel=compression.level,
        shuffle=shuffle,
        typesize=dtype.itemsize,
    )


def encode_fill(dtype: str, value: float | int) -> float | int | str:
    """A fill value as JSON can hold it (NaN and infinities as strings)."""
    if np.dtype(dtype).kind == "f":
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return number
    return int(value)


def _variable_attrs(variable: CubeVariable) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "name": variable.name,
        "dtype": np.dtype(variable.dtype).name,
        "fill_value": encode_fill(variable.dtype, variable.fill_value),
    }
    if variable.scale is not None:
        attrs["scale"] = variable.scale
    return attrs


def _describe_variables(variables: list[dict[str, Any]]) -> list[str]:
    # Order-free: a cube is the same cube whichever order its variables are listed in.
    return sorted(
        f"{v.get('name')}({v.get('dtype')}, fill {v.get('fill_value')}"
        + (f", stored ×{v['scale']}" if v.get("scale") is not None else "")
        + ")"
        for v in variables
    )


def _same(stored: object, wanted: object) -> bool:
    if isinstance(stored, int | float) and isinstance(wanted, int | float):
        return float(stored) == float(wanted)
    return stored == wanted
