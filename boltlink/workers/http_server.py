"""Serving one listening socket with hypercorn's protocol code, but boltlink's own accept loop.

hypercorn's worker_serve accepts as fast as it can until the queue is empty,
so on a socket shared by several workers whichever wakes first takes the
whole burst. Owning the accept loop lets a worker (1) step back when it
holds more connections than the least-loaded peer (workers/balance.py), and
(2) stop accepting the moment it starts draining, before hypercorn closes
idle connections, so no connection is accepted only to be dropped.
Everything after accept is hypercorn's: its TCPServer (with lean writes and
idle timer, workers/lean_connection.py) speaks HTTP/1.1 and h2, Lifespan runs
the app's startup and shutdown.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time
from collections.abc import Awaitable, Callable

from hypercorn.asyncio.lifespan import Lifespan
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config as HypercornConfig
from hypercorn.typing import AppWrapper

from boltlink.workers.balance import NOT_ACCEPTING, ConnectionBoard
from boltlink.workers.lean_connection import IdleTimer, LeanTCPServer, close_idle

log = logging.getLogger("boltlink.api")

# A worker ahead of its least-loaded peer waits this long for the peer to take
# the connection, and takes it itself after MAX_DEFER (the peer may be busy).
DEFER_STEP = 0.0005
MAX_DEFER = 0.005
# Connections accepted just before accepting stopped get at least this long to
# send their request before hypercorn closes the idle ones.
ACCEPT_SETTLE = 0.1


class ConnectionCount:
    def __init__(self, board: ConnectionBoard | None, slot: int | None) -> None:
        self.board, self.slot, self.open = board, slot, 0

    def publish(self, value: int | None = None) -> None:
        if self.board is not None and self.slot is not None:
            self.board.set(self.slot, self.open if value is None else value)

    def ahead_of_peers(self) -> bool:
        if self.board is None or self.slot is None:
            return False
        fewest = self.board.least_loaded_peer(self.slot)
        return fewest is not None and self.open > fewest


async def serve(app: AppWrapper, config: HypercornConfig, sock: socket.socket, *,
                stop_accepting: Callable[[], Awaitable[object]], shutdown: Callable[[], Awaitable[object]],
                board: ConnectionBoard | None = None, slot: int | None = None) -> None:
    """Run the app's startup, then accept until stop_accepting returns and serve until shutdown returns;
    then close idle connections and give busy ones config.graceful_timeout to finish."""
    loop = asyncio.get_running_loop()
    state: dict = {}
    lifespan = Lifespan(app, config, loop, state)
    lifespan_task = loop.create_task(lifespan.handle_lifespan())
    await lifespan.wait_for_startup()
    if lifespan_task.done() and lifespan_task.exception() is not None:
        raise lifespan_task.exception()  # type: ignore[misc]
    # What exists now (modules, the app, its routes and schemas: ~60,000 objects) lives as long as the
    # process: out of the collector's sight, a full collection no longer walks it. One took ~20 ms, and
    # it fell inside a request now and then (scripts/bench_stats.py's p99).
    gc.freeze()

    context = WorkerContext(None)
    count = ConnectionCount(board, slot)
    connections: set[asyncio.Task[None]] = set()
    idle: set[IdleTimer] = set()

    async def handle(conn: socket.socket) -> None:  # counted as open by _accept already
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
            await LeanTCPServer(app, loop, config, context, state, reader, writer, idle=idle)
        except OSError:
            pass  # the client left before we could start
        finally:
            count.open -= 1
            count.publish()

    accepting = loop.create_task(_accept(sock, handle, count, connections))
    count.publish()
    try:
        await stop_accepting()
        accepting.cancel()
        count.publish(NOT_ACCEPTING)
        await shutdown()
    finally:
        accepting.cancel()
        count.publish(NOT_ACCEPTING)
        await asyncio.sleep(ACCEPT_SETTLE)
        await context.terminated.set()  # connections now close instead of waiting for another request
        close_idle(idle)
        if connections:
            _, pending = await asyncio.wait(connections, timeout=config.graceful_timeout)
            if pending:
                log.warning("%d connection(s) still busy after %.0f s: closing them", len(pending),
                            config.graceful_timeout)
                for task in pending:
                    task.cancel()
        await lifespan.wait_for_shutdown()
        lifespan_task.cancel()
        await asyncio.gather(lifespan_task, return_exceptions=True)


async def _accept(sock: socket.socket, handle: Callable[[socket.socket], Awaitable[None]],
                  count: ConnectionCount, connections: set[asyncio.Task[None]]) -> None:
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    while True:
        await _readable(loop, sock)
        while True:  # take what is queued, one at a time, checking the board before each
            deferred_since = time.monotonic()
            while count.ahead_of_peers() and time.monotonic() - deferred_since < MAX_DEFER:
                await asyncio.sleep(DEFER_STEP)
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                break  # the queue is empty (a peer may have taken it: fair)
            except OSError as exc:  # EMFILE and friends: wait a moment rather than spin
                log.error("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                break
            conn.setblocking(False)
            count.open += 1  # now, not when the task runs: the next pass of this loop must see it
            count.publish()
            task = loop.create_task(handle(conn))
            connections.add(task)
            task.add_done_callback(connections.discard)


def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> asyncio.Future[None]:
    future: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        loop.remove_reader(sock.fileno())
        if not future.done():
            future.set_result(None)

    loop.add_reader(sock.fileno(), ready)
    future.add_done_callback(lambda f: loop.remove_reader(sock.fileno()) if f.cancelled() else None)
    return future
