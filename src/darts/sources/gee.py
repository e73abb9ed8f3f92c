"""Source ``gee``: Sentinel-2 from Google Earth Engine's ``COPERNICUS/S2_SR_HARMONIZED``.

Scenes are Earth Engine images named by ``system:index``
(``20230701T194909_20230701T195350_T11XNA``). Discovery uses the REST ``listImages``
method (pages followed), with the time window, an AOI ``region`` and a property
filter on ``CLOUDY_PIXEL_PERCENTAGE``, ``SNOW_ICE_PERCENTAGE`` and ``MGRS_TILE``; ids
are looked up the same way, by their sensing time and tile. Each image becomes a
STAC-like scene document (`darts.sources.gee_scene`), so the store, the auxiliary
regions and the features read it like a CDSE item.

Pixels come from ``image:computePixels`` on the scene's 10 m grid, one band per NPY
answer. Earth Engine refuses a request above 48 MB of uncompressed pixels or 32,768 px
per side (HTTP 400), so each band is split into full-width strips that stay below both
(27 requests for a 10980² scene of 4 uint16 bands + SCL). Strips are fetched
concurrently, within ``--max-concurrency``, each retried on 429/5xx by the network
layer, and copied into their band as they arrive; a band is handed on (written) as
soon as it is complete, while the next bands download.

Values: the harmonized collection has the 2022 baseline offset removed, so
reflectance = DN / 10,000 with no offset, and DN 0 marks masked pixels (nodata).
Earth Engine's values are less comparable across years than CDSE's (the DARTS
guide's warning), which `notes` shows once per run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from darts.errors import ConfigError
from darts.grid.scene import DIMS, Grid, grid_of_item
from darts.net.earthengine import EarthEngineClient, affine_grid
from darts.sources.cdse_bands import normalize_bands
from darts.sources.decode import grid_coords
from darts.sources.gee_scene import (
    S2_COLLECTION,
    S2_PARENT,
    band_dtype,
    ee_band,
    ee_image_id,
    scene_document,
)
from darts.sources.query import SceneFilters, SceneSelection, date_spans, format_instant
from darts.sources.scene_docs import (
    DiscoveryError,
    describe_scene,
    discover_offline,
    item_datetime,
)
from darts.sources.scene_ids import validate_scene_ids
from darts.sources.scene_source import (
    BandConsumer,
    FetchedCallback,
    MissingAssetError,
    SceneDescription,
)
from darts.store.georef import band_attrs

if TYPE_CHECKING:
    from darts.net.google_auth import EarthEngineCredentials
    from darts.net.http import HttpClient

# computePixels limits (sources.md §3a). 48 MB is read as 48·10⁶ bytes, the stricter
# of the two readings, so no request is ever refused for size.
MAX_REQUEST_BYTES = 48_000_000
MAX_REQUEST_EDGE = 32_768
# Bands whose strips are requested before the current band is consumed: enough to keep
# the connections busy while a band is written, and at most three bands in memory.
BANDS_AHEAD = 2
COMPARABILITY_NOTE = (
    "Earth Engine (source gee): reflectance of different years comes from different "
    "processing baselines and is less comparable across years than CDSE's; prefer one "
    "source for a time series"
)


class GeeSource:
    """Sentinel-2 from Earth Engine. The client is built on first use, so a source for
    an offline run reads no credentials and opens nothing."""

    name = "gee"
    kind = "Sentinel-2 images (Earth Engine COPERNICUS/S2_SR_HARMONIZED)"
    quality_band = "SCL_20m"

    def __init__(
        self,
        *,
        http: HttpClient | None = None,
        base_url: str | None = None,
        project: str | None = None,
        credentials_file: Path | None = None,
        max_concurrency: int = 4,
        client: EarthEngineClient | None = None,
    ) -> None:
        self.http = http
        self.base_url = base_url
        self.project = project
        self.credentials_file = credentials_file
        self.max_concurrency = max(1, int(max_concurrency))
        self._ee = client

    # -- finding images -----------------------------------------------------------------

    def discover(
        self, selection: SceneSelection, filters: SceneFilters, *, today: date | None = None
    ) -> list[dict[str, Any]]:
        if not selection.needs_search:
            ids = self.offline_ids(selection)
            found = {doc["id"]: doc for doc in (self._lookup(i) for i in ids) if doc is not None}
            missing = [i for i in ids if i not in found]
            if missing:
                raise DiscoveryError(
                    f"{len(missing)} of {len(ids)} scene id(s) not found in Earth Engine "
                    f"collection {S2_COLLECTION}: {', '.join(missing)}; check the ids "
                    "(source gee needs the Earth Engine id) or remove them"
                )
            return _ordered(found.values())
        region = None
        if selection.aoi_file is not None:
            from darts.sources.aoi import aoi_geojson, read_aoi

            region = aoi_geojson(read_aoi(selection.aoi_file))
        spans = date_spans(filters, today or datetime.now(UTC).date())
        condition = property_filter(selection.tile_ids, filters)
        what = f"Earth Engine listing of {S2_COLLECTION}"
        found: dict[str, dict[str, Any]] = {}
        for start, end in spans:
            images = self.client().list_images(
                S2_PARENT,
                start_time=format_instant(start),
                # listImages' end is exclusive; a span's end is its last instant.
                end_time=format_instant(end + timedelta(microseconds=1)),
                region=region,
                property_filter=condition,
                purpose=what,
            )
            for image in images:
                document = scene_document(image)
                found.setdefault(document["id"], document)
        return _ordered(found.values())

    def offline_ids(self, selection: SceneSelection) -> list[str]:

        return discover_offline(selection, source=self.name)

    def notes(self, filters: SceneFilters) -> list[str]:
        return [COMPARABILITY_NOTE]

    def _lookup(self, scene_id: str) -> dict[str, Any] | None:
        """The image ``scene_id``, found by its sensing second and tile (listImages has
        no lookup by id; the two narrow it to the one image)."""
        (scene_id,) = validate_scene_ids([scene_id], self.name)
        try:
            sensing = datetime.strptime(scene_id[:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        except ValueError:
            # Well-formed digits that name no real moment: no image was taken then.
            return None
        tile = scene_id.rsplit("_T", 1)[1]
        images = self.client().list_images(
            S2_PARENT,
            start_time=format_instant(sensing),
            end_time=format_instant(sensing + timedelta(seconds=1)),
            property_filter=f'properties.MGRS_TILE = "{tile}"',
            purpose=f"Earth Engine lookup of image {scene_id}",
        )
        for image in images:
            if ee_image_id(image) == scene_id:
                return scene_document(image)
        return None

    # -- bands --------------------------------------------------------------------------

    def band_keys(self, bands: Sequence[str] | None, scene: Mapping[str, Any] | None) -> list[str]:
        keys = normalize_bands(list(bands) if bands else None)
        unknown = [key for key in keys if ee_band(key) is None]
        if unknown:
            raise ConfigError(
                f"band(s) {', '.join(unknown)} are not in Earth Engine's {S2_COLLECTION}: it "
                "has each band at its native resolution only (e.g. B02_10m, B05_20m, B01_60m)"
            )
        if scene is not None:
            assets = scene.get("assets") or {}
            absent = [key for key in keys if key not in assets]
            if absent:
                raise MissingAssetError(
                    f"Earth Engine image {scene.get('id')!r} has no band {', '.join(absent)}"
                )
        return keys

    def describe(self, scene: Mapping[str, Any], keys: Sequence[str]) -> SceneDescription:
        grid = grid_of_item(scene)
        # NPY answers are uncompressed: the payload is the pixels plus a small header.
        payload = sum(
            (r1 - r0) * (c1 - c0) * np.dtype(band_dtype(key)).itemsize
            for key, blocks in request_plan(keys, grid.shape).items()
            for r0, r1, c0, c1 in blocks
        )
        return describe_scene(scene, keys, grid, payload, bytes_exact=False)

    # -- fetching -----------------------------------------------------------------------

    def fetch(
        self,
        scene: Mapping[str, Any],
        keys: Sequence[str],
        consume: BandConsumer,
        *,
        on_fetched: FetchedCallback | None = None,
    ) -> None:
        """Each band's strips (`request_plan`), fetched concurrently in band order;
        each band goes to ``consume`` as soon as its strips are in, while the next
        bands download. A failed strip fails the scene (its network error)."""
        scene_id = str(scene.get("id"))
        grid = grid_of_item(scene)
        client = self.client()
        expression = image_expression(scene_id)
        plan = request_plan(keys, grid.shape)
        planes: dict[str, np.ndarray] = {}

        def fetch_block(key: str, block: tuple[int, int, int, int]) -> None:
            r0, r1, c0, c1 = block
            band = str(ee_band(key))
            pixels = client.compute_pixels(
                expression,
                grid=block_grid(grid, block),
                band_ids=[band],
                purpose=f"band {key} of Sentinel-2 image {scene_id}, rows {r0}-{r1}",
            )
            planes[key][r0:r1, c0:c1] = pixels[band]
            if on_fetched is not None:
                on_fetched(key, pixels.nbytes)

        coords = grid_coords(grid)
        pending: dict[str, list[Future[None]]] = {}
        workers = min(self.max_concurrency, sum(len(blocks) for blocks in plan.values()))
        with ThreadPoolExecutor(max(1, workers), "darts-gee-fetch") as pool:

            def start(key: str) -> None:
                planes[key] = np.zeros(grid.shape, dtype=band_dtype(key))
                pending[key] = [pool.submit(fetch_block, key, b) for b in plan[key]]

            try:
                for key in list(keys)[:BANDS_AHEAD]:
                    start(key)
                for index, key in enumerate(keys):
                    for future in pending.pop(key):
                        future.result()
                    # The pool works in submission order: the next bands download
                    # while this one is consumed (written to the store).
                    if index + BANDS_AHEAD < len(keys):
                        start(keys[index + BANDS_AHEAD])
                    values = planes.pop(key)
                    consume(key, _band_array(key, values, scene, coords, grid))
                    del values
            finally:
                for futures in pending.values():
                    for future in futures:
                        future.cancel()
                planes.clear()

    def client(self) -> EarthEngineClient:
        """The Earth Engine client, built (credentials read) on first use."""
        if self._ee is None:
            from darts.net.google_auth import EarthEngineCredentials

            if self.http is None or not self.base_url:
                raise ValueError("GeeSource needs an HttpClient and the Earth Engine URL")
            credentials: EarthEngineCredentials = EarthEngineCredentials.from_settings(
                self.credentials_file, self.project
            )
            self._ee = EarthEngineClient(self.base_url, self.project, credentials, self.http)
        return self._ee


def property_filter(tile_ids: Sequence[str], filters: SceneFilters) -> str | None:
    """The ``filter`` of a listImages call: tiles, cloud and snow cover."""
    terms: list[str] = []
    if tile_ids:
        tiles = " OR ".join(f'properties.MGRS_TILE = "{tile}"' for tile in tile_ids)
        terms.append(f"({tiles})" if len(tile_ids) > 1 else tiles)
    # A maximum of 100 is no filter (an image lacking the property is kept).
    if filters.cloud_filter:
        terms.append(f"properties.CLOUDY_PIXEL_PERCENTAGE <= {filters.max_cloud_cover:g}")
    if filters.snow_filter:
        terms.append(f"properties.SNOW_ICE_PERCENTAGE <= {filters.max_snow_cover:g}")
    return " AND ".join(terms) or None


def image_expression(scene_id: str) -> dict[str, Any]:
    """``ee.Image("COPERNICUS/S2_SR_HARMONIZED/<id>")`` in Earth Engine's serialized form."""
    load = {
        "functionInvocationValue": {
            "functionName": "Image.load",
            "arguments": {"id": {"constantValue": f"{S2_COLLECTION}/{scene_id}"}},
        }
    }
    return {"result": "0", "values": {"0": load}}


def request_blocks(
    shape: tuple[int, int], bytes_per_pixel: int, *, max_bytes: int = MAX_REQUEST_BYTES
) -> list[tuple[int, int, int, int]]:
    """(row0, row1, col0, col1) blocks covering ``shape``, each within computePixels'
    limits: full-width strips (fewest requests), split in columns only past 32,768 px."""
    rows, cols = shape
    width = min(cols, MAX_REQUEST_EDGE)
    height = max(1, min(rows, MAX_REQUEST_EDGE, max_bytes // max(1, width * bytes_per_pixel)))
    if height * width * bytes_per_pixel > max_bytes:
        raise ConfigError(
            f"{bytes_per_pixel} bytes per pixel do not fit one Earth Engine request row of "
            f"{width} px; request fewer bands"
        )
    return [
        (r0, min(r0 + height, rows), c0, min(c0 + width, cols))
        for r0 in range(0, rows, height)
        for c0 in range(0, cols, width)
    ]


def request_plan(
    keys: Sequence[str], shape: tuple[int, int]
) -> dict[str, list[tuple[int, int, int, int]]]:
    """The computePixels requests of a scene: one band per request, in strips within
    the limits. Per band rather than all bands at once, so a band is complete (and can
    be written) while the next ones are still downloading; 27 requests for a 10980²
    scene of B02/B03/B04/B08 + SCL."""
    return {key: request_blocks(shape, np.dtype(band_dtype(key)).itemsize) for key in keys}


def block_grid(grid: Grid, block: tuple[int, int, int, int]) -> dict[str, Any]:
    r0, r1, c0, c1 = block
    a, b, c, d, e, f = grid.transform
    transform = (a, b, c + c0 * a + r0 * b, d, e, f + c0 * d + r0 * e)
    return affine_grid(c1 - c0, r1 - r0, transform, str(grid.crs_code))


def _band_array(
    key: str, values: np.ndarray, scene: Mapping[str, Any], coords: dict[str, Any], grid: Grid
) -> xr.DataArray:
    asset = (scene.get("assets") or {}).get(key) or {}
    attrs: dict[str, Any] = {
        k: asset[k] for k in ("raster:scale", "raster:offset", "nodata") if k in asset
    }
    attrs["darts:asset"] = asset.get("earthengine:band", ee_band(key))
    source = asset.get("proj:transform")
    attrs["darts:source_resolution"] = abs(float(source[0])) if source else grid.resolution[0]
    attrs["darts:resampling"] = (
        "none" if attrs["darts:source_resolution"] == grid.resolution[0] else "nearest"
    )
    attrs.update({k: v for k, v in band_attrs(grid).items() if k != "coordinates"})
    return xr.DataArray(values, dims=DIMS, coords=coords, name=key, attrs=attrs)


def _ordered(documents: Any) -> list[dict[str, Any]]:
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(documents, key=lambda d: (item_datetime(d) or far, d["id"]))
