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

from darts.grid.scene import grid_of_item
from darts.sources.cdse import CDSE_STAC_URL, discover_cdse
from darts.sources.cdse_bands import SCL_KEY, resolve_bands
from darts.sources.cdse_download import fetch_bands
from darts.sources.scene_docs import describe_scene, discover_offline, file_sizes
from darts.sources.scene_source import BandConsumer, FetchedCallback, SceneDescription, made

if TYPE_CHECKING:
    from collections.abc import Callable

    from darts.net.http import HttpClient
    from darts.net.s3 import S3Client
    from darts.sources.query import SceneFilters, SceneSelection


class CdseAccess:
    """What the two CDSE sources share: the STAC API for finding scenes, S3 for their
    files. ``s3`` is a client or a factory called on the first fetch."""

    name = "cdse"

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

    def offline_ids(self, selection: SceneSelection) -> list[str]:
        return discover_offline(selection, source=self.name)

    def _catalogue(self) -> HttpClient:
        if self.http is None:
            raise ValueError(f"the {self.name} source needs an HttpClient to search")
        return self.http

    def _client(self) -> S3Client:
        if self._s3 is None:
            raise ValueError(f"the {self.name} source needs an S3 client to fetch")
        self._s3 = made(self._s3)
        return self._s3


class CdseSource(CdseAccess):
    """CDSE L2A scenes."""

    name = "cdse"
    kind = "Sentinel-2 L2A scenes"
    quality_band = SCL_KEY

    def discover(
        self, selection: SceneSelection, filters: SceneFilters, *, today: date | None = None
    ) -> list[dict[str, Any]]:
        items = discover_cdse(
            selection, filters, stac_url=self.stac_url, net=self._catalogue(), today=today
        )
        return [dict(item) for item in items]

    def band_keys(self, bands: Sequence[str] | None, scene: Mapping[str, Any] | None) -> list[str]:
        return resolve_bands(bands, scene)

    def describe(self, scene: Mapping[str, Any], keys: Sequence[str]) -> SceneDescription:
        size, exact = file_sizes(scene, keys)
        return describe_scene(scene, keys, grid_of_item(scene), size, exact)

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
