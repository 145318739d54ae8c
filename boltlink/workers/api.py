"""The API worker: the Quart app under hypercorn, until SIGTERM or SIGINT asks it to drain.

Standalone (`boltlink serve`) it binds its own socket. Under the cluster it
serves the socket the master bound (listen_fd) and reports to the master over
channel_fd: ready once serving, then a heartbeat with its counters each second.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import signal
import socket
from pathlib import Path
from typing import Any

from hypercorn.utils import wrap_app

from boltlink import __version__, build_id
from boltlink.config import Config
from boltlink.errors import ListenError, MasterUnavailable
from boltlink.events import create_sink
from boltlink.metrics_server import MetricsServer, bind_metrics
from boltlink.store import create_store
from boltlink.web import create_app
from boltlink.web.metrics import own_snapshot
from boltlink.web.state import AppState
from boltlink.web.telemetry import RequestCounters
from boltlink.workers import http_server
from boltlink.workers.balance import ConnectionBoard
from boltlink.workers.bootstrap import configure_logging, run_async
from boltlink.workers.channel import MasterChannel
from boltlink.workers.lean_connection import LeanConfig

log = logging.getLogger("boltlink.api")

HEARTBEAT_SECONDS = 1.0
# hypercorn's idle timer runs from accept (and from each response) until a request's headers are
# in, so this is also how long a client gets to send them: a slowloris is closed after it. (No
# read_timeout: it counts time without incoming bytes, so it would also cut a client waiting for
# a long answer; Quart's BODY_TIMEOUT bounds a trickled body instead.)
HEADER_TIMEOUT = 5.0


def run_api(config: Config, *, process_name: str = "api", listen_fd: int | None = None,
            channel_fd: int | None = None, balance: tuple[str, int] | None = None) -> None:
    """Serve the API in this process until told to stop.

    balance: the cluster's connection board file and this worker's slot on it.
    """
    configure_logging(config, process_name)
    metrics_sock = None
    if listen_fd is None:
        sock = bind_socket(config.host, config.port, config.backlog)
        metrics_sock = bind_metrics(config)  # `serve` alone; under the cluster the master serves it
    else:
        sock = socket.socket(fileno=listen_fd)
        sock.setblocking(False)
    channel = MasterChannel(channel_fd) if channel_fd is not None else None
    board = ConnectionBoard(Path(balance[0])) if balance else None
    run_async(serve_api(config, sock, channel, process_name=process_name, board=board,
                        balance_slot=balance[1] if balance else None, metrics_sock=metrics_sock))


def bind_socket(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


async def serve_api(config: Config, sock: socket.socket, channel: MasterChannel | None = None, *,
                    process_name: str = "api", board: ConnectionBoard | None = None,
                    balance_slot: int | None = None, metrics_sock: socket.socket | None = None) -> None:
    """Open the store and event sink (a boot failure surfaces here, before any request), then serve sock."""
    store = create_store(config)
    await store.open()
    sink = create_sink(config, process_name)
    await sink.open()
    app = create_app(config, store, sink)
    state: AppState = app.extensions["boltlink"]
    counters = state.counters
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    draining = asyncio.Event()

    def begin_shutdown(delay: float = config.drain_delay) -> None:
        # From now on /ready fails, responses say Connection: close, and this
        # worker accepts nothing new (new connections wait in the shared queue
        # for the other workers). After drain_delay, idle keep-alive connections
        # are closed and in-flight requests get kill_timeout seconds to finish.
        if not state.draining:
            state.draining = True
            draining.set()
            log.info("draining")
            loop.call_later(delay, stop.set)

    # Under the cluster only the master's SIGTERM counts: Ctrl-C goes to the master.
    for signum in (signal.SIGTERM,) if channel else (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, begin_shutdown)

    if channel is not None:
        await channel.open(on_master_lost=lambda: begin_shutdown(0.0))
        state.cluster_metrics = functools.partial(ask_master, channel, "metrics")
        state.cluster_status = functools.partial(ask_master, channel, "status")

        @app.before_serving
        async def announce_ready() -> None:
            channel.send({"type": "ready", "pid": os.getpid(), "version": __version__, "build": build_id()})
            loop.create_task(heartbeat(channel, counters, config))

    side_tasks = []
    metrics_port = None
    if metrics_sock is not None:
        metrics_port = MetricsServer(config, metrics_sock, lambda: _own_snapshot(state))
        await metrics_port.start()
    if channel is None and not config.redis_url:
        # `serve` alone in embedded mode: also aggregate clicks here, so one
        # process is a complete shortener. Under the cluster the aggregator
        # role does this, exactly once per deployment.
        from boltlink.workers.aggregator import run_aggregator
        from boltlink.workers.runtime import Telemetry

        aggregator = Telemetry()
        state.aggregator_figures = aggregator.figures  # for /metrics
        side_tasks.append(loop.create_task(run_aggregator(config, stop, aggregator)))

    hypercorn_config = LeanConfig()
    hypercorn_config.backlog = config.backlog  # hypercorn re-listens with its own default of 100 otherwise
    hypercorn_config.graceful_timeout = config.kill_timeout
    hypercorn_config.keep_alive_timeout = HEADER_TIMEOUT
    hypercorn_config.accesslog = None
    hypercorn_config.include_server_header = False  # no `server: hypercorn-h11`: it tells attackers what we run
    hypercorn_config.errorlog = logging.getLogger("hypercorn.error")
    host, port = sock.getsockname()[:2]
    log.info("listening on http://%s:%s (store: %s)", host if ":" not in host else f"[{host}]", port,
             "PostgreSQL" if config.database_url else f"SQLite at {config.sqlite_path}")
    try:
        await http_server.serve(
            wrap_app(app, hypercorn_config.wsgi_max_body_size, "asgi"), hypercorn_config, sock,
            stop_accepting=draining.wait, shutdown=stop.wait, board=board, slot=balance_slot,
        )
    finally:
        stop.set()
        if metrics_port is not None:
            await metrics_port.close()
        if channel is not None:  # the last counts, so cluster totals miss nothing this worker served
            channel.send({"type": "heartbeat", **counters.snapshot()})
        await asyncio.gather(*side_tasks, return_exceptions=True)
        await sink.close()
        await store.close()
        log.info("stopped")


async def _own_snapshot(state: AppState) -> dict[str, Any]:
    return own_snapshot(state)


async def ask_master(channel: MasterChannel, question: str) -> dict[str, Any]:
    """What only the master knows: cluster-wide figures ("metrics", summed heartbeats) or "status"."""
    try:
        return await channel.ask(question)
    except (ConnectionError, TimeoutError) as exc:
        raise MasterUnavailable(f"the cluster master did not answer ({question}): {exc or 'timed out'}") from None


async def heartbeat(channel: MasterChannel, counters: RequestCounters, config: Config) -> None:
    """Tell the master we live, with our counters; ask to be recycled past max_requests."""
    limit = config.max_requests + random.randint(0, config.max_requests_jitter) if config.max_requests else 0
    asked = False
    while True:
        channel.send({"type": "heartbeat", **counters.snapshot()})
        if limit and not asked and counters.total >= limit:
            channel.send({"type": "recycle", "reason": f"served {counters.total} requests (max_requests)"})
            asked = True
        await asyncio.sleep(HEARTBEAT_SECONDS)
