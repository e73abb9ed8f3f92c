"""Scripted loopback HTTP servers for the network-layer tests (no tests in here).

Each request to a `Scripted` app is answered by the next step of its script, then by
`then` once the script is used up, so a test can say exactly "first a 503, then a reset,
then the real answer". The app also records how many requests were in flight at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from darts.net import NetworkSettings
from darts.sandbox.servers.runner import ServerThread, reset_connection

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
App = Callable[[Environ, StartResponse], Iterable[bytes]]


def fast_settings(**overrides: Any) -> NetworkSettings:
    """Tiny backoff so retry tests take milliseconds, not seconds."""
    values: dict[str, Any] = {
        "timeout_s": 5.0,
        "max_retries": 3,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "max_concurrency": 4,
    }
    values.update(overrides)
    return NetworkSettings(**values)


def ok(body: bytes = b"{}", content_type: str = "application/json") -> App:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        data = body
        status = "200 OK"
        headers = [("Content-Type", content_type)]
        spec = environ.get("HTTP_RANGE")
        if spec and spec.startswith("bytes="):
            first, last = spec[len("bytes=") :].split("-")
            data = body[int(first) : int(last) + 1]
            status = "206 Partial Content"
            headers.append(("Content-Range", f"bytes {first}-{last}/{len(body)}"))
        headers.append(("Content-Length", str(len(data))))
        start_response(status, headers)
        return [data]

    return app


def ok_ignoring_range(body: bytes) -> App:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    return app


def error(status: int, retry_after: str | None = None, body: bytes = b"nope") -> App:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        if retry_after is not None:
            headers.append(("Retry-After", retry_after))
        start_response(f"{status} Error", headers)
        return [body]

    return app


def reset() -> App:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return reset_connection(environ)

    return app


def truncated(body: bytes, keep: int) -> App:
    """Declare the full Content-Length but send only `keep` bytes, then close."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return iter([body[:keep]])

    return app


def slow(seconds: float, then: App) -> App:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        time.sleep(seconds)
        return then(environ, start_response)

    return app


class Scripted:
    """A WSGI app answering request i with script[i], then with `then`."""

    def __init__(self, *script: App, then: App | None = None) -> None:
        self._script = list(script)
        self._then = then or ok()
        self._lock = threading.Lock()
        self.hits = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.request_times: list[float] = []
        self.headers: list[dict[str, str]] = []
        self.bodies: list[bytes] = []

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        with self._lock:
            self.hits += 1
            self.request_times.append(time.monotonic())
            self.headers.append(
                {k[5:]: str(v) for k, v in environ.items() if k.startswith("HTTP_")}
            )
            self.bodies.append(body)
            step = self._script.pop(0) if self._script else self._then
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            # Materialise the answer so the in-flight count covers the whole exchange.
            return list(step(environ, start_response))
        finally:
            with self._lock:
                self.in_flight -= 1


@contextmanager
def serve(app: App) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 and yield its base URL."""
    with ServerThread(app, name="net-test") as server:
        yield server.url
