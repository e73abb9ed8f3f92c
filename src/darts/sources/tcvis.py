"""TCVIS, the Landsat Tasseled Cap trends, as a datacube source.

- `tcvis_tiles`: the cube spec, the trend periods and the pure tiling functions;
- `tcvis_gee`: `TcvisGeeSource`, tiles from Earth Engine (``computePixels``);
- `tcvis_stac`: `TcvisStacSource`, tiles from a STAC + COG mirror;
- `make_tcvis_source`: the one place that picks between them from the endpoints.

The two sources are imported lazily: planning (periods, tiles) must not pay for
pystac-client and rasterio, and must work where they are never used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from darts._lazy import lazy_exports
from darts.errors import ConfigError
from darts.sources.tcvis_tiles import (
    TCVIS_BANDS,
    TCVIS_BOUNDS,
    TCVIS_EE_COLLECTIONS,
    TCVIS_PERIODS,
    TCVIS_PIXEL_DEG,
    TILE_PX,
    parse_tile_id,
    tcvis_period,
    tcvis_spec,
    tcvis_tile_window,
    tcvis_tiles_for,
    tile_id,
)

if TYPE_CHECKING:
    from darts.net.http import HttpClient
    from darts.sources.tcvis_gee import TcvisGeeSource, mosaic_expression
    from darts.sources.tcvis_stac import TcvisMirrorError, TcvisStacSource
    from darts.store.datacube.spec import CubeSpec, TileSource

_EXPORTS = {
    "TcvisGeeSource": "tcvis_gee",
    "mosaic_expression": "tcvis_gee",
    "TcvisMirrorError": "tcvis_stac",
    "TcvisStacSource": "tcvis_stac",
}

__all__ = [
    "TCVIS_BANDS",
    "TCVIS_BOUNDS",
    "TCVIS_EE_COLLECTIONS",
    "TCVIS_PERIODS",
    "TCVIS_PIXEL_DEG",
    "TILE_PX",
    "TcvisGeeSource",
    "TcvisMirrorError",
    "TcvisStacSource",
    "make_tcvis_source",
    "mosaic_expression",
    "parse_tile_id",
    "tcvis_period",
    "tcvis_spec",
    "tcvis_tile_window",
    "tcvis_tiles_for",
    "tile_id",
]

__getattr__, __dir__ = lazy_exports("darts.sources", _EXPORTS, globals())

TCVIS_SOURCE_KINDS = ("gee", "stac")


def make_tcvis_source(
    kind: str,
    period: str,
    *,
    http: HttpClient,
    earth_engine_url: str | None = None,
    ee_project: str | None = None,
    ee_credentials_file: Path | None = None,
    tcvis_stac_url: str | None = None,
    spec: CubeSpec | None = None,
) -> TileSource:
    """The TCVIS source the endpoint settings ask for (``kind`` "gee" or "stac").
    Reads the Earth Engine credential file; opens no connection."""
    if kind == "stac":
        if not tcvis_stac_url:
            raise ConfigError(
                "--tcvis-source stac needs --tcvis-stac-url (the STAC API of a TCVIS mirror)"
            )
        from darts.sources.tcvis_stac import TcvisStacSource

        return TcvisStacSource(period, tcvis_stac_url, spec=spec, http=http)
    if kind == "gee":
        if not earth_engine_url:
            raise ConfigError("--tcvis-source gee needs --earth-engine-url")
        from darts.net.earthengine import EarthEngineClient, EarthEngineCredentials
        from darts.sources.tcvis_gee import TcvisGeeSource

        credentials = EarthEngineCredentials.from_settings(ee_credentials_file, ee_project)
        client = EarthEngineClient(earth_engine_url, ee_project, credentials, http)
        return TcvisGeeSource(period, client, spec=spec)
    raise ConfigError(
        f"unknown --tcvis-source {kind!r}; use one of: {', '.join(TCVIS_SOURCE_KINDS)}"
    )
