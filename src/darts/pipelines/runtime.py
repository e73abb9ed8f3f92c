"""Turning resolved settings into the objects the layers take.

The settings layer knows option names; the network and store layers know nothing of
options. This module is the one place that maps one onto the other. Offline is a value
in the network settings every client is built from: an offline client refuses by
itself, and nothing process-wide is switched.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from darts.errors import ConfigError
from darts.net.settings import NetworkSettings, S3Settings
from darts.paths import DataPaths, data_paths
from darts.settings.pipeline import Connectivity
from darts.settings.resolve import Resolved
from darts.settings.sections import Endpoints, Network, Storage
from darts.store.waiting import DEFAULT_WAIT_S


@dataclass(frozen=True)
class Runtime:
    paths: DataPaths
    endpoints: Endpoints
    net: NetworkSettings
    s3: S3Settings
    offline: bool
    raw_data_source: str = "cdse"
    # How long to wait for another process fetching the same scene or tile (seconds).
    lock_wait_s: float = DEFAULT_WAIT_S

    @property
    def stages_scenes(self) -> bool:
        """Whether scenes are fetched into the raw-data store before they are processed
        (online, with a store); offline the store is the source, and nothing is fetched."""
        return not self.offline and self.paths.raw_data_store is not None


def runtime_of(settings: Resolved) -> Runtime:
    """The runtime ``settings`` describe; offline is a property of the clients built
    from it (``runtime.net.offline``), and no process-wide state changes."""
    # A command that never connects (readiness) takes no endpoint or network option:
    # its clients get the defaults, and are offline anyway.
    network = settings.get(Network) if Network in settings.sections else Network()
    endpoints = settings.get(Endpoints) if Endpoints in settings.sections else Endpoints()
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
    storage = settings.get(Storage) if Storage in settings.sections else None
    source = storage.raw_data_source if storage else "cdse"
    lock_wait = storage.lock_wait if storage else DEFAULT_WAIT_S
    paths = data_paths(settings)
    if offline and paths.raw_data_store is None:
        # An offline run reads every scene from the store; without one it has nothing.
        raise ConfigError(
            "--offline needs the raw-data store, but --no-raw-data-store keeps nothing on "
            "disk: drop --no-raw-data-store"
        )
    return Runtime(paths, endpoints, net, s3, offline, source, lock_wait)


def offline_runtime(runtime: Runtime) -> Runtime:
    """``runtime`` with every client it builds refusing to connect."""
    return replace(runtime, offline=True, net=replace(runtime.net, offline=True))
