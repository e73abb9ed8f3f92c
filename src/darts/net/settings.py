"""Settings for the network layer: how patient, how persistent, how parallel, and where S3 is.

These are plain frozen values; the config layer builds them from defaults, TOML, env
and flags. Nothing here opens a connection. The production defaults are the real
services (CDSE S3); tests override them.
"""

from __future__ import annotations

from dataclasses import dataclass

# (connect, read) in seconds, as `requests` understands it.
Timeout = float | tuple[float, float]


@dataclass(frozen=True)
class NetworkSettings:
    """Timeouts, retry policy, concurrency bound and the offline switch for one client.

    timeout_s: one number for both connect and read timeouts, or a (connect, read) pair.
        The read timeout bounds the silence between bytes, not the whole transfer, so a
        slow but live 130 MB download is never cut off.
    max_retries: retries after the first attempt (so `max_retries + 1` attempts in all).
    backoff_base_s / backoff_max_s: exponential backoff with full jitter, capped; the cap
        also bounds how long a server's `Retry-After` can make us wait.
    max_concurrency: requests in flight at once per client, across threads.
    offline: refuse every connection (see `darts.net.guard`).
    """

    timeout_s: Timeout = 60.0
    max_retries: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    max_concurrency: int = 4
    offline: bool = False

    def __post_init__(self) -> None:
        connect, read = _split_timeout(self.timeout_s)
        if connect <= 0 or read <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s!r}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("backoff_base_s and backoff_max_s must be >= 0")
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency}")

    @property
    def connect_timeout_s(self) -> float:
        return _split_timeout(self.timeout_s)[0]

    @property
    def read_timeout_s(self) -> float:
        return _split_timeout(self.timeout_s)[1]

    @property
    def timeout_pair(self) -> tuple[float, float]:
        """The (connect, read) pair every request is sent with."""
        return _split_timeout(self.timeout_s)


def _split_timeout(timeout: Timeout) -> tuple[float, float]:
    if isinstance(timeout, tuple):
        connect, read = timeout
        return float(connect), float(read)
    return float(timeout), float(timeout)


@dataclass(frozen=True, repr=False)
class S3Settings:
    """Where the S3 endpoint is and which credentials to use.

    Credentials are looked up (`darts.net.credentials.resolve_credentials`) only when a
    request is about to be made, so an offline run never needs keys. The defaults are
    CDSE's `eodata` endpoint (path-style addressing, region "default").

    `repr()` / `str()` never show the keys; `dataclasses.asdict()` would, so do not log
    the result of that.
    """

    endpoint_url: str = "https://eodata.dataspace.copernicus.eu"
    region: str = "default"
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    # The shared credentials file holding `profile`; None: botocore's own lookup
    # (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials).
    credentials_file: str | None = None

    def __repr__(self) -> str:
        return (
            f"S3Settings(endpoint_url={self.endpoint_url!r}, region={self.region!r}, "
            f"profile={self.profile!r}, credentials_file={self.credentials_file!r}, "
            f"access_key_id={_mask(self.access_key_id)}, "
            f"secret_access_key={_mask(self.secret_access_key)})"
        )

    __str__ = __repr__


def _mask(value: str | None) -> str:
    return "None" if value is None else "'<set>'"
