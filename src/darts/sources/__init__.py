"""Where Sentinel-2 scenes come from: selecting, filtering and discovering them.

- `query`: `SceneSelection` (ids, id file, tiles or AOI), `SceneFilters` and
  `date_spans` (one search interval per contiguous run of allowed months);
- `scene_ids`: scene/tile id parsing and validation, the scene-id file;
- `aoi`: an AOI file as one EPSG:4326 (Multi)Polygon;
- `scene_docs`: scene documents, offline id selections, query wording (every source);
- `scene_source`: the `SceneSource` protocol every optical source implements;
- `cdse`, `cdse_mosaic`, `gee`: the three optical sources' catalogues.

Names are imported lazily, as in `darts.net`: shapely, geopandas and pystac-client are
slow to import and a CLI that only parses options should not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from darts._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "CDSE_COLLECTION": "cdse",
    "CDSE_STAC_URL": "cdse",
    "DiscoveryError": "scene_docs",
    "SENTINEL2_START": "query",
    "SceneFilters": "query",
    "SceneIdParts": "scene_ids",
    "SceneSelection": "query",
    "date_spans": "query",
    "describe_query": "scene_docs",
    "discover_cdse": "cdse",
    "discover_offline": "scene_docs",
    "item_datetime": "scene_docs",
    "item_tile": "scene_docs",
    "no_scenes_message": "scene_docs",
    "normalize_tile_id": "scene_ids",
    "normalize_tile_ids": "scene_ids",
    "parse_scene_id": "scene_ids",
    "read_aoi": "aoi",
    "read_scene_id_file": "scene_ids",
    "scene_footprint": "scene_docs",
    "validate_scene_ids": "scene_ids",
    "write_scene_id_file": "scene_ids",
}

__all__ = [
    "CDSE_COLLECTION",
    "CDSE_STAC_URL",
    "SENTINEL2_START",
    "DiscoveryError",
    "SceneFilters",
    "SceneIdParts",
    "SceneSelection",
    "date_spans",
    "describe_query",
    "discover_cdse",
    "discover_offline",
    "item_datetime",
    "item_tile",
    "no_scenes_message",
    "normalize_tile_id",
    "normalize_tile_ids",
    "parse_scene_id",
    "read_aoi",
    "read_scene_id_file",
    "scene_footprint",
    "validate_scene_ids",
    "write_scene_id_file",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from darts.sources.aoi import read_aoi
    from darts.sources.cdse import CDSE_COLLECTION, CDSE_STAC_URL, discover_cdse
    from darts.sources.query import SENTINEL2_START, SceneFilters, SceneSelection, date_spans
    from darts.sources.scene_docs import (
        DiscoveryError,
        describe_query,
        discover_offline,
        item_datetime,
        item_tile,
        no_scenes_message,
        scene_footprint,
    )
    from darts.sources.scene_ids import (
        SceneIdParts,
        normalize_tile_id,
        normalize_tile_ids,
        parse_scene_id,
        read_scene_id_file,
        validate_scene_ids,
        write_scene_id_file,
    )
