"""pystac-client through the network layer: retries, paging, errors, offline refusal."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

import pytest
from pystac_client.exceptions import APIError
from test_net_support import fast_settings, serve

from darts.net import (
    HttpClient,
    NetworkGate,
    NetworkSettings,
    OfflineError,
    StacApiError,
    forbid_sockets,
    get_gate,
    open_stac,
    stac_io,
)


def _item(item_id: str) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "geometry": None,
        "properties": {"datetime": "2024-07-01T00:00:00Z"},
        "links": [],
        "assets": {},
    }


class StacApp:
    """A two-page STAC API whose first search request fails with a 503."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.search_bodies: list[dict[str, Any]] = []
        self.failures_left = 1

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        root = f"http://{environ['HTTP_HOST']}"
        path = environ["PATH_INFO"]
        if path == "/":
            return _json(start_response, 200, self._landing(root))
        if path == "/search":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length) or b"{}")
            with self.lock:
                self.search_bodies.append(body)
                if self.failures_left:
                    self.failures_left -= 1
                    return _json(start_response, 503, {"error": "busy"})
            if body.get("token") == "page2":
                return _json(start_response, 200, _page([_item("c")], None))
            nxt = {
                "rel": "next",
                "href": f"{root}/search",
                "method": "POST",
                "body": {"token": "page2"},
                "merge": True,
            }
            return _json(start_response, 200, _page([_item("a"), _item("b")], nxt))
        return _json(start_response, 404, {"code": "NotFound", "description": path})

    @staticmethod
    def _landing(root: str) -> dict[str, Any]:
        return {
            "type": "Catalog",
            "id": "test-api",
            "stac_version": "1.0.0",
            "description": "loopback STAC API",
            "conformsTo": [
                "https://api.stacspec.org/v1.0.0/core",
                "https://api.stacspec.org/v1.0.0/item-search",
            ],
            "links": [
                {"rel": "self", "href": f"{root}/"},
                {"rel": "root", "href": f"{root}/"},
                {
                    "rel": "search",
                    "type": "application/geo+json",
                    "href": f"{root}/search",
                    "method": "POST",
                },
            ],
        }


def _page(items: list[dict[str, Any]], next_link: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": items,
        "links": [next_link] if next_link else [],
    }


def _json(start_response: Any, status: int, data: Any) -> list[bytes]:
    body = json.dumps(data).encode()
    start_response(
        f"{status} X",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def test_search_pages_and_retries_through_the_client() -> None:
    app = StacApp()
    with serve(app) as url:
        http = HttpClient(fast_settings(), gate=NetworkGate())
        catalog = open_stac(f"{url}/", http, "STAC search for test items")
        search = catalog.search(collections=["c1"], max_items=10, limit=2)
        ids = [item.id for item in search.items()]
    assert ids == ["a", "b", "c"]
    # 1 failed + 2 pages; the paging token was merged into the original body.
    assert len(app.search_bodies) == 3
    assert app.search_bodies[2]["token"] == "page2"
    assert app.search_bodies[2]["collections"] == ["c1"]
    stats = http.counter.snapshot()
    assert stats.retries == 1 and stats.requests == 4


def test_error_status_is_stac_api_error_with_status_code() -> None:
    with serve(StacApp()) as url:
        io = stac_io(fast_settings(), purpose="read collection", gate=NetworkGate())
        with pytest.raises(StacApiError) as info:
            io.read_json(f"{url}/collections/missing")
    err = info.value
    assert err.status_code == 404 and err.attempts == 1
    # pystac-client treats APIError with status_code 404 as "not found".
    assert isinstance(err, APIError)


def test_offline_settings_refuse_stac_without_any_socket() -> None:
    url = "https://stac.dataspace.copernicus.eu/v1/"
    with forbid_sockets() as audit, pytest.raises(OfflineError) as info:
        open_stac(url, NetworkSettings(offline=True), "STAC search for tile 33UUP")
    message = str(info.value)
    assert message.startswith("offline mode: refusing to connect to ")
    assert url in message and "STAC search for tile 33UUP" in message
    assert audit.blocked == []


def test_process_gate_refuses_search_on_an_open_client() -> None:
    app = StacApp()
    app.failures_left = 0
    with serve(app) as url:
        catalog = open_stac(f"{url}/", fast_settings(), "STAC search for scenes")
        with (
            get_gate().offline_mode(),
            forbid_sockets() as audit,
            pytest.raises(OfflineError, match=r"/search \(wanted: STAC search for scenes\)"),
        ):
            list(catalog.search(collections=["c1"], max_items=5).items())
    assert not get_gate().offline
    assert audit.blocked == []
    assert app.search_bodies == []
