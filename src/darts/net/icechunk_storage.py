"""Icechunk storage for datacubes: the only place an ``icechunk.Storage`` is built.

Icechunk talks to S3 through its own Rust client, which Python socket guards never see,
so an ``s3://`` location must pass the process gate *before* it is handed to Icechunk
(see :mod:`darts.net.guard`). A local directory needs no gate.

Credentials come from :func:`darts.net.credentials.resolve_credentials` only when a remote
repository is actually opened, so offline runs and local cubes never need keys; the
keys go straight into Icechunk and are never logged or put into messages.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import icechunk

from darts.net.credentials import resolve_credentials
from darts.net.guard import get_gate
from darts.net.settings import NetworkSettings, S3Settings

_LOG_FILTER_LOCK = threading.Lock()
_log_filter_set = False


@dataclass(frozen=True)
class S3RepositoryLocation:
    bucket: str
    prefix: str

    @property
    def href(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def is_remote(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith("s3://")


def parse_s3_repository(location: str) -> S3RepositoryLocation:
    """``s3://bucket/prefix`` -> bucket and prefix (without slashes at either end)."""
    parts = urlsplit(location)
    prefix = parts.path.strip("/")
    if parts.scheme != "s3" or not parts.netloc or not prefix:
        raise ValueError(f"a remote datacube location must be s3://bucket/prefix, got {location!r}")
    return S3RepositoryLocation(parts.netloc, prefix)


def check_remote_access(
    location: str, *, s3: S3Settings | None, net: NetworkSettings | None, purpose: str
) -> None:
    """Raise ``OfflineError`` if the process may not reach the S3 ``location`` now.

    Called before every remote operation, not only at open: a cube opened online must
    not keep talking to S3 after the process has been switched offline.
    """
    where = parse_s3_repository(location)
    endpoint = (s3 or S3Settings()).endpoint_url.rstrip("/")
    url = f"{endpoint}/{quote(where.bucket)}/{quote(where.prefix)}"
    get_gate().check(url, purpose, offline=(net or NetworkSettings()).offline)


def icechunk_storage(
    location: str | Path,
    *,
    s3: S3Settings | None,
    net: NetworkSettings | None,
    purpose: str,
) -> icechunk.Storage:
    """Icechunk storage for a local directory or an ``s3://bucket/prefix`` location.

    ``purpose`` says what the repository is for ("open the arcticdem-10m datacube");
    an offline refusal names it.
    """
    if not is_remote(location):
        text = str(location)
        if "://" in text:
            raise ValueError(
                f"unsupported datacube location {text!r}: use a local directory or "
                "s3://bucket/prefix"
            )
        _quiet_local_storage_warning()
        return icechunk.local_filesystem_storage(str(Path(text).expanduser()))
    assert isinstance(location, str)
    s3 = s3 or S3Settings()
    net = net or NetworkSettings()
    check_remote_access(location, s3=s3, net=net, purpose=purpose)
    where = parse_s3_repository(location)
    endpoint = urlsplit(s3.endpoint_url)
    if endpoint.scheme not in ("http", "https") or not endpoint.netloc:
        raise ValueError(f"S3 endpoint must be http(s)://host[:port], got {s3.endpoint_url!r}")
    creds = resolve_credentials(s3)
    return icechunk.s3_storage(
        bucket=where.bucket,
        prefix=where.prefix,
        region=s3.region,
        endpoint_url=s3.endpoint_url,
        allow_http=endpoint.scheme == "http",
        access_key_id=creds.access_key_id,
        secret_access_key=creds.secret_access_key,
        session_token=creds.session_token,
        # CDSE-style endpoints (and the sandbox) serve path-style addressing only.
        force_path_style=True,
        # Like our read timeout: the silence allowed between bytes, not a whole transfer.
        network_stream_timeout_seconds=max(1, round(net.read_timeout_s)),
    )


def icechunk_config(location: str | Path, net: NetworkSettings | None) -> icechunk.RepositoryConfig:
    """Repository settings: for S3, Icechunk's retries follow our retry policy.

    They apply once a repository is open; Icechunk's first look at a location
    (``Repository.exists`` / reading its config) uses its built-in retries, so an
    unreachable endpoint takes Icechunk ~10-30 s to report.
    """
    if not is_remote(location):
        return icechunk.RepositoryConfig()
    net = net or NetworkSettings()
    retries = icechunk.StorageRetriesSettings(
        max_tries=net.max_retries + 1,
        initial_backoff_ms=max(1, round(net.backoff_base_s * 1000)),
        max_backoff_ms=max(1, round(net.backoff_max_s * 1000)),
    )
    return icechunk.RepositoryConfig(storage=icechunk.StorageSettings(retries=retries))


def _quiet_local_storage_warning() -> None:
    """Silence Icechunk's "LocalFileSystem storage is not safe for concurrent commits".

    It is printed for every local repository, but the datacube serialises commits per
    repository with a file lock and verifies each commit, which is exactly the remedy;
    the warning would only teach users to ignore warnings. Left alone when the user
    chose Icechunk's logging through ``ICECHUNK_LOG``.
    """
    global _log_filter_set
    with _LOG_FILTER_LOCK:
        if _log_filter_set or "ICECHUNK_LOG" in os.environ:
            return
        icechunk.set_logs_filter("warn,icechunk::storage::object_store=error")
        _log_filter_set = True
