"""The offline switch, and a socket guard that proves it works.

`NetworkGate` is the one place that decides whether the process may talk to the
network. Every client in `darts.net` (HTTP, STAC, S3, GDAL environments) calls
`gate.check(url, purpose)` immediately before it hands a URL to anything that could
connect. When offline, `check` raises `OfflineError` naming the URL and the purpose, so
no other layer needs an `if offline:` branch: code that would have fetched something
simply gets an error that says what was missing from the local cache.

Why the gate and not just socket patching: not every library opens connections through
Python's `socket` module. GDAL (rasterio's `/vsicurl/`, `/vsis3/`) uses libcurl from C,
and obstore/object_store use a Rust HTTP client; neither is visible to a patched
`socket.socket`. Those libraries must therefore never be *handed* a remote URL while
offline: `darts.net.gdal` checks the gate before it builds a GDAL environment, and any
future obstore store must be created through a function here that does the same.

`forbid_sockets()` is the test-side proof. It patches the Python socket entry points so
any connection attempt raises `ConnectionBlocked` *before* a packet is sent (and records
it, in case a library swallows the exception). With `allow_loopback=True` it lets
tests talk to their local stand-in servers while still proving nothing leaves
127.0.0.0/8 or ::1. It cannot see C/Rust clients, which is exactly why the gate exists.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from darts.net.errors import ConnectionBlocked, OfflineError


class NetworkGate:
    """Process-wide permission to use the network.

    Offline when the caller's own settings say so (`check(..., offline=True)`, from the
    `NetworkSettings.offline` every client is built with: how DARTS runs offline) or
    when the gate itself is switched offline (`set_offline` / `offline_mode`: for tests
    and embedding code that want a process-wide guarantee). Either one refuses.
    """

    def __init__(self, *, offline: bool = False) -> None:
        self._lock = threading.Lock()
        self._offline = offline
        self._refused = 0

    @property
    def offline(self) -> bool:
        return self._offline

    @property
    def refused(self) -> int:
        """How many requests were refused (for a run summary)."""
        return self._refused

    def set_offline(self, offline: bool) -> None:
        with self._lock:
            self._offline = offline

    @contextlib.contextmanager
    def offline_mode(self, offline: bool = True) -> Iterator[NetworkGate]:
        """Temporarily switch offline mode, restoring the previous state afterwards."""
        with self._lock:
            previous, self._offline = self._offline, offline
        try:
            yield self
        finally:
            with self._lock:
                self._offline = previous

    def check(self, url: str, purpose: str, *, offline: bool = False) -> None:
        """Raise `OfflineError` if a connection to `url` for `purpose` is not allowed."""
        if offline or self._offline:
            with self._lock:
                self._refused += 1
            raise OfflineError(url, purpose)


_GATE = NetworkGate()


def get_gate() -> NetworkGate:
    """The process-wide gate that clients use unless given another one."""
    return _GATE


# --------------------------------------------------------------------------------------
# forbid_sockets: the test-side proof that nothing connects.


@dataclass
class SocketAudit:
    """What `forbid_sockets` saw: blocked attempts and allowed (loopback) connections."""

    blocked: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _record(self, target: list[str], entry: str) -> None:
        with self._lock:
            target.append(entry)


_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback_host(host: object) -> bool:
    """True for loopback IP literals (127.0.0.0/8, ::1, v4-mapped) and 'localhost'."""
    if isinstance(host, bytes):
        host = host.decode("ascii", errors="replace")
    if not isinstance(host, str):
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


@contextlib.contextmanager
def forbid_sockets(*, allow_loopback: bool = False) -> Iterator[SocketAudit]:
    """Make every Python-level connection attempt raise `ConnectionBlocked`.

    Patched: `socket.socket.connect`, `connect_ex`, `sendto` (UDP needs no connect),
    `socket.create_connection`, `socket.getaddrinfo` and `socket.gethostbyname(_ex)`
    (name lookups themselves send DNS packets). The check runs before the original
    function, so a blocked attempt never reaches the kernel.

    allow_loopback: permit connections to 127.0.0.0/8, ::1 and `localhost` (and Unix
        sockets), for tests that use local stand-in servers. Names other than
        `localhost` are refused even then, since resolving them may query DNS.

    Usable as a context manager or decorator; yields a `SocketAudit`. Not thread-scoped:
    it patches the process, which is what a proof needs (a worker thread must not be
    able to slip past it). C and Rust network clients are not covered; see the module
    docstring.
    """
    audit = SocketAudit()
    # The originals, captured now so the guard composes with other patches and nests.
    orig_connect: Callable[[socket.socket, Any], None] = socket.socket.connect
    orig_connect_ex: Callable[[socket.socket, Any], int] = socket.socket.connect_ex
    orig_sendto: Callable[..., int] = socket.socket.sendto
    orig_create_connection = socket.create_connection
    orig_getaddrinfo = socket.getaddrinfo
    orig_gethostbyname = socket.gethostbyname
    orig_gethostbyname_ex = socket.gethostbyname_ex

    def refuse(op: str, target: object, why: str) -> ConnectionBlocked:
        entry = f"{op} {target!r}"
        audit._record(audit.blocked, entry)
        return ConnectionBlocked(f"forbid_sockets: blocked {entry} ({why})")

    def check_address(op: str, family: int, address: object) -> None:
        if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            host = address[0]
            if allow_loopback and is_loopback_host(host):
                audit._record(audit.allowed, f"{op} {address!r}")
                return
            why = "not loopback" if allow_loopback else "all sockets are forbidden"
            raise refuse(op, address, why)
        if allow_loopback and family == getattr(socket, "AF_UNIX", None):
            audit._record(audit.allowed, f"{op} {address!r}")
            return
        raise refuse(op, address, "socket family not allowed")

    def check_name(op: str, host: object) -> None:
        # A lookup of None (passive/bind) or of a loopback name stays on this machine.
        if host is None or is_loopback_host(host):
            return
        raise refuse(op, host, "name lookups may leave the machine")

    def connect(self: socket.socket, address: Any) -> None:
        check_address("connect", self.family, address)
        orig_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check_address("connect_ex", self.family, address)
        return orig_connect_ex(self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        check_address("sendto", self.family, args[-1])
        return orig_sendto(self, data, *args)

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        if not (allow_loopback and is_loopback_host(address[0])):
            raise refuse("create_connection", address, "not an allowed destination")
        return orig_create_connection(address, *args, **kwargs)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        check_name("getaddrinfo", host)
        return orig_getaddrinfo(host, *args, **kwargs)

    def gethostbyname(host: str) -> str:
        check_name("gethostbyname", host)
        return orig_gethostbyname(host)

    def gethostbyname_ex(host: str) -> tuple[str, list[str], list[str]]:
        check_name("gethostbyname_ex", host)
        return orig_gethostbyname_ex(host)

    patches: list[tuple[object, str, object, object]] = [
        (socket.socket, "connect", orig_connect, connect),
        (socket.socket, "connect_ex", orig_connect_ex, connect_ex),
        (socket.socket, "sendto", orig_sendto, sendto),
        (socket, "create_connection", orig_create_connection, create_connection),
        (socket, "getaddrinfo", orig_getaddrinfo, getaddrinfo),
        (socket, "gethostbyname", orig_gethostbyname, gethostbyname),
        (socket, "gethostbyname_ex", orig_gethostbyname_ex, gethostbyname_ex),
    ]
    for owner, name, _, replacement in patches:
        setattr(owner, name, replacement)
    try:
        yield audit
    finally:
        for owner, name, original, _ in patches:
            setattr(owner, name, original)
