"""Where Sentinel-2 scenes come from: selecting, filtering and discovering them.

- `query`: `SceneSelection` (ids, id file, tiles or AOI), `SceneFilters` and
  `date_spans` (one search interval per contiguous run of allowed months);
- `scene_ids`: scene/tile id parsing and validation, the scene-id file;
- `aoi`: an AOI file as one EPSG:4326 (Multi)Polygon;
- `cdse`: discovery on the CDSE STAC API, and offline discovery from ids.

Names are imported lazily, as in `darts.net`: shapely, geopandas and pystac-client are
slow to import and a CLI that only parses options should not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from darts._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "CDSE_COLLECTION": "cdse",
    "CDSE_STAC_URL": "cdse",
    "DiscoveryError": "cdse",
    "SENTINEL2_START": "query",
    "SceneFilters": "query",
    "SceneIdParts": "scene_ids",
    "SceneSelection": "query",
    "date_spans": "query",
    "describe_query": "cdse",
    "discover_cdse": "cdse",
    "discover_offline": "cdse",
    "item_datetime": "cdse",
    "item_tile": "cdse",
    "no_scenes_message": "cdse",
    "normalize_tile_id": "scene_ids",
    "normalize_tile_ids": "scene_ids",
    "parse_scene_id": "scene_ids",
    "read_aoi": "aoi",
    "read_scene_id_file": "scene_ids",
    "scene_footprint": "cdse",
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
    from darts.sources.cdse import (
        CDSE_COLLECTION,
        CDSE_STAC_URL,
        DiscoveryError,
        describe_query,
        discover_cdse,
        discover_offline,
        item_datetime,
        item_tile,
        no_scenes_message,
        scene_footprint,
    )
    from darts.sources.query import SENTINEL2_START, SceneFilters, SceneSelection, date_spans
    from darts.sources.scene_ids import (
        SceneIdParts,
        normalize_tile_id,
        normalize_tile_ids,
        parse_scene_id,
        read_scene_id_file,
        validate_scene_ids,
        write_scene_id_file,
    )
