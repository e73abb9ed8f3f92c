"""GDAL configuration for reading remote rasters, scoped and gated.

GDAL opens `s3://` (`/vsis3/`) and `https://` (`/vsicurl/`) itself, through libcurl, so
Python socket guards never see those connections: the gate must be checked before a
remote href reaches rasterio. `remote_raster_env` does that, then enters a *scoped*
`rasterio.Env` with the options below. The reference implementation set these options
process-wide and toggled them per scene (pitfall 18), so concurrent readers of different
endpoints trampled each other; a scoped Env keeps them per thread and per block.

The pipelines no longer hand remote hrefs to GDAL: its HTTP layer retries by other
rules than ours and does not recover from a truncated body, so remote COGs are fetched
through `HttpClient` and only decoded by GDAL (`darts.net.cog`). What remains here
serves the sandbox's self-test, which checks that the stand-ins answer GDAL's own
readers as the real services do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from darts.net.credentials import AwsCredentials, boto3_session, resolve_credentials
from darts.net.guard import NetworkGate, get_gate
from darts.net.settings import NetworkSettings, S3Settings

if TYPE_CHECKING:
    import rasterio

# 10 MiB per range request: JPEG2000 bands are read in large sequential pieces, and
# fewer, larger requests mean less per-request latency and fewer 429s.
_CHUNK_SIZE = "10485760"

_CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def gdal_http_options(net: NetworkSettings | None = None) -> dict[str, str]:
    """Timeouts, retries and caching for GDAL's curl-based readers (no credentials)."""
    net = net or NetworkSettings()
    return {
        "GDAL_HTTP_CONNECTTIMEOUT": _num(net.connect_timeout_s),
        # GDAL_HTTP_TIMEOUT would cap the whole transfer; a stall detector is the
        # equivalent of our read timeout: abort when < 1 byte/s for read_timeout seconds.
        "GDAL_HTTP_LOW_SPEED_TIME": _num(net.read_timeout_s),
        "GDAL_HTTP_LOW_SPEED_LIMIT": "1",
        "GDAL_HTTP_MAX_RETRY": str(net.max_retries),
        "GDAL_HTTP_RETRY_DELAY": _num(max(net.backoff_base_s, 0.001)),
        "GDAL_HTTP_RETRY_CODES": "429,500,502,503,504",
        # Without this, opening one file lists the whole "directory" on S3 first.
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_CHUNK_SIZE": _CHUNK_SIZE,
        "VSI_CACHE": "TRUE",
    }


def gdal_env(
    s3: S3Settings,
    net: NetworkSettings | None = None,
    *,
    credentials: AwsCredentials | None = None,
) -> dict[str, str]:
    """All GDAL config options to read `s3://` objects with these settings.

    Contains the keys: pass it to a scoped environment (`remote_raster_env`, or
    `rasterio.Env` after moving the keys into an `AWSSession`), never to
    `gdal.SetConfigOption` globally, and never log it.
    """
    parts = urlsplit(s3.endpoint_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"S3 endpoint must be http(s)://host[:port], got {s3.endpoint_url!r}")
    if parts.path not in ("", "/"):
        raise ValueError(f"GDAL cannot use an S3 endpoint with a path: {s3.endpoint_url!r}")
    creds = credentials or resolve_credentials(s3)
    options = {
        "AWS_S3_ENDPOINT": parts.netloc,
        "AWS_HTTPS": "YES" if parts.scheme == "https" else "NO",
        # CDSE serves path-style only.
        "AWS_VIRTUAL_HOSTING": "FALSE",
        "AWS_REGION": s3.region,
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        **gdal_http_options(net),
    }
    if creds.session_token:
        options["AWS_SESSION_TOKEN"] = creds.session_token
    return options


@contextlib.contextmanager
def remote_raster_env(
    href: str,
    *,
    purpose: str,
    s3: S3Settings | None = None,
    net: NetworkSettings | None = None,
    gate: NetworkGate | None = None,
) -> Iterator[rasterio.Env]:
    """Check the gate for `href`, then yield a scoped `rasterio.Env` able to read it.

    `s3://` hrefs get the S3 endpoint and keys from `s3`; `http(s)://` hrefs only the
    HTTP options. Raises `OfflineError` before GDAL is given anything when offline.
    """
    import rasterio
    from rasterio.session import AWSSession

    net = net or NetworkSettings()
    gate = gate or get_gate()
    scheme = urlsplit(href).scheme
    if scheme == "s3":
        s3 = s3 or S3Settings()
        bucket_key = href[len("s3://") :]
        gate.check(
            f"{s3.endpoint_url.rstrip('/')}/{quote(bucket_key)}", purpose, offline=net.offline
        )
        creds = resolve_credentials(s3)
        options: dict[str, Any] = gdal_env(s3, net, credentials=creds)
        # rasterio refuses AWS keys as plain options: they travel in its AWSSession,
        # which sets them (and the endpoint/region) for the scope of this Env only.
        for key in (*_CREDENTIAL_KEYS, "AWS_REGION", "AWS_S3_ENDPOINT"):
            options.pop(key, None)
        boto = boto3_session(creds, s3.region)
        endpoint = urlsplit(s3.endpoint_url).netloc
        session = AWSSession(session=boto, endpoint_url=endpoint)
        with rasterio.Env(session=session, **options) as env:
            yield env
    elif scheme in ("http", "https"):
        gate.check(href, purpose, offline=net.offline)
        with rasterio.Env(**gdal_http_options(net)) as env:
            yield env
    else:
        raise ValueError(f"not a remote href (s3:// or http(s)://): {href!r}")


def _num(value: float) -> str:
    return f"{value:g}"
