"""Option sections of the inference pipelines (all spelled ``--pipeline.<name>``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from darts.settings.options import PERCENT, Bounds, Section, iso_day, option

# Sentinel-2A's first acquisitions were in June 2015: no year before can match.
SENTINEL2_FIRST_YEAR = 2015


@dataclass(frozen=True)
class Selection(Section):
    """Which scenes: exactly one of the four."""

    SECTION = "pipeline"

    scene_ids: list[str] = option(
        [],
        help="scene ids in the form of the --raw-data-source (see the examples below)",
        default_text="none",
        metavar="ID",
    )
    scene_id_file: Path | None = option(
        None,
        help="JSON array of scene ids, one id per line, or the file prep-data writes",
        metavar="FILE",
    )
    tile_ids: list[str] = option(
        [], help="MGRS tiles, e.g. 33UUP or T33UUP", metavar="TILE", default_text="none"
    )
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

    start_date: str | None = option(
        None, check=iso_day, help="first day, YYYY-MM-DD", metavar="DATE"
    )
    end_date: str | None = option(None, check=iso_day, help="last day, YYYY-MM-DD", metavar="DATE")
    max_cloud_cover: float = option(
        10.0,
        bounds=PERCENT,
        help="maximum cloud cover in percent (100: any; not for cdse-mosaic)",
        metavar="PERCENT",
    )
    max_snow_cover: float = option(
        10.0,
        bounds=PERCENT,
        help="maximum snow cover in percent (100: any; not for cdse-mosaic)",
        metavar="PERCENT",
    )
    months: list[int] = option(
        [],
        bounds=Bounds(min=1, max=12),
        help="only these months (1-12; scenes, not mosaics)",
        metavar="MONTH",
        default_text="all",
    )
    years: list[int] = option(
        [],
        bounds=Bounds(min=SENTINEL2_FIRST_YEAR, max=9999),
        help=f"only these years ({SENTINEL2_FIRST_YEAR} or later)",
        metavar="YEAR",
        default_text="all",
    )
    quarters: list[int] = option(
        [],
        bounds=Bounds(min=1, max=4),
        help="only these quarters (1-4; mosaics)",
        metavar="Q",
        default_text="all",
    )


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
    """What prep-data stages (prep-data only)."""

    SECTION = "pipeline"

    optical: bool = option(False, help="stage Sentinel-2 scenes into the raw-data store")
    aux: bool = option(False, help="stage ArcticDEM and TCVIS for the scenes' footprints")
    dry_run: bool = option(
        False, help="list what would be staged and the bytes to download, then stop"
    )


@dataclass(frozen=True)
class Bands(Section):
    """Which bands are staged (prep-data) and checked (readiness)."""

    SECTION = "pipeline"

    bands: list[str] = option(
        ["B02_10m", "B03_10m", "B04_10m", "B08_10m"],
        help="bands to stage (SCL_20m is always added); names like B05, B05_20m, red, or all",
        metavar="BAND",
    )


@dataclass(frozen=True)
class Report(Section):
    """The machine-readable report of prep-data and readiness."""

    SECTION = "pipeline"

    report_file: Path | None = option(
        None,
        help="machine-readable report (JSON)",
        default_text="prep-data: <log-dir>/prep-data-<time>-<pid>.json; readiness: none",
        metavar="FILE",
    )


@dataclass(frozen=True)
class SavedSceneIds(Section):
    """The scene-id file prep-data writes and offline runs read back, so a tile or
    AOI selection needs no catalogue search on the offline machine."""

    SECTION = "pipeline"

    prep_data_scene_id_file: Path | None = option(
        None,
        help="prep-data writes the scene ids it finds for --tile-ids/--aoi-file here; a "
        "run or readiness check given this file (alone, or with the same --tile-ids/"
        "--aoi-file) processes exactly those scenes",
        metavar="FILE",
    )


@dataclass(frozen=True)
class OfflineCheck(Section):
    """``--offline`` for the readiness check, which never connects whatever is set:
    accepted, so the command lines that name it (``darts inference readiness sentinel2
    --offline``, as after ``darts cache import``) keep working, and it says so."""

    SECTION = "pipeline"

    offline: bool = option(
        False,
        negatable=True,
        ignored="the readiness check never connects: it reads only what is staged",
    )


@dataclass(frozen=True)
class LegacyGrid(Section):
    """An option of older DARTS versions that has no meaning here: accepted, so their
    config files and job scripts keep working, and it says why it does nothing."""

    SECTION = "pipeline"

    sentinel2_grid_dir: Path | None = option(
        None,
        ignored="the Sentinel-2 tiling grid is computed, so no grid files are cached",
        metavar="DIR",
    )


@dataclass(frozen=True)
class LegacyWorkers(Section):
    """The older configs' Dask worker count, for the commands that run one scene after
    another (a command with workers declares its own option, with this as an alias)."""

    SECTION = "pipeline"

    dask_worker: int | None = option(
        None,
        bounds=Bounds(min=1),
        ignored="this command runs one scene after another, without Dask workers",
        metavar="N",
    )
