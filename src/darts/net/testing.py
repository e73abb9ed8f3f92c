"""Pytest fixtures that prove a test opens no socket, or none beyond loopback.

Load with ``pytest_plugins = ["darts.net.testing"]`` in a conftest.py, then:

- ``no_network``: any Python-level connection attempt fails (offline runs);
- ``loopback_only``: only 127.0.0.0/8, ::1 and ``localhost`` (tests against the sandbox);
- ``offline_gate``: the process gate switched offline for the test, restored after.

Each socket fixture yields the `SocketAudit`, and fails the test afterwards if any
attempt was blocked, even one that the code under test caught and swallowed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from darts.net.guard import NetworkGate, SocketAudit, forbid_sockets, get_gate


def _fail_on_blocked(audit: SocketAudit) -> None:
    if audit.blocked:
        pytest.fail(f"blocked network access: {audit.blocked}", pytrace=False)


@pytest.fixture
def no_network() -> Iterator[SocketAudit]:
    with forbid_sockets() as audit:
        yield audit
    _fail_on_blocked(audit)


@pytest.fixture
def loopback_only() -> Iterator[SocketAudit]:
    with forbid_sockets(allow_loopback=True) as audit:
        yield audit
    _fail_on_blocked(audit)


@pytest.fixture
def offline_gate() -> Iterator[NetworkGate]:
    gate = get_gate()
    with gate.offline_mode():
        yield gate
