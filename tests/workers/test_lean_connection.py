"""The API worker's connections (workers/lean_connection.py) on a real socket: what a client sees.

Responses are written once per loop turn and the idle wait is a timer; to a
client that must look exactly like hypercorn: every byte in order, large
bodies streamed whole, keep-alive and pipelining, the idle timeout, and
idle connections closed at once when the worker drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypercorn.config import Config as HypercornConfig
from hypercorn.utils import wrap_app

from boltlink.workers import http_server

BIG = bytes(range(256)) * 8192  # 2 MiB, in 32 chunks of 64 KiB
STEP = 65536


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].removeprefix("lifespan.")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["path"] == "/big":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(BIG)).encode())]})  # fmt: skip
        for start in range(0, len(BIG), STEP):
            await send({"type": "http.response.body", "body": BIG[start:start + STEP], "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(0.5)
    body = scope["path"].encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class Server:
    def __init__(self, keep_alive: float) -> None:
        self.config = HypercornConfig()
        self.config.keep_alive_timeout = keep_alive
        self.config.graceful_timeout = 5
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        wrapped = wrap_app(app, self.config.wsgi_max_body_size, "asgi")
        serving = http_server.serve(wrapped, self.config, self.sock, stop_accepting=self.stop.wait,
                                    shutdown=self.stop.wait)
        self.task = asyncio.create_task(serving)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server(keep_alive=0.5)
    await srv.start()
    try:
        yield srv
    finally:
        srv.stop.set()
        assert srv.task is not None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(srv.task, 10)
        srv.sock.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
    body = await asyncio.wait_for(reader.readexactly(length), 10)
    return head, body


async def test_keep_alive_and_pipelined_requests_come_back_whole_and_in_order(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(b"GET /one HTTP/1.1\r\nhost: x\r\n\r\n")
    head, body = await read_response(reader)
    assert head.startswith(b"HTTP/1.1 200") and body == b"/one"
    writer.write(b"".join(f"GET /p{i} HTTP/1.1\r\nhost: x\r\n\r\n".encode() for i in range(5)))
    for i in range(5):
        assert (await read_response(reader))[1] == f"/p{i}".encode()
    writer.close()


async def test_a_large_body_streams_whole_to_a_slow_reader(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
    await asyncio.sleep(0.3)  # the server meets a full socket buffer and must wait for us (back-pressure)
    _, body = await read_response(reader)
    assert body == BIG
    writer.write(b"GET /after HTTP/1.1\r\nhost: x\r\n\r\n")  # and the connection is still usable
    assert (await read_response(reader))[1] == b"/after"
    writer.close()


async def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(server: Server) -> None:
    reader, writer = await server.connect()
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # no request sent: closed by the server
    assert 0.4 <= time.monotonic() - started < 3
    reader, writer = await server.connect()
    writer.write(b"GET /x HTTP/1.1\r\nhost: x\r\n\r\n")
    await read_response(reader)
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # idle after a response: closed too
    assert 0.4 <= time.monotonic() - started < 3


async def test_draining_closes_idle_connections_at_once_and_finishes_busy_ones() -> None:
    srv = Server(keep_alive=30)
    await srv.start()
    try:
        idle_reader, _ = await srv.connect()
        busy_reader, busy_writer = await srv.connect()
        busy_writer.write(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.sleep(0.1)
        started = time.monotonic()
        srv.stop.set()
        assert await asyncio.wait_for(idle_reader.read(), 5) == b""
        assert time.monotonic() - started < 2  # not the 30 s keep-alive
        head, body = await read_response(busy_reader)
        assert head.startswith(b"HTTP/1.1 200") and body == b"/slow"
        assert srv.task is not None
        await asyncio.wait_for(srv.task, 10)
    finally:
        srv.stop.set()
        srv.sock.close()


def test_the_date_header_is_hypercorns_formatted_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    from email.utils import parsedate_to_datetime

    from boltlink.workers import lean_connection

    config = lean_connection.LeanConfig()
    config.include_server_header = False
    clock = [1_764_424_800.2]
    monkeypatch.setattr(lean_connection.time, "time", lambda: clock[0])
    first = config.response_headers("h11")
    assert first == [(b"date", b"Sat, 29 Nov 2025 14:00:00 GMT")]
    clock[0] += 0.7
    assert config.response_headers("h11") == first  # the same second: the same text
    clock[0] += 0.5
    (name, value), = config.response_headers("h11")
    assert parsedate_to_datetime(value.decode()).timestamp() == 1_764_424_801
    config.include_server_header = True  # anything else asked of hypercorn: its own answer
    assert (b"server", b"hypercorn-h11") in config.response_headers("h11")
