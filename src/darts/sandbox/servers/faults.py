"""Fault injection and a request log for any sandbox server (WSGI middleware).

The real services rate-limit (429), fail transiently (5xx), drop connections and stall;
the pipeline has to survive all of that, so the stand-ins can be told to misbehave:

- ``error_rate``: answer with one of ``error_statuses`` instead of serving the request,
  with ``Retry-After`` when ``retry_after_s`` is set (429/503 only, like the services);
- ``reset_rate``: drop the connection with a TCP reset before answering;
- ``truncate_rate``: send the headers (with the full ``Content-Length``) and only part
  of the body, then close the connection;
- ``latency_ms``: wait before answering (every matching request, faulted or not).

Faults apply only to requests whose path matches ``match`` (a regex, searched). Each
rate is honoured exactly over every few matching requests, not just on average
(``fault_schedule``: 20 % means one of every five), from a schedule seeded per server
(base seed and server name) and restarted whenever the configuration is replaced, so a
sequential client sees the same faults on every run.

Admin endpoints are answered by the middleware itself, never faulted or logged:
``GET|PUT /_sandbox/faults`` (the configuration as JSON; PUT replaces it),
``GET /_sandbox/requests`` (the request log) and ``DELETE /_sandbox/requests``.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol, runtime_checkable

from darts.sandbox.servers.fault_schedule import FaultSchedule, schedule_seed
from darts.sandbox.servers.runner import StartResponse, WSGIApp, WSGIEnviron, reset_connection

ADMIN_PREFIX = "/_sandbox/"
# Bounded so that a long benchmark cannot grow the log without limit.
MAX_LOGGED_REQUESTS = 100_000


@dataclass(frozen=True)
class FaultConfig:
    """What a :class:`FaultInjector` does to matching requests. All off by default."""

    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (429, 503)
    retry_after_s: float | None = None
    reset_rate: float = 0.0
    truncate_rate: float = 0.0
    latency_ms: float = 0.0
    match: str | None = None

    def __post_init__(self) -> None:
        # Lists arrive from JSON; a tuple keeps the config hashable and immutable.
        object.__setattr__(self, "error_statuses", tuple(int(s) for s in self.error_statuses))
        for name in ("error_rate", "reset_rate", "truncate_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {rate}")
        if self.error_rate + self.reset_rate + self.truncate_rate > 1.0 + 1e-9:
            raise ValueError("error_rate + reset_rate + truncate_rate must not exceed 1")
        if self.error_rate > 0 and not self.error_statuses:
            raise ValueError("error_rate > 0 needs at least one error status")
        for status in self.error_statuses:
            if not 400 <= status <= 599:
                raise ValueError(f"error status {status} is not a 4xx/5xx status")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        if self.retry_after_s is not None and self.retry_after_s < 0:
            raise ValueError("retry_after_s must not be negative")
        if self.match is not None:
            try:
                re.compile(self.match)  # fail at configuration time, not per request
            except re.error as error:
                raise ValueError(f"match is not a valid regex: {error}") from None

    @classmethod
    def from_json(cls, data: Any) -> FaultConfig:
        if not isinstance(data, dict):
            raise ValueError("the fault configuration must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["error_statuses"] = list(self.error_statuses)
        return data


@runtime_checkable
class ErrorDocuments(Protocol):
    """Implemented by apps whose clients expect errors in a service-specific format."""

    def error_document(self, status: int, environ: WSGIEnviron) -> tuple[str, bytes]:
        """Return (content type, body) for an injected error with this status."""
        ...


@dataclass
class _Entry:
    method: str
    path: str
    query: str
    range: str | None
    fault: str | None
    started: float  # wall clock, for people reading the log
    status: int | None = None
    content_length: int | None = None
    bytes_sent: int = 0
    done: bool = False
    duration_s: float | None = None
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "range": self.range,
            "status": self.status,
            "content_length": self.content_length,
            "bytes_sent": self.bytes_sent,
            "fault": self.fault,
            "done": self.done,
            "started": self.started,
            "duration_s": self.duration_s,
        }


@dataclass
class _Decision:
    fault: str | None = None
    status: int | None = None
    cut_fraction: float = 0.0
    latency_s: float = 0.0
    retry_after_s: float | None = None


@dataclass
class _State:
    config: FaultConfig
    pattern: re.Pattern[str] | None
    schedule: FaultSchedule
    log: collections.deque[_Entry] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_LOGGED_REQUESTS)
    )


class FaultInjector:
    """WSGI middleware that injects faults into ``app`` and logs every request."""

    def __init__(
        self, app: WSGIApp, name: str, config: FaultConfig | None = None, seed: int = 0
    ) -> None:
        """``seed`` is the base seed; the schedule's own seed also depends on ``name``,
        so servers sharing a base seed still fault independently."""
        self.app = app
        self.name = name
        self.seed = seed
        self._lock = threading.Lock()
        self._state = self._new_state(config or FaultConfig())

    # -- Python API -----------------------------------------------------------------

    @property
    def config(self) -> FaultConfig:
        return self._state.config

    def set_config(self, config: FaultConfig | None = None, **settings: Any) -> FaultConfig:
        """Replace the configuration (``settings`` override fields of ``config``, or of
        the all-off default) and restart the schedule, so the fault sequence restarts."""
        new = dataclasses.replace(config or FaultConfig(), **settings)
        state = self._new_state(new)
        with self._lock:
            state.log = self._state.log
            self._state = state
        return new

    @contextmanager
    def faults(self, config: FaultConfig | None = None, **settings: Any) -> Iterator[FaultConfig]:
        """Apply a configuration for the duration of a ``with`` block."""
        previous = self.config
        try:
            yield self.set_config(config, **settings)
        finally:
            self.set_config(previous)

    def requests(self) -> list[dict[str, Any]]:
        """The request log, oldest first (requests still streaming are included)."""
        with self._lock:
            return [entry.to_json() for entry in self._state.log]

    def clear_requests(self) -> None:
        with self._lock:
            self._state.log.clear()

    # -- WSGI -----------------------------------------------------------------------

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(ADMIN_PREFIX):
            return self._admin(environ, start_response, path)

        decision = self._decide(path)
        entry = _Entry(
            method=environ.get("REQUEST_METHOD", "GET"),
            path=path,
            query=environ.get("QUERY_STRING", ""),
            range=environ.get("HTTP_RANGE"),
            fault=decision.fault,
            started=time.time(),
        )
        with self._lock:
            self._state.log.append(entry)

        if decision.latency_s > 0:
            time.sleep(decision.latency_s)
        if decision.fault == "reset":
            self._finish(entry, status=None)
            reset_connection(environ)
        if decision.fault == "error":
            return self._error(environ, start_response, entry, decision)

        def logging_start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            with self._lock:
                entry.status = int(status.split(None, 1)[0])
                entry.content_length = _content_length(headers)
            return start_response(status, headers, *exc)

        try:
            body = self.app(environ, logging_start_response)
        except BaseException:
            self._finish(entry, status=None)  # the server answers 500 or drops the connection
            raise
        return self._stream(body, entry, decision)

    # -- internals ------------------------------------------------------------------

    def _admin(self, environ: WSGIEnviron, start_response: StartResponse, path: str) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if path == ADMIN_PREFIX + "faults":
            if method == "PUT":
                try:
                    data = json.loads(_read_body(environ) or b"{}")
                    self.set_config(FaultConfig.from_json(data))
                except (ValueError, TypeError) as error:
                    return _json(start_response, 400, {"error": str(error)}, method)
                return _json(start_response, 200, self.config.to_json(), method)
            if method in ("GET", "HEAD"):
                return _json(start_response, 200, self.config.to_json(), method)
            return _json(start_response, 405, {"error": "use GET or PUT"}, method, "GET, PUT")
        if path == ADMIN_PREFIX + "requests":
            if method == "DELETE":
                self.clear_requests()
                start_response("204 No Content", [])
                return []
            if method in ("GET", "HEAD"):
                return _json(start_response, 200, self.requests(), method)
            return _json(start_response, 405, {"error": "use GET or DELETE"}, method, "GET, DELETE")
        return _json(start_response, 404, {"error": f"no admin endpoint {path}"}, method)

    def _new_state(self, config: FaultConfig) -> _State:
        pattern = re.compile(config.match) if config.match is not None else None
        rates = {
            "error": config.error_rate,
            "reset": config.reset_rate,
            "truncate": config.truncate_rate,
        }
        schedule = FaultSchedule(rates, schedule_seed(self.seed, self.name))
        return _State(config=config, pattern=pattern, schedule=schedule)

    def _decide(self, path: str) -> _Decision:
        with self._lock:
            state = self._state
            config = state.config
            if state.pattern is not None and not state.pattern.search(path):
                return _Decision()
            decision = _Decision(
                latency_s=config.latency_ms / 1000.0, retry_after_s=config.retry_after_s
            )
            # One card per matching request (plus one draw for the detail of a fault),
            # so the sequence of faults depends only on the seed and the request order.
            decision.fault = state.schedule.next()
            rng = state.schedule.rng
            if decision.fault == "error":
                decision.status = rng.choice(config.error_statuses)
            elif decision.fault == "truncate":
                decision.cut_fraction = rng.random()
            return decision

    def _finish(self, entry: _Entry, status: int | None) -> None:
        with self._lock:
            if status is not None:
                entry.status = status
            entry.done = True
            entry.duration_s = time.perf_counter() - entry._t0

    def _error(
        self,
        environ: WSGIEnviron,
        start_response: StartResponse,
        entry: _Entry,
        decision: _Decision,
    ) -> list[bytes]:
        status = decision.status or 503
        if isinstance(self.app, ErrorDocuments):
            content_type, body = self.app.error_document(status, environ)
        else:
            content_type = "application/json"
            phrase = _phrase(status)
            message = {"code": phrase.replace(" ", ""), "description": f"{phrase} (injected)"}
            body = json.dumps(message).encode()
        headers = [("Content-Type", content_type)]
        if decision.retry_after_s is not None and status in (429, 503):
            # Retry-After is whole seconds (RFC 9110); round up so clients never retry early.
            headers.append(("Retry-After", str(math.ceil(decision.retry_after_s))))
        if environ.get("REQUEST_METHOD") == "HEAD":
            body = b""
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{status} {_phrase(status)}", headers)
        with self._lock:
            entry.bytes_sent = len(body)
        self._finish(entry, status)
        return [body]

    def _stream(
        self,
        body: Iterable[bytes],
        entry: _Entry,
        decision: _Decision,
    ) -> Iterator[bytes]:
        # A generator so that the count grows as the server writes; it is updated
        # *before* each chunk goes out, so a client that has read N bytes always finds
        # bytes_sent >= N in the log.
        limit: int | None = None
        decided = False
        try:
            for chunk in body:
                if decision.fault == "truncate" and not decided:
                    limit = _truncation_point(entry, decision.cut_fraction, chunk)
                    decided = True
                if limit is not None and entry.bytes_sent + len(chunk) >= limit:
                    chunk = chunk[: max(0, limit - entry.bytes_sent)]
                    with self._lock:
                        entry.bytes_sent += len(chunk)
                    if chunk:
                        yield chunk
                    # Ending the body early makes werkzeug close the connection (it
                    # always answers "Connection: close"): the client gets a clean end
                    # of stream short of Content-Length, i.e. an incomplete read.
                    return
                with self._lock:
                    entry.bytes_sent += len(chunk)
                yield chunk
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            self._finish(entry, status=None)


def _truncation_point(entry: _Entry, fraction: float, first_chunk: bytes) -> int | None:
    # Decided when the first body chunk arrives, i.e. after the wrapped app has set its
    # headers. Without a declared length the cut falls inside the first chunk.
    if entry.method == "HEAD":
        return None
    length = entry.content_length if entry.content_length is not None else len(first_chunk)
    if length <= 0:
        return None  # nothing to cut: served whole, the log still says "truncate"
    return int(fraction * length)


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if name.lower() == "content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _read_body(environ: WSGIEnviron) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _json(
    start_response: StartResponse,
    status: int,
    data: Any,
    method: str,
    allow: str | None = None,
) -> list[bytes]:
    body = json.dumps(data).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if allow is not None:
        headers.append(("Allow", allow))
    start_response(f"{status} {_phrase(status)}", headers)
    return [] if method == "HEAD" else [body]
