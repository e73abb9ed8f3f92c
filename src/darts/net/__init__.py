"""The network layer: the only code in DARTS that opens connections.

Everything remote goes through here: HTTP/STAC (`HttpClient`, `open_stac`), S3
(`S3Client`), remote COGs (`RemoteCog`: bytes through `HttpClient`, decoded by GDAL
from memory), and GDAL's own readers (`remote_raster_env`, left to the sandbox's
self-test). One retry policy (`darts.net.retry`) covers every transfer. Each checks the
process gate (`get_gate()`) before handing a URL to anything that can connect, so offline mode
is a property of this package alone: other layers never test an `offline` flag, they
just get an `OfflineError` that names what they wanted.

Names are imported lazily: `import darts.net` must stay cheap for the CLI, while boto3,
requests and pystac-client together take most of a second to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from darts._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "AwsCredentials": "credentials",
    "ChecksumMismatch": "errors",
    "CogReadError": "cog",
    "ConnectionBlocked": "errors",
    "CredentialsError": "errors",
    "EndpointUnreachable": "unreachable",
    "GatedStacApiIO": "stac",
    "HttpClient": "http",
    "NetworkError": "errors",
    "NetworkGate": "guard",
    "NetworkSettings": "settings",
    "OfflineError": "errors",
    "RangeBody": "ranges",
    "RemoteCog": "cog",
    "RemoteError": "errors",
    "S3Client": "s3",
    "S3Error": "s3",
    "S3Location": "s3",
    "S3ObjectInfo": "s3",
    "S3Settings": "settings",
    "SocketAudit": "guard",
    "StacApiError": "stac",
    "StreamingVerifier": "checksum",
    "TransferCounter": "progress",
    "TransferStats": "progress",
    "forbid_sockets": "guard",
    "gdal_env": "gdal",
    "gdal_http_options": "gdal",
    "get_gate": "guard",
    "open_stac": "stac",
    "parse_multihash": "checksum",
    "parse_s3_href": "s3",
    "remote_raster_env": "gdal",
    "stac_io": "stac",
    "to_multihash": "checksum",
    "verify": "checksum",
}

__all__ = [
    "AwsCredentials",
    "ChecksumMismatch",
    "CogReadError",
    "ConnectionBlocked",
    "CredentialsError",
    "EndpointUnreachable",
    "GatedStacApiIO",
    "HttpClient",
    "NetworkError",
    "NetworkGate",
    "NetworkSettings",
    "OfflineError",
    "RangeBody",
    "RemoteCog",
    "RemoteError",
    "S3Client",
    "S3Error",
    "S3Location",
    "S3ObjectInfo",
    "S3Settings",
    "SocketAudit",
    "StacApiError",
    "StreamingVerifier",
    "TransferCounter",
    "TransferStats",
    "forbid_sockets",
    "gdal_env",
    "gdal_http_options",
    "get_gate",
    "open_stac",
    "parse_multihash",
    "parse_s3_href",
    "remote_raster_env",
    "stac_io",
    "to_multihash",
    "verify",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from darts.net.checksum import StreamingVerifier, parse_multihash, to_multihash, verify
    from darts.net.cog import CogReadError, RemoteCog
    from darts.net.credentials import AwsCredentials
    from darts.net.errors import (
        ChecksumMismatch,
        ConnectionBlocked,
        CredentialsError,
        NetworkError,
        OfflineError,
        RemoteError,
    )
    from darts.net.gdal import gdal_env, gdal_http_options, remote_raster_env
    from darts.net.guard import NetworkGate, SocketAudit, forbid_sockets, get_gate
    from darts.net.http import HttpClient
    from darts.net.progress import TransferCounter, TransferStats
    from darts.net.ranges import RangeBody
    from darts.net.s3 import S3Client, S3Error, S3Location, S3ObjectInfo, parse_s3_href
    from darts.net.settings import NetworkSettings, S3Settings
    from darts.net.stac import GatedStacApiIO, StacApiError, open_stac, stac_io
    from darts.net.unreachable import EndpointUnreachable
