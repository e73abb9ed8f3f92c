"""The procedural datacubes: large fixed grids in Icechunk, filled one source tile at a
time (see :mod:`darts.store.datacube.cube`).

Modules, each one part of the cube:

- ``spec``: what a cube holds and the interface of the sources that fill it;
- ``cube``: :class:`Datacube`, opening, commits, reads;
- ``fill``: fetching tiles a few at a time, writing them one at a time;
- ``tile_copy``: a staged tile into the cube arrays in bounded memory;
- ``read``: a pixel window, straight from the chunks it needs;
- ``records``: the per-tile records readers trust;
- ``verify``: every recorded tile read chunk by chunk, records against arrays;
- ``file_record``: every file of a local repository, its size and SHA-256, checked by
  ``verify``;
- ``tile_removal``: tiles' records and pixels dropped in one commit;
- ``reclaim``: their space freed by Icechunk's expiry and garbage collection;
- ``cube_copy``: recorded tiles copied from one cube into another;
- ``schema``: the Zarr layout and its CF georeferencing;
- ``errors``: the errors, each one line for the user;
- ``aio``: the event loop the store's coroutines run on;
- ``testing``: a deterministic tile source for tests and benchmarks.

The names below are the cube's API, so callers need one import for it. They are
imported lazily: sources import ``darts.store.datacube.spec`` (numpy only), which must
not pull in Icechunk, zarr and xarray with ``Datacube``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from darts._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "CorruptCubeChunkError": "errors",
    "CubeCommitError": "errors",
    "CubeFillError": "errors",
    "CubeMismatchError": "errors",
    "CubeNotFoundError": "errors",
    "CubeRegionError": "errors",
    "CubeStorageError": "errors",
    "Datacube": "cube",
    "DatacubeError": "errors",
    "IncompleteCubeError": "errors",
    "NotACubeError": "errors",
    "TileRecord": "records",
}

__all__ = [
    "CorruptCubeChunkError",
    "CubeCommitError",
    "CubeFillError",
    "CubeMismatchError",
    "CubeNotFoundError",
    "CubeRegionError",
    "CubeStorageError",
    "Datacube",
    "DatacubeError",
    "IncompleteCubeError",
    "NotACubeError",
    "TileRecord",
]

if TYPE_CHECKING:
    from darts.store.datacube.cube import Datacube
    from darts.store.datacube.errors import (
        CorruptCubeChunkError,
        CubeCommitError,
        CubeFillError,
        CubeMismatchError,
        CubeNotFoundError,
        CubeRegionError,
        CubeStorageError,
        DatacubeError,
        IncompleteCubeError,
        NotACubeError,
    )
    from darts.store.datacube.records import TileRecord

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
