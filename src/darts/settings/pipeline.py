"""Option sections of the inference pipelines (all spelled ``--pipeline.<name>``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from darts.settings.options import Section, option


@dataclass(frozen=True)
class Selection(Section):
    """Which scenes: exactly one of the four."""

    SECTION = "pipeline"

    scene_ids: list[str] = option(
        [],
        help="scene ids in the source's form: cdse S2B_MSIL2A_20240715T203849_N0511_R029_"
        "T08WMC_20240716T013512, gee 20240715T203849_20240715T204100_T08WMC, cdse-mosaic "
        "Sentinel-2_mosaic_2024_Q3_08WMC_0_0",
        metavar="ID",
    )
    scene_id_file: Path | None = option(
        None, help="JSON array of scene ids (or one id per line)", metavar="FILE"
    )
    tile_ids: list[str] = option([], help="MGRS tiles, e.g. 33UUP or T33UUP", metavar="TILE")
    aoi_file: Path | None = option(
        None,
        help="area of interest: any file GeoPandas reads (GeoPackage, GeoJSON, Shapefile, "
        "GeoParquet), any CRS",
        metavar="FILE",
    )


@dataclass(frozen=True)
class Filters(Section):
    """Which acquisitions, for tile and AOI searches."""

    SECTION = "pipeline"

    start_date: str | None = option(None, help="first day, YYYY-MM-DD", metavar="DATE")
    end_date: str | None = option(None, help="last day, YYYY-MM-DD", metavar="DATE")
    max_cloud_cover: float = option(
        10.0, help="maximum cloud cover in percent (not for cdse-mosaic; 100: any)"
    )
    max_snow_cover: float = option(
        10.0, help="maximum snow cover in percent (not for cdse-mosaic; 100: any)"
    )
    months: list[int] = option([], help="only these months (1-12)", metavar="MONTH")
    years: list[int] = option([], help="only these years", metavar="YEAR")
    quarters: list[int] = option([], help="only these quarters (1-4)", metavar="Q")


@dataclass(frozen=True)
class Connectivity(Section):
    SECTION = "pipeline"

    offline: bool = option(
        False,
        env="DARTS_OFFLINE",
        negatable=True,
        help="make no network connection at all; fail if anything is not staged",
    )


@dataclass(frozen=True)
class Staging(Section):
    """What prep-data stages and reports."""

    SECTION = "pipeline"

    optical: bool = option(False, help="stage Sentinel-2 scenes into the raw-data store")
    aux: bool = option(False, help="stage ArcticDEM and TCVIS for the scenes' footprints")
    bands: list[str] = option(
        ["B02_10m", "B03_10m", "B04_10m", "B08_10m"],
        help="bands to stage (SCL_20m is always added); names like B05, B05_20m, red, or all",
        metavar="BAND",
    )
    dry_run: bool = option(
        False, help="list what would be staged and the bytes to download, then stop"
    )
    report_file: Path | None = option(
        None,
        help="machine-readable report (default: <log-dir>/prep-data-<time>.json)",
        metavar="FILE",
    )


@dataclass(frozen=True)
class SavedSceneIds(Section):
    """The scene-id file prep-data writes and offline runs read back, so a tile or
    AOI selection needs no catalogue search on the offline machine."""

    SECTION = "pipeline"

    prep_data_scene_id_file: Path | None = option(
        None,
        help="prep-data writes the discovered scene ids here (JSON array); offline runs "
        "with --tile-ids/--aoi-file read them back",
        metavar="FILE",
    )
