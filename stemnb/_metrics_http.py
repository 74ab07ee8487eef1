"""An HTTP endpoint for Prometheus to scrape: stdlib ``http.server`` on one daemon thread."""

from __future__ import annotations

import http.server
import logging
import selectors
import socket
import threading
from collections.abc import Callable

from ._exceptions import ClosedError
from ._metrics import PROMETHEUS_CONTENT_TYPE

log = logging.getLogger("stemnb.metrics")


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = 5.0  # a client that connects and sends nothing cannot hold the thread longer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.split("?", 1)[0] != self.server.path:
            self._reply(404, b"not found; metrics are at " + self.server.path.encode() + b"\n", "text/plain")
            return
        try:
            body = self.server.render().encode("utf-8")
        except Exception as exc:
            log.exception("rendering metrics failed")
            self._reply(500, f"rendering metrics failed: {exc!r}\n".encode(), "text/plain")
            return
        self._reply(200, body, PROMETHEUS_CONTENT_TYPE)

    def _reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("metrics endpoint: " + format, *args)


class _Server(http.server.HTTPServer):
    timeout = 0.0  # handle_request() runs only once select() saw a connection: never wait in it

    def __init__(self, address: tuple[str, int], render: Callable[[], str], path: str) -> None:
        self.render = render
        self.path = path
        super().__init__(address, _Handler)


class MetricsServer:
    """Serves ``render()`` (Prometheus text) at ``http://host:port/metrics`` on a daemon thread.

    Binds at construction (``port=0`` picks a free port; read it from ``port``) and raises
    OSError when the address is taken. Requests are answered one at a time. ``close()`` stops
    the thread and frees the port (idempotent); the server is also a context manager.
    """

    def __init__(self, render: Callable[[], str], port: int = 0, host: str = "127.0.0.1", *, path: str = "/metrics") -> None:
        self._server = _Server((host, port), render, path)
        self._wake_r, self._wake_w = socket.socketpair()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name=f"stemnb-metrics-{self.port}", daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The port the server listens on (the one picked when constructed with ``port=0``)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The URL to scrape."""
        return f"http://{self.host}:{self.port}{self._server.path}"

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    @property
    def thread(self) -> threading.Thread:
        """The serving thread (ends once closed)."""
        return self._thread

    def close(self) -> None:
        """Stop serving, wait for the thread to end and free the port (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._wake_w.send(b"x")
        except OSError:  # the thread already ended (and closed its sockets)
            pass
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _serve(self) -> None:
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self._server.socket, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ)
                while True:
                    ready = [key.fileobj for key, _ in selector.select()]
                    if self._wake_r in ready:
                        return
                    self._server.handle_request()
        except Exception:
            log.exception("metrics endpoint %s failed", self.url)
        finally:
            self._server.server_close()
            self._wake_r.close()
            self._wake_w.close()

    def __enter__(self) -> MetricsServer:
        if self._closed:
            raise ClosedError("metrics server is closed")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<stemnb.MetricsServer {self.url} {'closed' if self._closed else 'serving'}>"
