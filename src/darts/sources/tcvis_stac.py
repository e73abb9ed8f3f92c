"""TCVIS tiles from a mirror published as STAC + COG.

The mirror holds one collection per trend period, ``tcvis-<period>``, whose items carry
a ``data`` asset: a 3-band uint8 COG (brightness, greenness, wetness) on the Earth
Engine export grid. A tile is fetched by searching the items that intersect it and
range-reading the tile's window from each COG; pixels are copied, never resampled,
so the cube holds the same values as when filled from Earth Engine. The COG bytes
travel through the source's `HttpClient` (`darts.net.cog`), under the retry policy of
every other transfer; GDAL only decodes them.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from darts.errors import DartsError
from darts.grid.cube import Window
from darts.net.cog import RemoteCog
from darts.net.errors import NetworkError
from darts.net.http import HttpClient
from darts.net.settings import NetworkSettings
from darts.net.stac import open_stac
from darts.sources.tcvis_tiles import (
    TCVIS_BANDS,
    check_period,
    tcvis_spec,
    tcvis_tile_window,
    tcvis_tiles_for,
)
from darts.store.datacube.spec import CubeSpec, TileBuffer, TileFetch

# An item's pixel edges may differ from the cube's by float noise only; anything more
# means the COG is on another grid and copying it would shift every pixel.
_ALIGN_TOLERANCE_PX = 1e-3


class TcvisMirrorError(NetworkError, DartsError):
    """A mirror item cannot be used as TCVIS (wrong grid, bands or assets)."""


def collection_id(period: str) -> str:
    return f"tcvis-{period}"


class TcvisStacSource:
    """TCVIS of one trend period, read from a STAC + COG mirror. Network only in ``fetch``."""

    def __init__(
        self,
        period: str,
        stac_url: str,
        net: NetworkSettings | None = None,
        spec: CubeSpec | None = None,
        *,
        http: HttpClient | None = None,
    ) -> None:
        self.period = check_period(period)
        self.stac_url = stac_url
        self.net = net or (http.settings if http is not None else NetworkSettings())
        self.spec = spec or tcvis_spec()
        self.collection = collection_id(period)
        self.description = f"TCVIS {period} (STAC mirror {stac_url}, {self.collection})"
        # Creating an HttpClient opens nothing; it is shared by all tile fetches so they
        # share its concurrency bound.
        self._http = http or HttpClient(self.net)
        self._client: Any = None
        self._client_lock = threading.Lock()

    def tiles_for(self, window: Window) -> list[str]:
        return tcvis_tiles_for(self.spec, window)

    def tile_window(self, tile_id: str) -> Window:
        return tcvis_tile_window(self.spec, tile_id)

    def fetch(self, tile_id: str, into: TileBuffer) -> TileFetch:
        window = self.tile_window(tile_id)
        purpose = f"TCVIS {self.period} tile {tile_id}"
        items = self._search(window, purpose)
        read: list[dict[str, Any]] = []
        filled = False
        for item in items:
            asset = (item.get("assets") or {}).get("data")
            if not asset or not asset.get("href"):
                raise TcvisMirrorError(
                    f"TCVIS mirror item {item.get('id')!r} in {self.stac_url} has no 'data' "
                    "asset; the mirror must publish each COG as asset 'data'."
                )
            href = str(asset["href"])
            wrote = self._read_item(item["id"], href, window, into, purpose)
            if wrote is None:
                continue  # the item only touches the tile's edge
            filled = filled or wrote
            record = {"id": item["id"], "href": href}
            if asset.get("file:checksum"):
                record["file:checksum"] = asset["file:checksum"]
            read.append(record)
        into.flush()
        source = {
            "service": "stac",
            "url": self.stac_url,
            "collection": self.collection,
            "items": read,
        }
        return TileFetch("filled" if read and filled else "empty", source)

    # -- internals --------------------------------------------------------------------

    def _search(self, window: Window, purpose: str) -> list[dict[str, Any]]:
        with self._client_lock:
            if self._client is None:
                self._client = open_stac(self.stac_url, self._http, f"{purpose}: open the mirror")
            client = self._client
        west, south, east, north = self.spec.grid.bounds_of(window)
        # The grid's edge pixels reach a hair past ±180° (edges sit on multiples of the
        # pixel size); STAC APIs reject such a bbox, and nothing lies beyond anyway.
        bbox = [max(west, -180.0), max(south, -90.0), min(east, 180.0), min(north, 90.0)]
        search = client.search(collections=[self.collection], bbox=bbox)
        # Later items are drawn over earlier ones, as Earth Engine's mosaic() does;
        # sorting makes that order independent of the server's.
        return sorted(search.items_as_dicts(), key=lambda item: str(item["id"]))

    def _read_item(
        self, item_id: str, href: str, window: Window, into: TileBuffer, purpose: str
    ) -> bool | None:
        """Copy the item's pixels inside ``window`` into ``into``; None if it has none
        there, else whether any non-zero pixel was read."""
        from rasterio.windows import Window as RasterioWindow

        if urlsplit(href).scheme not in ("http", "https"):
            raise TcvisMirrorError(
                f"TCVIS mirror item {item_id!r} in {self.stac_url} has the href {href!r}; "
                "the mirror must publish its COGs over http(s)."
            )
        with RemoteCog.open(self._http, href, purpose=f"{purpose}: read {item_id}") as cog:
            dataset = cog.dataset
            extent = self._cube_extent(item_id, dataset)
            part = extent.intersection(window)
            if part.is_empty:
                return None
            indexes = _band_indexes(item_id, dataset)
            data = cog.read(
                indexes,
                RasterioWindow(
                    part.col0 - extent.col0, part.row0 - extent.row0, part.width, part.height
                ),
            )
        target = part.relative_to(window).slices
        for band, variable in enumerate(TCVIS_BANDS):
            values = data[band]
            # 0 is "no data" in TCVIS: an item never erases pixels another item set.
            np.copyto(into.arrays[variable][target], values, where=values != 0)
        return bool(data.any())

    def _cube_extent(self, item_id: str, dataset: Any) -> Window:
        """The cube pixels the COG covers, after checking it lies on the cube grid."""
        grid = self.spec.grid
        t = dataset.transform
        crs = dataset.crs.to_epsg() if dataset.crs else None
        col = (t.c - grid.x0) / grid.res
        row = (grid.y0 - t.f) / grid.res
        if (
            f"EPSG:{crs}" != grid.crs
            or abs(t.a - grid.res) > grid.res * 1e-9
            or abs(-t.e - grid.res) > grid.res * 1e-9
            or t.b != 0
            or t.d != 0
            or abs(col - round(col)) > _ALIGN_TOLERANCE_PX
            or abs(row - round(row)) > _ALIGN_TOLERANCE_PX
        ):
            raise TcvisMirrorError(
                f"TCVIS mirror item {item_id!r} is not on the TCVIS grid ({grid.crs}, pixel "
                f"{grid.res}° aligned to multiples of it): got EPSG:{crs}, transform "
                f"{tuple(t)[:6]}; republish it on the Earth Engine export grid."
            )
        col0, row0 = round(col), round(row)
        return Window(row0, row0 + dataset.height, col0, col0 + dataset.width)


def _band_indexes(item_id: str, dataset: Any) -> list[int]:
    """1-based band indexes for brightness, greenness, wetness: by band description
    when the COG names its bands, else the first three bands in that order."""
    if dataset.count < 3 or any(dtype != "uint8" for dtype in dataset.dtypes[:3]):
        raise TcvisMirrorError(
            f"TCVIS mirror item {item_id!r} is not a 3-band uint8 COG "
            f"({dataset.count} bands, {dataset.dtypes}); TCVIS needs brightness, greenness "
            "and wetness as uint8 bands."
        )
    names = list(dataset.descriptions)
    if all(variable in names for variable in TCVIS_BANDS):
        return [names.index(variable) + 1 for variable in TCVIS_BANDS]
    return [1, 2, 3]
