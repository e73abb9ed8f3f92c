"""pystac-client on top of `HttpClient`, so STAC traffic gets the gate, timeouts and retries.

pystac-client's `StacApiIO` normally sends through its own `requests.Session` with a
urllib3 `Retry` (no jitter, no Retry-After cap, no truncation handling, no offline
check). `GatedStacApiIO` keeps its request building (headers, query parameters, request
modifier, POST bodies for paging) and replaces only the sending: every request goes
through `HttpClient.send`, i.e. the gate, the shared concurrency bound and the shared
retry policy.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from typing import Any

from pystac_client import Client
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from requests import Request

from darts.net.errors import RemoteError
from darts.net.guard import NetworkGate
from darts.net.http import HttpClient
from darts.net.settings import NetworkSettings

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class StacApiError(RemoteError, APIError):
    """A STAC API error status. Also an `APIError` with `status_code`, because
    pystac-client inspects that (e.g. a 404 for a missing collection means "None")."""

    def __init__(self, remote: RemoteError) -> None:
        super().__init__(
            remote.status,
            remote.url,
            remote.body_excerpt,
            retry_after_s=remote.retry_after_s,
            method=remote.method,
        )
        self.status_code: int | None = remote.status
        self.attempts = remote.attempts


class GatedStacApiIO(StacApiIO):
    """A `StacApiIO` whose requests go through an `HttpClient`."""

    def __init__(
        self,
        client: HttpClient,
        *,
        purpose: str,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
        request_modifier: Callable[[Request], Request | None] | None = None,
    ) -> None:
        # max_retries=None: pystac-client must not mount its own retrying adapter; its
        # session is only used to merge headers and parameters into requests.
        super().__init__(
            headers=headers,
            parameters=parameters,
            request_modifier=request_modifier,
            timeout=client.settings.timeout_s,
            max_retries=None,
        )
        self.client = client
        self.purpose = purpose
        self.session.headers["User-Agent"] = client.session.headers["User-Agent"]

    def request(
        self,
        href: str,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> str:
        method = (method or "GET").upper()
        if method in _BODY_METHODS:
            request = Request(method=method, url=href, headers=headers, json=parameters)
        else:
            params = deepcopy(parameters) or {}
            request = Request(method=method, url=href, headers=headers, params=params)
        modified = self._req_modifier(request) if self._req_modifier else None
        prepared = self.session.prepare_request(modified or request)
        try:
            response = self.client.send(prepared, purpose=self.purpose)
        except RemoteError as exc:
            raise StacApiError(exc) from None
        return response.content.decode("utf-8")


def stac_io(
    settings_or_client: NetworkSettings | HttpClient | None = None,
    *,
    purpose: str,
    gate: NetworkGate | None = None,
    headers: dict[str, str] | None = None,
    parameters: dict[str, Any] | None = None,
) -> GatedStacApiIO:
    """A `StacApiIO` for `pystac_client.Client.open(..., stac_io=...)`.

    Pass an existing `HttpClient` to share its concurrency bound and counters.
    """
    if isinstance(settings_or_client, HttpClient):
        client = settings_or_client
    else:
        client = HttpClient(settings_or_client, gate=gate)
    return GatedStacApiIO(client, purpose=purpose, headers=headers, parameters=parameters)


def open_stac(
    url: str,
    settings: NetworkSettings | HttpClient | None,
    purpose: str,
    *,
    gate: NetworkGate | None = None,
    headers: dict[str, str] | None = None,
) -> Client:
    """Open a STAC API through the network layer (refused with `OfflineError` offline)."""
    io = stac_io(settings, purpose=purpose, gate=gate, headers=headers)
    return Client.open(url, stac_io=io)
