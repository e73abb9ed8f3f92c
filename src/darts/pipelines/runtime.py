"""Turning resolved settings into the objects the layers take.

The settings layer knows option names; the network and store layers know nothing of
options. This module is the one place that maps one onto the other. Offline is a value
in the network settings every client is built from: an offline client refuses by
itself, and nothing process-wide is switched.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from darts.net.settings import NetworkSettings, S3Settings
from darts.paths import DataPaths, data_paths
from darts.settings.pipeline import Connectivity
from darts.settings.resolve import Resolved
from darts.settings.sections import Endpoints, Network, Storage


@dataclass(frozen=True)
class Runtime:
    paths: DataPaths
    endpoints: Endpoints
    net: NetworkSettings
    s3: S3Settings
    offline: bool
    raw_data_source: str = "cdse"


def runtime_of(settings: Resolved) -> Runtime:
    """The runtime ``settings`` describe; offline is a property of the clients built
    from it (``runtime.net.offline``), and no process-wide state changes."""
    network = settings.get(Network)
    endpoints = settings.get(Endpoints)
    offline = settings.get(Connectivity).offline if Connectivity in settings.sections else False
    net = NetworkSettings(
        timeout_s=network.request_timeout,
        max_retries=network.max_retries,
        max_concurrency=network.max_concurrency,
        offline=offline,
    )
    s3 = S3Settings(
        endpoint_url=endpoints.cdse_s3_endpoint,
        profile=endpoints.aws_profile,
        credentials_file=str(endpoints.aws_credentials_file)
        if endpoints.aws_credentials_file
        else None,
    )
    source = settings.get(Storage).raw_data_source if Storage in settings.sections else "cdse"
    return Runtime(data_paths(settings), endpoints, net, s3, offline, source)


def offline_runtime(runtime: Runtime) -> Runtime:
    """``runtime`` with every client it builds refusing to connect."""
    return replace(runtime, offline=True, net=replace(runtime.net, offline=True))
