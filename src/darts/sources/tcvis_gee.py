"""TCVIS tiles from Earth Engine: one ``computePixels`` call per tile.

The request asks for the tile's own window of the cube grid (same CRS, pixel size and
pixel edges as the TCVIS exports), so Earth Engine returns the stored pixels unchanged
and no resampling happens on either side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from darts.grid.cube import Window
from darts.net.earthengine import EarthEngineClient, affine_grid
from darts.sources.tcvis_tiles import (
    TCVIS_BANDS,
    TCVIS_EE_COLLECTIONS,
    check_period,
    tcvis_spec,
    tcvis_tile_window,
    tcvis_tiles_for,
)
from darts.store.datacube.spec import CubeSpec, TileBuffer, TileFetch


def mosaic_expression(asset_id: str) -> dict[str, Any]:
    """``ee.ImageCollection(asset_id).mosaic()`` in Earth Engine's serialized form."""
    load = {
        "functionInvocationValue": {
            "functionName": "ImageCollection.load",
            "arguments": {"id": {"constantValue": asset_id}},
        }
    }
    mosaic = {
        "functionInvocationValue": {
            "functionName": "ImageCollection.mosaic",
            "arguments": {"collection": load},
        }
    }
    return {"result": "0", "values": {"0": mosaic}}


class TcvisGeeSource:
    """TCVIS of one trend period, read from Earth Engine. Network only in ``fetch``."""

    def __init__(
        self, period: str, client: EarthEngineClient, spec: CubeSpec | None = None
    ) -> None:
        self.period = check_period(period)
        self.client = client
        self.spec = spec or tcvis_spec()
        self.asset_id = TCVIS_EE_COLLECTIONS[period]
        self.description = f"TCVIS {period} (Earth Engine {self.asset_id})"

    def tiles_for(self, window: Window) -> list[str]:
        return tcvis_tiles_for(self.spec, window)

    def tile_window(self, tile_id: str) -> Window:
        return tcvis_tile_window(self.spec, tile_id)

    def fetch(self, tile_id: str, into: TileBuffer) -> TileFetch:
        window = self.tile_window(tile_id)
        t = self.spec.grid.window_transform(window)
        grid = affine_grid(
            window.width, window.height, (t.a, t.b, t.c, t.d, t.e, t.f), self.spec.grid.crs
        )
        bands = list(TCVIS_BANDS.values())
        pixels = self.client.compute_pixels(
            mosaic_expression(self.asset_id),
            grid=grid,
            band_ids=bands,
            purpose=f"TCVIS {self.period} tile {tile_id}",
        )
        filled = False
        for variable, band in TCVIS_BANDS.items():
            values = np.asarray(pixels[band])
            into.arrays[variable][...] = values
            filled = filled or bool(values.any())
        into.flush()
        source = {
            "service": "earth-engine",
            "url": self.client.base_url,
            "project": self.client.project,
            "asset": self.asset_id,
            "bands": bands,
            "grid": grid,
        }
        # All zeros: Earth Engine has no TCVIS pixel here (outside the mapped area).
        return TileFetch("filled" if filled else "empty", source)
