"""Source ``cdse``: Sentinel-2 L2A products from the CDSE STAC API and S3.

Discovery is `darts.sources.cdse.discover_cdse`; band names are the product's asset keys
(`darts.sources.cdse_bands`); fetching is `darts.sources.cdse_download.fetch_bands`
(whole JP2 files, verified, decoded in memory). This class only puts them behind the
`SceneSource` protocol. Clients are made on first use, so a source built for an offline
run opens nothing and needs no credentials.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from darts.sources.cdse import CDSE_STAC_URL, discover_cdse
from darts.sources.cdse_bands import SCL_KEY, resolve_bands
from darts.sources.cdse_download import fetch_bands
from darts.sources.decode import scene_grid
from darts.sources.scene_docs import discover_offline, item_datetime, scene_footprint
from darts.sources.scene_source import BandConsumer, FetchedCallback, SceneDescription

if TYPE_CHECKING:
    from collections.abc import Callable

    from darts.net.http import HttpClient
    from darts.net.s3 import S3Client
    from darts.sources.query import SceneFilters, SceneSelection


class CdseSource:
    """CDSE L2A scenes. ``s3`` is a client or a factory called on the first fetch."""

    name = "cdse"
    kind = "Sentinel-2 L2A scenes"
    quality_band = SCL_KEY

    def __init__(
        self,
        *,
        stac_url: str = CDSE_STAC_URL,
        http: HttpClient | None = None,
        s3: S3Client | Callable[[], S3Client] | None = None,
    ) -> None:
        self.stac_url = stac_url
        self.http = http
        self._s3 = s3

    def discover(
        self, selection: SceneSelection, filters: SceneFilters, *, today: date | None = None
    ) -> list[dict[str, Any]]:
        if self.http is None:
            raise ValueError("CdseSource.discover needs an HttpClient")
        items = discover_cdse(
            selection, filters, stac_url=self.stac_url, net=self.http, today=today
        )
        return [dict(item) for item in items]

    def offline_ids(self, selection: SceneSelection) -> list[str]:
        return discover_offline(selection, source=self.name)

    def band_keys(self, bands: Sequence[str] | None, scene: Mapping[str, Any] | None) -> list[str]:
        return resolve_bands(bands, scene)

    def describe(self, scene: Mapping[str, Any], keys: Sequence[str]) -> SceneDescription:
        assets = scene.get("assets") or {}
        sizes = [(assets.get(key) or {}).get("file:size") for key in keys]
        moment = item_datetime(dict(scene))
        return SceneDescription(
            scene_id=str(scene.get("id")),
            datetime=moment.isoformat().replace("+00:00", "Z") if moment else None,
            footprint=scene_footprint(dict(scene)),
            grid=scene_grid(scene),
            bands=tuple(keys),
            download_bytes=sum(int(size or 0) for size in sizes),
            bytes_exact=all(size is not None for size in sizes),
        )

    def fetch(
        self,
        scene: Mapping[str, Any],
        keys: Sequence[str],
        consume: BandConsumer,
        *,
        on_fetched: FetchedCallback | None = None,
    ) -> None:
        fetch_bands(scene, keys, self._client(), consume, on_fetched=on_fetched)

    def notes(self, filters: SceneFilters) -> list[str]:
        return []

    def _client(self) -> S3Client:
        if self._s3 is None:
            raise ValueError("CdseSource.fetch needs an S3 client")
        if callable(self._s3) and not hasattr(self._s3, "get_object_bytes"):
            self._s3 = self._s3()
        return self._s3  # type: ignore[return-value]
