"""The API worker: the Quart app under hypercorn, until SIGTERM or SIGINT asks it to drain."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.utils import wrap_app

from boltlink.config import Config
from boltlink.errors import ListenError
from boltlink.store import create_store
from boltlink.web import create_app
from boltlink.workers.bootstrap import configure_logging, run_async

log = logging.getLogger("boltlink.api")


def run_api(config: Config, *, process_name: str = "api") -> None:
    """Serve the API on config.host:config.port in this process until told to stop."""
    configure_logging(config, process_name)
    run_async(serve_api(config, bind_socket(config.host, config.port, config.backlog)))


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


async def serve_api(
    config: Config, sock: socket.socket, *, on_ready: Callable[[], None] | None = None
) -> None:
    """Open the store (a boot failure surfaces here, before any request), then serve sock."""
    store = create_store(config)
    await store.open()
    app = create_app(config, store)
    state = app.extensions["boltlink"]
    stop = asyncio.Event()

    def begin_shutdown() -> None:
        # /ready fails from now on; hypercorn stops accepting and gives
        # in-flight requests kill_timeout seconds to finish.
        state.draining = True
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, begin_shutdown)

    hypercorn_config = HypercornConfig()
    hypercorn_config.backlog = config.backlog  # hypercorn re-listens with its own default of 100 otherwise
    hypercorn_config.graceful_timeout = config.kill_timeout
    hypercorn_config.accesslog = None
    hypercorn_config.errorlog = logging.getLogger("hypercorn.error")
    host, port = sock.getsockname()[:2]
    log.info("listening on http://%s:%s (store: %s)", host if ":" not in host else f"[{host}]", port,
             "PostgreSQL" if config.database_url else f"SQLite at {config.sqlite_path}")
    if on_ready is not None:
        on_ready()
    try:
        await worker_serve(
            wrap_app(app, hypercorn_config.wsgi_max_body_size, "asgi"),
            hypercorn_config,
            sockets=Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[]),
            shutdown_trigger=stop.wait,
        )
    finally:
        await store.close()
        log.info("stopped")
