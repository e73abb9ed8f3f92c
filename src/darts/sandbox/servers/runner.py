"""Run a WSGI app on a loopback port in a background thread.

Werkzeug's threaded development server is enough for a sandbox, with three changes:

- no access log: werkzeug prints one coloured line per request to stderr, which costs
  more than serving a small range request and floods test output;
- Nagle's algorithm is off: werkzeug writes the header block and the body in separate
  ``send`` calls, and Nagle + delayed ACK can hold the body back ~40 ms;
- a connection can be *reset* on purpose (see :func:`reset_connection`), which fault
  injection needs to imitate a flaky network.

HTTP/1.1 keep-alive is not available: werkzeug 3 always answers ``Connection: close``
(its request handler cannot drain a request body safely between requests), so every
request opens a new loopback connection (~0.1 ms).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, NoReturn

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

WSGIEnviron = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[WSGIEnviron, StartResponse], Iterable[bytes]]

_log = logging.getLogger("darts.sandbox.servers")

# SO_LINGER with a zero timeout makes close() send an RST instead of a FIN.
_LINGER_RESET = struct.pack("ii", 1, 0)


class ConnectionResetByServer(ConnectionResetError):
    """Raised inside a request to drop its connection without answering.

    It derives from ``ConnectionError`` because werkzeug treats those as a dropped
    connection: it writes nothing more (no 500 page) and calls ``connection_dropped``.
    """


def reset_connection(environ: WSGIEnviron) -> NoReturn:
    """Abort the connection of the current request with a TCP reset.

    Only call this before anything of the answer was sent (or accept that the client
    may see part of it). Under :class:`ServerThread` the client gets ``ECONNRESET``;
    under another werkzeug server it gets at least an empty reply.
    """
    sock = environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        # OSError: the client already went away, nothing left to reset.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    raise ConnectionResetByServer("connection reset by the sandbox server")


def _is_marked_for_reset(sock: socket.socket) -> bool:
    try:
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8) == _LINGER_RESET
    except OSError:
        return False


class _SandboxHandlerMixin:
    """Quiet, low-latency request handling; mixed into werkzeug's handler classes."""

    protocol_version = "HTTP/1.1"
    # Sends the header block without waiting for an ACK of the previous segment.
    disable_nagle_algorithm = True
    # A client that connects and never sends a request must not pin a thread forever.
    timeout = 120

    close_connection: bool

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log(self, type: str, message: str, *args: Any) -> None:
        level = logging.WARNING if type == "error" else logging.DEBUG
        _log.log(level, message, *args)

    def connection_dropped(self, error: BaseException, environ: WSGIEnviron | None = None) -> None:
        # Nothing (or not all) was answered, so the "Connection: close" header that
        # normally ends the exchange may not have been sent: without this the handler
        # would wait for another request on a connection the client considers dead.
        self.close_connection = True


class _SandboxServer(ThreadedWSGIServer):
    def shutdown_request(self, request: Any) -> None:
        # socketserver half-closes with shutdown(SHUT_WR) first, which sends a FIN: the
        # client would see a clean end of stream instead of the intended reset.
        if isinstance(request, socket.socket) and _is_marked_for_reset(request):
            self.close_request(request)
            return
        super().shutdown_request(request)

    def log(self, type: str, message: str, *args: Any) -> None:
        level = logging.WARNING if type == "error" else logging.DEBUG
        _log.log(level, message, *args)


_handler_classes: dict[type[WSGIRequestHandler], type[WSGIRequestHandler]] = {}
_handler_lock = threading.Lock()


def _quiet_handler(base: type[WSGIRequestHandler]) -> type[WSGIRequestHandler]:
    # One subclass per base, so werkzeug never patches ``protocol_version`` onto a
    # class that someone else (e.g. moto) shares.
    with _handler_lock:
        cls = _handler_classes.get(base)
        if cls is None:
            cls = type(f"Sandbox{base.__name__}", (_SandboxHandlerMixin, base), {})
            _handler_classes[base] = cls
        return cls


class ServerThread:
    """A WSGI app served on ``http://127.0.0.1:<port>`` by a background thread.

    ``port=0`` picks a free port; ``.url`` and ``.port`` are valid after ``start()``.
    Use as a context manager or call ``start()`` / ``stop()``.
    """

    def __init__(
        self,
        app: WSGIApp,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        request_handler: type[WSGIRequestHandler] = WSGIRequestHandler,
        name: str = "sandbox-server",
    ) -> None:
        self.app = app
        self.host = host
        self.name = name
        self._requested_port = port
        self._handler = _quiet_handler(request_handler)
        self._server: _SandboxServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> ServerThread:
        if self._server is not None:
            raise RuntimeError(f"{self.name} is already running")
        # Bind the socket here rather than in werkzeug: werkzeug calls sys.exit() when
        # the port is taken, which a library must never do.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
            sock.listen(socket.SOMAXCONN)
            # werkzeug dup()s the descriptor, so ours is closed right after.
            server = _SandboxServer(
                self.host, sock.getsockname()[1], self.app, self._handler, fd=sock.fileno()
            )
        finally:
            sock.close()
        self._server = server
        self._thread = threading.Thread(
            # A short poll interval keeps stop() fast; an idle poll costs nothing.
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        if thread is not None:
            thread.join()
        server.server_close()
        self._server = None
        self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"ServerThread({self.name}, {where})"
