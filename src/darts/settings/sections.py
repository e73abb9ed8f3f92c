"""The option sections shared by several commands.

Pipeline-specific sections live with their commands' settings; these are the ones every
data-touching command needs: where data lives, which remote services to talk to, and
how patiently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from darts.settings.options import AT_LEAST_0, AT_LEAST_1, POSITIVE, Section, option

CDSE_STAC_URL = "https://stac.dataspace.copernicus.eu/v1/"
CDSE_S3_ENDPOINT = "https://eodata.dataspace.copernicus.eu"
PGC_STAC_URL = "https://stac.pgc.umn.edu/api/v1/"
ARCTICDEM_INDEX_URL = (
    "https://data.pgc.umn.edu/elev/dem/setsm/ArcticDEM/indexes/"
    "ArcticDEM_Mosaic_Index_latest_gpqt.zip"
)
EARTH_ENGINE_URL = "https://earthengine.googleapis.com"
# Same API for many small automated requests (sources.md §3a); not for interactive use.
EARTH_ENGINE_HIGHVOLUME_URL = "https://earthengine-highvolume.googleapis.com"


@dataclass(frozen=True)
class DefaultDirs(Section):
    SECTION = "default-dirs"

    darts_dir: Path | None = option(
        None,
        env="DARTS_DATA_DIR",
        help="root of everything DARTS keeps",
        default_text="$XDG_DATA_HOME/darts or ~/.local/share/darts",
        metavar="DIR",
    )
    fast_dir: Path | None = option(
        None,
        env="DARTS_FAST_DATA_DIR",
        help="fast storage for randomly read data: auxiliary datacubes, models",
        default_text="the darts dir",
        metavar="DIR",
    )
    large_dir: Path | None = option(
        None,
        env="DARTS_LARGE_DATA_DIR",
        help="large storage for bulk data: raw scenes, outputs",
        default_text="the darts dir",
        metavar="DIR",
    )


@dataclass(frozen=True)
class Endpoints(Section):
    SECTION = "endpoints"

    cdse_stac_url: str = option(
        CDSE_STAC_URL, env="DARTS_CDSE_STAC_URL", help="CDSE STAC API root", metavar="URL"
    )
    cdse_s3_endpoint: str = option(
        CDSE_S3_ENDPOINT,
        env="DARTS_CDSE_S3_ENDPOINT",
        help="CDSE S3 endpoint (bucket eodata)",
        metavar="URL",
    )
    pgc_stac_url: str = option(
        PGC_STAC_URL, env="DARTS_PGC_STAC_URL", help="PGC STAC API root", metavar="URL"
    )
    arcticdem_index_url: str = option(
        ARCTICDEM_INDEX_URL,
        env="DARTS_ARCTICDEM_INDEX_URL",
        help="ArcticDEM mosaic index (zip of GeoParquet files)",
        metavar="URL",
    )
    earth_engine_url: str = option(
        EARTH_ENGINE_URL,
        env="DARTS_EARTH_ENGINE_URL",
        help="Earth Engine API base URL",
        metavar="URL",
    )
    earth_engine_highvolume_url: str = option(
        EARTH_ENGINE_HIGHVOLUME_URL,
        env="DARTS_EARTH_ENGINE_HIGHVOLUME_URL",
        help="Earth Engine high-volume API base URL (used with --ee-use-highvolume)",
        metavar="URL",
    )
    ee_use_highvolume: bool = option(
        False,
        help="send Earth Engine Sentinel-2 requests (--raw-data-source gee) to the "
        "high-volume endpoint, meant for many automated requests",
    )
    ee_project: str | None = option(
        None,
        env="EE_PROJECT",
        help="Google Cloud project registered for Earth Engine (needed with --tcvis-source gee "
        "and --raw-data-source gee)",
        metavar="PROJECT",
    )
    ee_credentials_file: Path | None = option(
        None,
        env="GOOGLE_APPLICATION_CREDENTIALS",
        help="Earth Engine credentials: a service-account key JSON, or a file holding an "
        "access token (e.g. from `gcloud auth print-access-token`)",
        metavar="PATH",
    )
    tcvis_source: str = option(
        "gee",
        env="DARTS_TCVIS_SOURCE",
        choices=("gee", "stac"),
        help="where TCVIS tiles come from: Earth Engine, or the STAC mirror at --tcvis-stac-url",
    )
    tcvis_stac_url: str | None = option(
        None,
        env="DARTS_TCVIS_STAC_URL",
        help="STAC API of a TCVIS mirror (STAC + COG); required with --tcvis-source stac",
        metavar="URL",
    )
    aws_credentials_file: Path | None = option(
        None,
        env="AWS_SHARED_CREDENTIALS_FILE",
        help="AWS credentials file holding --aws-profile",
        default_text="~/.aws/credentials",
        metavar="PATH",
    )
    aws_profile: str | None = option(
        None,
        env="AWS_PROFILE",
        help="named AWS profile holding the CDSE S3 keys",
        default_text="the keys in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        metavar="NAME",
    )


@dataclass(frozen=True)
class Network(Section):
    SECTION = "network"

    request_timeout: float = option(
        60.0,
        env="DARTS_REQUEST_TIMEOUT",
        bounds=POSITIVE,
        help="seconds before a request is abandoned",
        metavar="SECONDS",
    )
    max_retries: int = option(
        5,
        env="DARTS_MAX_RETRIES",
        bounds=AT_LEAST_0,
        help="retries on 429, 5xx and broken connections",
        metavar="N",
    )
    max_concurrency: int = option(
        4,
        env="DARTS_MAX_CONCURRENCY",
        bounds=AT_LEAST_1,
        help="requests in flight at once",
        metavar="N",
    )


@dataclass(frozen=True)
class Storage(Section):
    """Where a pipeline keeps what it downloads and writes."""

    SECTION = "pipeline"

    raw_data_source: str = option(
        "cdse",
        choices=("cdse", "cdse-mosaic", "gee"),
        help="where Sentinel-2 scenes come from",
    )
    raw_data_store: Path | None = option(
        None,
        help="scene store: one Zarr per staged scene",
        default_text="<large-dir>/sentinel2/<raw-data-source>",
        metavar="DIR",
        # The older config files' name of the store.
        aliases="input-cache",
    )
    no_raw_data_store: bool = option(
        False, help="keep no downloaded scene on disk (an offline run needs the store)"
    )
    arcticdem_resolution: int = option(
        10, choices=(2, 10, 32), help="ArcticDEM resolution in metres", metavar="{2,10,32}"
    )
    arcticdem_dir: Path | None = option(
        None,
        help="ArcticDEM datacube",
        default_text="<fast-dir>/auxiliary/arcticdem_<res>m.icechunk",
        metavar="DIR",
    )
    tcvis_dir: Path | None = option(
        None,
        help="TCVIS datacube",
        default_text="<fast-dir>/auxiliary/tcvis.icechunk",
        metavar="DIR",
    )
    lock_wait: float = option(
        3600.0,
        help="seconds to wait for another darts process that is fetching or writing the same "
        "scene or tile before giving up (a dead process's claim is taken over)",
        metavar="SECONDS",
        bounds=AT_LEAST_0,
    )


@dataclass(frozen=True)
class Outputs(Section):
    """Where a run writes its results (not prep-data's or readiness' business)."""

    SECTION = "pipeline"

    output_dir: Path | None = option(
        None,
        help="results: one folder per scene, and a record of each run under runs/",
        default_text="<large-dir>/out",
        metavar="DIR",
        aliases="output-data-dir",
    )


@dataclass(frozen=True)
class Logging(Section):
    """Where logs go and how they look: read before the config file (which may be
    what a log is needed for), so from the command line or the environment only."""

    SECTION = "logging"

    log_dir: Path | None = option(
        None,
        global_option=True,
        help="folder for reports and logs; given, the command also writes its log there "
        "(darts-<time>-<pid>.log)",
        default_text="<darts-dir>/logs, no log file",
        metavar="DIR",
    )
    log_plain: bool = option(
        False,
        global_option=True,
        help="plain log lines only: no progress bars, even on a terminal (progress is "
        "then a line per scene and at most every 30 s, as when not on a terminal)",
    )
    no_progress: bool = option(
        False,
        global_option=True,
        help="no progress at all: neither bars nor progress lines",
    )


# Sections every command takes (`darts.settings.resolve.CommandSpec` adds them).
GLOBAL_SECTIONS: tuple[type[Section], ...] = (Logging,)
