"""HttpClient: timeouts, retries, backoff, Retry-After, concurrency bound, downloads."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from test_net_support import (
    Scripted,
    error,
    fast_settings,
    ok,
    ok_ignoring_range,
    reset,
    serve,
    slow,
    truncated,
)

from darts.net import (
    ChecksumMismatch,
    HttpClient,
    NetworkError,
    NetworkGate,
    RemoteError,
    to_multihash,
)
from darts.net.redact import redact_url
from darts.net.retry import RetryPolicy, parse_retry_after
from darts.net.unreachable import EndpointUnreachable, UnreachableEndpoints
from darts.sandbox.servers.faults import FaultConfig, FaultInjector

PAYLOAD = bytes(range(256)) * 64  # 16 KiB


def client(**overrides: object) -> HttpClient:
    # A private gate: these tests must not depend on (or change) the process gate.
    return HttpClient(fast_settings(**overrides), gate=NetworkGate())


def test_get_json_counts_requests_and_bytes() -> None:
    seen: list[int] = []
    app = Scripted(then=ok(b'{"a": 1}'))
    with (
        serve(app) as url,
        HttpClient(fast_settings(), gate=NetworkGate(), on_bytes=seen.append) as c,
    ):
        assert c.get_json(f"{url}/x", purpose="test", params={"q": "1"}) == {"a": 1}
        stats = c.counter.snapshot()
    assert (stats.requests, stats.retries, stats.bytes_received) == (1, 0, 8)
    assert sum(seen) == 8
    assert app.headers[0]["USER_AGENT"].startswith("darts/")


def test_post_json_sends_body() -> None:
    app = Scripted(then=ok(b"[1, 2]"))
    with serve(app) as url, client() as c:
        assert c.post_json(f"{url}/search", {"limit": 2}, purpose="test") == [1, 2]
    assert json.loads(app.bodies[0]) == {"limit": 2}


def test_retries_503_then_succeeds() -> None:
    app = Scripted(error(503), error(502), then=ok(b'{"ok": true}'))
    with serve(app) as url, client() as c:
        assert c.get_json(url, purpose="test") == {"ok": True}
        assert c.counter.snapshot().retries == 2
    assert app.hits == 3


def test_retry_after_seconds_is_honoured() -> None:
    app = Scripted(error(429, retry_after="1"), then=ok())
    with serve(app) as url, client(backoff_max_s=5.0) as c:
        c.get_json(url, purpose="test")
    waited = app.request_times[1] - app.request_times[0]
    # Backoff alone would be <= 10 ms; the server asked for 1 s.
    assert 0.95 <= waited < 2.0


def test_retry_after_is_capped_by_backoff_max() -> None:
    app = Scripted(error(503, retry_after="30"), then=ok())
    with serve(app) as url, client(backoff_max_s=0.1) as c:
        start = time.monotonic()
        c.get_json(url, purpose="test")
    assert time.monotonic() - start < 1.0


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 5, 27, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=42), usegmt=True), now) == 42
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None) is None


def test_backoff_is_jittered_and_capped() -> None:
    policy = RetryPolicy(max_retries=10, backoff_base_s=1.0, backoff_max_s=8.0)
    delays = [policy.backoff_s(9) for _ in range(200)]
    assert max(delays) <= 8.0
    assert min(delays) < 4.0 < max(delays)  # full jitter spreads over [0, cap]
    assert policy.delay_s(0, retry_after_s=100.0) == 8.0


def test_retries_connection_reset() -> None:
    app = Scripted(reset(), then=ok(b'{"v": 2}'))
    with serve(app) as url, client() as c:
        assert c.get_json(url, purpose="test") == {"v": 2}
    assert app.hits == 2


def test_retries_truncated_body() -> None:
    app = Scripted(truncated(PAYLOAD, 1000), then=ok(PAYLOAD))
    with serve(app) as url, client() as c:
        assert c.get_bytes(url, purpose="test") == PAYLOAD
    assert app.hits == 2


def test_gives_up_after_max_retries_with_clear_error() -> None:
    app = Scripted(then=error(503, body=b"service down for maintenance"))
    with serve(app) as url, client(max_retries=3) as c, pytest.raises(RemoteError) as info:
        c.get_json(f"{url}/thing", purpose="test")
    assert app.hits == 4
    err = info.value
    assert err.status == 503 and err.attempts == 4
    assert "gave up after 4 attempts" in str(err)
    assert "/thing" in str(err) and "maintenance" in str(err)


def test_gives_up_on_persistent_resets_via_fault_injector() -> None:
    injector = FaultInjector(ok(), "flaky", FaultConfig(reset_rate=1.0))
    with serve(injector) as url, client(max_retries=2) as c, pytest.raises(NetworkError) as info:
        c.get_json(url, purpose="test")
    assert len(injector.requests()) == 3
    assert info.value.attempts == 3
    assert "GET http://127.0.0.1" in str(info.value)


def test_client_errors_are_not_retried() -> None:
    app = Scripted(then=error(404, body=b"no such collection"))
    with serve(app) as url, client() as c, pytest.raises(RemoteError) as info:
        c.get_json(url, purpose="test")
    assert app.hits == 1 and info.value.status == 404 and info.value.attempts == 1


def test_final_transport_errors_are_network_errors() -> None:
    def loop(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
        start_response("302 Found", [("Location", "/again"), ("Content-Length", "0")])
        return []

    app = Scripted(then=loop)
    with serve(app) as url, client() as c, pytest.raises(NetworkError, match="TooManyRedirects"):
        c.get_json(url, purpose="test")
    assert app.hits == 31  # requests' redirect limit, and no retries on top of it


def test_read_timeout_fires_and_is_retried() -> None:
    app = Scripted(then=slow(3.0, ok()))
    with serve(app) as url, client(timeout_s=(1.0, 0.3), max_retries=1) as c:
        start = time.monotonic()
        with pytest.raises(NetworkError) as info:
            c.get_json(url, purpose="test")
        elapsed = time.monotonic() - start
    assert app.hits == 2
    assert elapsed < 2.0  # two 0.3 s timeouts, not two 3 s answers
    assert "Timeout" in str(info.value)


def test_concurrency_bound_holds_across_threads() -> None:
    app = Scripted(then=slow(0.05, ok()))
    with serve(app) as url, client(max_concurrency=3) as c:
        threads = [
            threading.Thread(target=c.get_json, args=(url,), kwargs={"purpose": "test"})
            for _ in range(12)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert app.hits == 12
    assert app.max_in_flight == 3


def test_get_bytes_range() -> None:
    with serve(Scripted(then=ok(PAYLOAD))) as url, client() as c:
        assert c.get_bytes(url, purpose="test", byte_range=(10, 20)) == PAYLOAD[10:20]
    with serve(Scripted(then=ok_ignoring_range(PAYLOAD))) as url, client() as c:
        assert c.get_bytes(url, purpose="test", byte_range=(10, 20)) == PAYLOAD[10:20]
    with client() as c, pytest.raises(ValueError):
        c.get_bytes("http://127.0.0.1:1/", purpose="test", byte_range=(5, 5))


@pytest.mark.parametrize("algorithm", ["sha3-256", "sha2-256"])
def test_stream_to_file_verifies_checksum(tmp_path: Path, algorithm: str) -> None:
    target = tmp_path / "sub" / "band.jp2"
    checksum = to_multihash(algorithm, PAYLOAD)
    with serve(Scripted(then=ok(PAYLOAD))) as url, client() as c:
        out = c.stream_to_file(
            url, target, purpose="test", expected_size=len(PAYLOAD), checksum=checksum
        )
    assert out == target and target.read_bytes() == PAYLOAD
    assert list(target.parent.iterdir()) == [target]  # no temp files left behind


def test_stream_to_file_refetches_corrupt_then_succeeds(tmp_path: Path) -> None:
    corrupt = b"\xff" + PAYLOAD[1:]
    app = Scripted(ok(corrupt), truncated(PAYLOAD, 500), then=ok(PAYLOAD))
    target = tmp_path / "band.jp2"
    with serve(app) as url, client() as c:
        c.stream_to_file(url, target, purpose="test", checksum=to_multihash("sha3-256", PAYLOAD))
    assert app.hits == 3 and target.read_bytes() == PAYLOAD


def test_stream_to_file_gives_up_on_persistent_mismatch(tmp_path: Path) -> None:
    app = Scripted(then=ok(b"x" + PAYLOAD[1:]))
    target = tmp_path / "band.jp2"
    with serve(app) as url, client(max_retries=2) as c, pytest.raises(ChecksumMismatch) as info:
        c.stream_to_file(
            f"{url}/band.jp2", target, purpose="test", checksum=to_multihash("sha3-256", PAYLOAD)
        )
    assert app.hits == 3 and info.value.attempts == 3
    assert "band.jp2" in str(info.value) and "sha3-256" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a partial temp file


def test_stream_to_file_size_mismatch(tmp_path: Path) -> None:
    with (
        serve(Scripted(then=ok(PAYLOAD))) as url,
        client(max_retries=0) as c,
        pytest.raises(ChecksumMismatch, match="size mismatch"),
    ):
        c.stream_to_file(url, tmp_path / "f", purpose="test", expected_size=len(PAYLOAD) + 1)


def test_retries_logged_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    app = Scripted(error(503), then=ok())
    caplog.set_level(logging.DEBUG)
    with serve(app) as url, client() as c:
        c.request(
            "GET",
            f"{url}/search?token=hunter2",
            purpose="test",
            headers={"Authorization": "Bearer SECRET-TOKEN"},
        )
    ours = [r for r in caplog.records if r.name.startswith("darts.")]
    retry_lines = [r for r in ours if "retry 1/3" in r.getMessage()]
    assert retry_lines and retry_lines[0].levelno == logging.INFO
    # No header value at any level, from any logger (urllib3 included).
    assert "SECRET-TOKEN" not in caplog.text
    # Query strings can hold signatures; ours are redacted (urllib3's DEBUG lines are
    # its own business and are not enabled by DARTS).
    assert all("hunter2" not in r.getMessage() for r in ours)
    assert app.headers[1]["AUTHORIZATION"] == "Bearer SECRET-TOKEN"


def test_redact_url() -> None:
    url = "https://user:pw@host/p?X-Amz-Signature=abc&X-Amz-Credential=k&page=2"
    redacted = redact_url(url)
    assert "pw" not in redacted and "abc" not in redacted and "=k" not in redacted
    assert "page=2" in redacted and redacted.startswith("https://REDACTED@host/p?")


# -- an endpoint that cannot be connected to -----------------------------------------------


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_endpoint_fails_fast_after_one_budget() -> None:
    port = closed_port()
    url = f"http://127.0.0.1:{port}/index.zip"
    with client(max_retries=2) as c:
        with pytest.raises(NetworkError) as first:
            c.get_bytes(url, purpose="test")
        # One line naming the request, the endpoint and why; no urllib3 internals.
        assert str(first.value) == (
            f"GET {url}: cannot connect to http://127.0.0.1:{port} (Connection refused) "
            "(gave up after 3 attempts)"
        )
        started = time.monotonic()
        with pytest.raises(EndpointUnreachable) as second:
            c.get_range(f"http://127.0.0.1:{port}/tile.tif", 0, 100, purpose="test")
        assert time.monotonic() - started < 0.1
        assert f"cannot connect to http://127.0.0.1:{port} (Connection refused)" in str(
            second.value
        )
        assert "\n" not in str(second.value)
        # The second request was never sent; another endpoint is not affected.
        assert c.counter.snapshot().requests == 3
        with serve(Scripted(then=ok(b"{}"))) as other:
            assert c.get_json(other, purpose="test") == {}


def test_an_unreachable_hold_ends() -> None:
    now = [0.0]
    held = UnreachableEndpoints(hold_s=120.0, clock=lambda: now[0])
    held.hold("http://127.0.0.1:9", "Connection refused", 6)
    with pytest.raises(EndpointUnreachable, match="failed all 6 attempts"):
        held.check("http://127.0.0.1:9", "GET http://127.0.0.1:9/x")
    held.check("http://127.0.0.1:10", "GET http://127.0.0.1:10/x")
    now[0] = 121.0
    held.check("http://127.0.0.1:9", "GET http://127.0.0.1:9/x")  # tried again
    assert not held.is_held("http://127.0.0.1:9")
