"""The offline gate and the socket guard that proves offline runs open no socket."""

from __future__ import annotations

import socket
import time

import pytest
from test_net_support import Scripted, fast_settings, ok, serve

from darts.net import (
    ConnectionBlocked,
    HttpClient,
    NetworkGate,
    NetworkSettings,
    OfflineError,
    SocketAudit,
    forbid_sockets,
    get_gate,
)
from darts.net import testing as net_testing
from darts.net.guard import is_loopback_host


def test_gate_refuses_with_url_and_purpose() -> None:
    gate = NetworkGate()
    gate.check("https://example.org/x", "anything")  # online: no error
    with gate.offline_mode(), pytest.raises(OfflineError) as info:
        gate.check("https://example.org/x?token=s3cr3t", "STAC search for T36NYH")
    assert str(info.value) == (
        "offline mode: refusing to connect to https://example.org/x?token=REDACTED "
        "(wanted: STAC search for T36NYH)"
    )
    assert info.value.purpose == "STAC search for T36NYH"
    assert not gate.offline and gate.refused == 1
    with pytest.raises(OfflineError):
        gate.check("https://example.org/", "per-client offline", offline=True)


def test_process_gate_applies_to_clients_with_default_settings() -> None:
    gate = get_gate()
    with gate.offline_mode(), forbid_sockets(), HttpClient() as c, pytest.raises(OfflineError):
        c.get_json("https://stac.example/v1/", purpose="probe")
    assert not gate.offline


def test_offline_http_opens_no_socket() -> None:
    with (
        forbid_sockets() as audit,
        HttpClient(NetworkSettings(offline=True)) as c,
        pytest.raises(OfflineError, match=r"https://host\.example/a\.json \(wanted: load a\)"),
    ):
        c.get_json("https://host.example/a.json", purpose="load a")
    assert audit.blocked == []


def test_raw_loopback_socket_blocked_unless_allowed() -> None:
    with serve(Scripted()) as url:
        port = int(url.rsplit(":", 1)[1])
        with forbid_sockets() as audit, socket.socket() as s, pytest.raises(ConnectionBlocked):
            s.connect(("127.0.0.1", port))
        assert audit.blocked == [f"connect ('127.0.0.1', {port})"]
        with forbid_sockets(), socket.socket() as s, pytest.raises(ConnectionBlocked):
            s.connect_ex(("127.0.0.1", port))
        with forbid_sockets(allow_loopback=True) as audit, socket.socket() as s:
            s.connect(("127.0.0.1", port))
        assert audit.allowed and not audit.blocked


@pytest.mark.parametrize("allow_loopback", [False, True])
def test_non_loopback_refused_before_anything_is_sent(
    monkeypatch: pytest.MonkeyPatch, allow_loopback: bool
) -> None:
    # Replace the real connect with a recorder *before* the guard captures it: if the
    # guard ever let the call through, the recorder would see it.
    reached: list[object] = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, addr: reached.append(addr))
    start = time.monotonic()
    with forbid_sockets(allow_loopback=allow_loopback) as audit:
        with socket.socket() as s, pytest.raises(ConnectionBlocked, match=r"10\.0\.0\.1"):
            s.connect(("10.0.0.1", 80))
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u,
            pytest.raises(ConnectionBlocked),
        ):
            u.sendto(b"x", ("10.0.0.1", 53))
        with pytest.raises(ConnectionBlocked):
            socket.create_connection(("10.0.0.1", 443), timeout=5)
        with pytest.raises(ConnectionBlocked):
            socket.getaddrinfo("example.com", 443)
    assert reached == []
    assert len(audit.blocked) == 4
    assert time.monotonic() - start < 0.5


def test_guard_is_restored_and_works_as_decorator() -> None:
    original = socket.socket.connect

    @forbid_sockets()
    def offline_body() -> None:
        with socket.socket() as s, pytest.raises(ConnectionBlocked):
            s.connect(("127.0.0.1", 9))

    offline_body()
    assert socket.socket.connect is original
    assert socket.getaddrinfo("localhost", 80)


def test_blocked_connection_is_not_swallowed_or_retried_by_clients() -> None:
    # ConnectionBlocked is not an OSError, so urllib3/requests neither wrap nor retry it.
    with (
        forbid_sockets(allow_loopback=True) as audit,
        HttpClient(fast_settings(max_retries=5), gate=NetworkGate()) as c,
        pytest.raises(ConnectionBlocked),
    ):
        c.get_json("http://10.0.0.1:8080/x", purpose="test")
    assert len(audit.blocked) == 1 and "10.0.0.1" in audit.blocked[0]


def test_loopback_allowed_for_local_servers() -> None:
    with (
        serve(Scripted(then=ok(b"[]"))) as url,
        forbid_sockets(allow_loopback=True) as audit,
        HttpClient(fast_settings(), gate=NetworkGate()) as c,
    ):
        assert c.get_json(url.replace("127.0.0.1", "localhost"), purpose="t") == []
        assert c.get_json(url, purpose="t") == []
    assert not audit.blocked


def test_is_loopback_host() -> None:
    loopback: tuple[object, ...] = ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1")
    for host in (*loopback, "localhost", b"::1"):
        assert is_loopback_host(host), host
    remote: tuple[object, ...] = ("10.0.0.1", "169.254.169.254", "example.com", "::ffff:10.0.0.1")
    for host in (*remote, None):
        assert not is_loopback_host(host), host


# The shipped fixtures, registered here by assignment (conftest.py is not ours to edit).
no_network = net_testing.no_network
loopback_only = net_testing.loopback_only
offline_gate = net_testing.offline_gate


def test_shipped_fixtures_prove_an_offline_run(
    offline_gate: NetworkGate, no_network: SocketAudit
) -> None:
    assert offline_gate.offline
    with HttpClient() as c, pytest.raises(OfflineError):
        c.get_bytes("https://pgc.example/arcticdem/index.zip", purpose="ArcticDEM tile index")
    assert no_network.blocked == []


def test_loopback_only_fixture_allows_local_servers(loopback_only: SocketAudit) -> None:
    with serve(Scripted(then=ok(b"1"))) as url, HttpClient(gate=NetworkGate()) as c:
        assert c.get_json(url, purpose="t") == 1
    assert loopback_only.allowed
