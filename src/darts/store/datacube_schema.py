"""How a :class:`CubeSpec` is laid out in a Zarr group, and how a stored one is checked.

The cube group's attributes hold the spec under ``darts_cube``; each variable is a 2-D
array ``(y, x)`` over the whole grid, chunked ``chunk × chunk`` and Blosc-compressed
(in ``block × block`` inner chunks of a sharded array when the compression names a block);
``_tiles`` holds the per-tile records (see :mod:`darts.store.datacube_records`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from darts.grid.cube import CubeGrid
from darts.store.cube_spec import CubeCompression, CubeSpec, CubeVariable
from darts.store.datacube_errors import LAYOUT_VERSION_SETTING, STORED_SCALE
from darts.store.datacube_records import TILES_GROUP

SPEC_KEY = "darts_cube"
# Bumped when the layout changes in a way old code cannot read.
LAYOUT_VERSION = 1


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
    """Create the cube's group (or fill the root), its arrays and the records group."""
    cube = root.create_group(group) if group else root
    cube.attrs.update(spec_to_attrs(spec))
    shape = (spec.grid.height, spec.grid.width)
    block = spec.compression.block
    layout: dict[str, Any] = {"chunks": (spec.chunk, spec.chunk)}
    if block is not None:
        layout = {"shards": (spec.chunk, spec.chunk), "chunks": (block, block)}
    for variable in spec.variables:
        attributes = dict(variable.attrs)
        if variable.scale is not None:
            # The CF convention, so that xarray and other generic readers decode the
            # stored whole numbers to values as darts does.
            attributes["scale_factor"] = 1 / variable.scale
        cube.create_array(
            variable.name,
            shape=shape,
            **layout,
            dtype=np.dtype(variable.dtype),
            fill_value=variable.stored_fill,
            compressors=[blosc_codec(spec.compression, np.dtype(variable.dtype))],
            dimension_names=("y", "x"),
            attributes=attributes,
        )
    cube.create_group(TILES_GROUP)
    return cube


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
