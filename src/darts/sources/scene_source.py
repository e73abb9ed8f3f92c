"""The seam every optical source plugs into: find scenes, describe them, fetch bands.

A *scene source* knows one remote service's catalogue and file formats (CDSE L2A
products, CDSE quarterly mosaics, Earth Engine's harmonized collection) and nothing
about storage: it hands decoded bands to a ``consume`` callback and never writes the
scene store. Staging (locks, atomic publish, verification, resume) is written once,
above the sources, in `darts.pipelines.staging`; the pipelines only choose a source.

Every source describes a scene as a STAC-like item document (``id``, ``geometry`` in
EPSG:4326, ``properties.datetime``, ``properties["grid:code"]``, and one ``assets``
entry per band key with ``proj:code``/``proj:shape``/``proj:transform``), because the
store keeps that document beside the bands and offline runs rebuild everything from
it: the scene grid, the auxiliary regions, the year, the sun position.

Band keys in the store are the same for every source (``B02_10m`` … ``B08_10m``, with
the source's quality band: ``SCL_20m`` or ``observations``), so the processing half
reads any source's scene alike; the source's DN encoding travels as attributes
(``raster:scale``, ``raster:offset``, ``nodata``) and `to_reflectance` applies it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

import xarray as xr

from darts.errors import DartsError

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from darts.grid.scene import Grid
    from darts.sources.query import SceneFilters, SceneSelection

# Called with (band key, decoded band on the scene grid), in the thread that called
# `SceneSource.fetch`, one band at a time: the stager writes the band before the next.
BandConsumer = Callable[[str, xr.DataArray], None]
# Called with (band key or request label, bytes received) as data arrives; from any thread.
FetchedCallback = Callable[[str, int], None]

# The store keys of the optical bands every run reads, whatever the source.
OPTICAL_KEYS: tuple[str, ...] = ("B02_10m", "B03_10m", "B04_10m", "B08_10m")


class BandFailed(DartsError):
    """Fetching or decoding one band of one scene failed: a problem of that scene only
    (a batch goes on). The message starts with the band's key."""

    def __init__(self, key: str, error: BaseException | str) -> None:
        message = str(error)
        prefix = f"band {key}: "
        super().__init__(message if message.startswith(prefix) else prefix + message)
        self.key = key


class MissingAssetError(DartsError):
    """A scene has no asset for a band that was asked for (a per-scene problem)."""


class SceneFetchError(DartsError):
    """A scene could not be fetched (not tied to one band): a problem of that scene only."""


@dataclass(frozen=True)
class SceneDescription:
    """What a source says about one scene before anything is fetched.

    download_bytes: bytes that fetching ``bands`` would transfer: exact when
        ``bytes_exact`` (the catalogue lists file sizes), else a sound estimate.
    """

    scene_id: str
    datetime: str | None
    footprint: BaseGeometry
    grid: Grid
    bands: tuple[str, ...]
    download_bytes: int
    bytes_exact: bool


def made(client: Any) -> Any:
    """``client`` itself, or what it makes when it is a factory (a callable that is not
    a client): sources take factories so that building one opens nothing."""
    if callable(client) and not hasattr(client, "get_object_bytes"):
        return client()
    return client


class SceneSource(Protocol):
    """One optical source. Constructing one opens no connection."""

    #: the ``--raw-data-source`` name, also the store's folder name
    name: str
    #: the store key of the band the quality mask is derived from
    quality_band: str
    #: what its scenes are, for messages ("Sentinel-2 L2A scenes")
    kind: str

    def discover(
        self, selection: SceneSelection, filters: SceneFilters, *, today: date | None = None
    ) -> list[dict[str, Any]]:
        """Scene documents for a selection, unique, ordered by (datetime, id). Scene ids
        are looked up (every unknown one named in one error); tiles and AOIs are searched
        with the filters that apply to this source."""
        ...

    def offline_ids(self, selection: SceneSelection) -> list[str]:
        """The ids of an id selection, validated in this source's id form; no connection.
        Tile and AOI selections are refused (they need a catalogue search)."""
        ...

    def band_keys(self, bands: Sequence[str] | None, scene: Mapping[str, Any] | None) -> list[str]:
        """Store keys for user band names (``None``: the defaults), the quality band
        included; checked against ``scene`` when given."""
        ...

    def describe(self, scene: Mapping[str, Any], keys: Sequence[str]) -> SceneDescription:
        """The scene's grid, footprint and what fetching ``keys`` would transfer."""
        ...

    def fetch(
        self,
        scene: Mapping[str, Any],
        keys: Sequence[str],
        consume: BandConsumer,
        *,
        on_fetched: FetchedCallback | None = None,
    ) -> None:
        """Fetch ``keys`` and hand each band, decoded onto the scene's 10 m grid, to
        ``consume`` in the calling thread. Per-scene failures raise `BandFailed` or
        `SceneFetchError`; credentials, offline and configuration problems raise as
        themselves (they would hit every scene alike)."""
        ...

    def notes(self, filters: SceneFilters) -> list[str]:
        """Things a user should know for this run (filters that do not apply, data
        caveats): shown once per run."""
        ...
