"""Group commit for click events in distributed mode: the XADDs of concurrent redirects go together.

Every redirect waits until Redis has its event (a click is safe before the
visitor is redirected). One XADD per redirect cost each of them a full
redis-py command and a round trip of its own; with many connections per
worker, dozens of redirects wait at the same moment. So a redirect puts its
event in the next batch and waits for that batch: while one pipeline is on
the wire, the events that arrive meanwhile gather for the next one. A lone
redirect still goes out at once (a batch of one); under load a pipeline
carries as many events as arrived during one round trip.

Each waiter gets the batch's outcome: nothing, or the exception that sank
it, and then spools its own event (RedisSink). A batch that reached Redis
but whose answer was lost is spooled as well and shipped again later: the
duplicates carry the same event ids, which storage keeps once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Send = Callable[[list[bytes]], Awaitable[None]]  # XADD these lines in one round trip (redis.add_lines)


class XaddBatcher:
    def __init__(self, send: Send, timeout: float) -> None:
        self._send = send
        self._timeout = timeout
        self._next: list[tuple[bytes, asyncio.Future[None]]] = []
        self._sender: asyncio.Task[None] | None = None
        self.pipelines = 0  # batches sent (tests and benchmarks read it: events / pipelines = batch size)

    async def add(self, line: bytes) -> None:
        """Return once Redis has line (one encoded event); raise what failed the batch it went in."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._next.append((line, done))
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send_all())
        await done

    async def _send_all(self) -> None:
        try:
            while self._next:
                batch, self._next = self._next, []
                self.pipelines += 1
                try:
                    await asyncio.wait_for(self._send([line for line, _ in batch]), self._timeout)
                except BaseException as exc:
                    # Exception: the waiters spool their events; anything else (the worker is stopping)
                    # is told to them as Redis being unreachable, and goes on up.
                    failure = exc if isinstance(exc, Exception) else ConnectionError("the click sender stopped")
                    for _, waiter in batch:
                        if not waiter.done():  # a waiter cancelled meanwhile (client gone) needs no answer
                            waiter.set_exception(failure)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for _, waiter in batch:
                        if not waiter.done():
                            waiter.set_result(None)
        finally:
            self._sender = None
            for _, waiter in self._next:  # only when stopping: nobody will send these
                if not waiter.done():
                    waiter.set_exception(ConnectionError("the click sender stopped"))
            self._next = []

    async def close(self) -> None:
        """Wait for the batch on the wire and any gathered after it (a stopping worker's last clicks)."""
        if self._sender is not None:
            await asyncio.shield(self._sender)
