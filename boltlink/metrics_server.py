"""/metrics on its own port (metrics_port): served by the cluster master, by `serve` alone, or by a role alone.

For when the API port is public and the scraper should reach the figures
somewhere else (a pod's metrics port, a firewalled interface). A minimal
HTTP/1.1 responder: one GET per connection, then close. It answers even
while every API worker is busy or being replaced, since the master holds
the figures.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from boltlink.config import Config
from boltlink.errors import BoltlinkError, ListenError, NotFound, Unauthorized
from boltlink.metrics import CONTENT_TYPE, authorized, render

log = logging.getLogger("boltlink.metrics")

HEAD_LIMIT = 16_384  # a scrape's request head is a few hundred bytes
READ_TIMEOUT = 5.0


def bind_metrics(config: Config) -> socket.socket | None:
    """The metrics_port socket, bound before any worker starts so a taken port fails the start."""
    if config.metrics_port is None:
        return None
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.metrics_port))
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {config.host}:{config.metrics_port} (metrics_port): "
                          f"{exc.strerror or exc}") from None
    return sock


class MetricsServer:
    def __init__(self, config: Config, sock: socket.socket, snapshot: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        self.config = config
        self.sock = sock
        self.snapshot = snapshot
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, sock=self.sock)
        host, port = self.sock.getsockname()[:2]
        log.info("metrics on http://%s:%s/metrics", host if ":" not in host else f"[{host}]", port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            if len(head) > HEAD_LIMIT:
                return
            await self._answer(head, writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass  # a client that left or sent no request: nothing to answer
        finally:
            writer.close()

    async def _answer(self, head: bytes, writer: asyncio.StreamWriter) -> None:
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, _, rest = request_line.partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        headers = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        try:
            if path != "/metrics" or method not in ("GET", "HEAD"):
                raise NotFound(f"this port serves only GET /metrics, not {method} {path}")
            if not authorized(headers.get("authorization"), self.config.metrics_token):
                raise Unauthorized("/metrics needs Authorization: Bearer <metrics_token>")
            body = render(await self.snapshot()).encode()
            extra, content_type, status = "", CONTENT_TYPE, "200 OK"
        except BoltlinkError as exc:
            body = json.dumps(exc.problem_document()).encode()
            content_type, status = "application/problem+json", f"{exc.status} {exc.title}"
            extra = 'WWW-Authenticate: Bearer realm="metrics"\r\n' if exc.status == 401 else ""
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"{extra}Connection: close\r\n\r\n".encode()
            + (body if method != "HEAD" else b"")
        )
        await writer.drain()
