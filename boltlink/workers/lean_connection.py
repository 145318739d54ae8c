"""hypercorn's TCPServer with per-request costs taken out: one send per response, one timer per wait.

Everything that speaks HTTP stays hypercorn's (h11/h2 parsing, streams, the
ASGI calls). What changes is how the connection writes and times out, which
under wrk cost hypercorn about 30% of its time per request (profiled with
py-spy; scripts/bench.py has the figures):

- Writes. hypercorn writes the head of a response, its body and its end as
  separate RawData events, each `write()` + `await drain()`: two or three
  send() calls per redirect. Here the bytes of one loop turn are joined and
  sent once, from a callback at the end of that turn (call_soon). Past
  FLUSH_BYTES, or when the transport's buffer is full, it sends at once and
  waits for drain, as hypercorn does: a large export still streams with
  back-pressure.
- The idle timer (keep-alive timeout, and from accept the time a client
  gets to send its headers: see workers/api.py HEADER_TIMEOUT). hypercorn
  cancels and creates a task around asyncio.wait_for for every request;
  here it is one loop timer that is re-armed. Draining closes the idle
  connections at once, as hypercorn's task does when `terminated` is set:
  http_server.serve calls close_idle().
- Reads. Without a read_timeout (the API sets none) each read is awaited
  directly rather than through asyncio.wait_for.
- The Date header: formatted once a second (LeanConfig), not per response.

Order is kept: every write of a connection goes through the same buffer,
and Closed sends what is buffered before closing. A redirect's click is
written to the spool before its response is queued here, so durability
(events/spool.py) is unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from ssl import SSLError
from typing import Any
from wsgiref.handlers import format_date_time

from hypercorn.asyncio.tcp_server import MAX_RECV, TCPServer
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, Event, RawData, Updated


class LeanConfig(HypercornConfig):
    """hypercorn's settings, with the Date header of every response formatted once a second, not each time
    (wsgiref's format_date_time was ~1.5% of an API worker's time under wrk)."""

    _date_second = -1
    _date = b""

    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        if not self.include_date_header or self.include_server_header or self.alt_svc_headers:
            return super().response_headers(protocol)
        second = int(time.time())
        if second != self._date_second:
            self._date_second, self._date = second, format_date_time(second).encode("ascii")
        return [(b"date", self._date)]


# Buffered bytes past which a write goes out at once and waits for the client to take it.
FLUSH_BYTES = 64 * 1024


class IdleTimer:
    """The interface of hypercorn's AsyncioSingleTask for the idle wait, as one re-armed loop timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float, expire: Callable[[], None],
                 idle: set[IdleTimer], terminated: Callable[[], bool]) -> None:
        self.loop, self.timeout, self.expire, self.idle, self.terminated = loop, timeout, expire, idle, terminated
        self.handle: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        self.disarm()
        if self.terminated():  # draining: an idle connection closes now, as hypercorn's would
            self.expire()
            return
        self.handle = self.loop.call_later(self.timeout, self.fire)
        self.idle.add(self)

    def disarm(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.idle.discard(self)

    def fire(self) -> None:
        self.disarm()
        self.expire()

    async def restart(self, task_group: Any, action: Any) -> None:  # hypercorn's signature
        self.arm()

    async def stop(self) -> None:
        self.disarm()


class LeanTCPServer(TCPServer):
    """One connection. `idle` is the worker's set of idle connections' timers (see close_idle)."""

    def __init__(self, *args: Any, idle: set[IdleTimer], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.idle_task = IdleTimer(  # type: ignore[assignment]
            self.loop, self.config.keep_alive_timeout, self._expire, idle, self.context.terminated.is_set
        )
        self._out: list[bytes] = []
        self._out_size = 0
        self._flush_scheduled = False
        self._closing: asyncio.Task[None] | None = None

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, RawData):
            if event.data:
                self._out.append(event.data)
                self._out_size += len(event.data)
                if not self._flush_scheduled:
                    self._flush_scheduled = True
                    self.loop.call_soon(self._flush)
            transport = self.writer.transport
            if self._out_size >= FLUSH_BYTES or transport.get_write_buffer_size() >= FLUSH_BYTES:
                self._flush()
                try:
                    await self.writer.drain()
                except (ConnectionError, RuntimeError):
                    await self.protocol.handle(Closed())
        elif isinstance(event, Closed):
            await self._close()  # which sends what is buffered first
        elif isinstance(event, Updated):
            if event.idle:
                self.idle_task.arm()  # type: ignore[attr-defined]
            else:
                self.idle_task.disarm()  # type: ignore[attr-defined]

    async def _read_data(self) -> None:
        """hypercorn's loop, without asyncio.wait_for around each read when there is no read_timeout
        (workers/api.py sets none; the idle timer bounds a silent client)."""
        if self.config.read_timeout is not None:
            await super()._read_data()
            return
        while not self.reader.at_eof():
            try:
                data = await self.reader.read(MAX_RECV)
            except (ConnectionError, OSError, SSLError):
                break
            await self.protocol.handle(RawData(data))
        await self.protocol.handle(Closed())

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._out:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out, self._out_size = [], 0
        with contextlib.suppress(ConnectionError, RuntimeError):  # the client is gone: reading sees it and closes
            self.writer.write(data)

    async def _close(self) -> None:
        self._flush()
        await super()._close()

    def _expire(self) -> None:
        """Idle too long (or draining): close, as hypercorn's idle task does, in a task of its own."""
        if self._closing is None:
            self._closing = self.loop.create_task(self._initiate_server_close())


def close_idle(idle: set[IdleTimer]) -> None:
    """Close every connection waiting for a request now: the worker is draining."""
    for timer in list(idle):
        timer.fire()
