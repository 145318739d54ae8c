"""What the non-HTTP workers (aggregator, analytics) share: signals, the master channel, heartbeats.

A role is an async main(config, stop, telemetry): it calls telemetry.ready()
once it works, keeps telemetry.figures current, and returns soon after stop
is set (finishing what it holds first).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from boltlink import __version__, build_id
from boltlink.config import Config
from boltlink.errors import RedisUnavailable, StoreUnavailable
from boltlink.metrics import build_info, this_process
from boltlink.metrics_server import MetricsServer, bind_metrics
from boltlink.workers.bootstrap import configure_logging, run_async
from boltlink.workers.channel import MasterChannel

log = logging.getLogger("boltlink.worker")

HEARTBEAT_SECONDS = 1.0
BOOT_RETRY_SECONDS = 1.0


@dataclass
class Telemetry:
    """What a worker tells the master: that it is ready, then its figures every second."""

    channel: MasterChannel | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    is_ready: bool = False

    def ready(self) -> None:
        self.is_ready = True
        if self.channel is not None:
            self.channel.send({"type": "ready", "pid": os.getpid(), "version": __version__, "build": build_id()})
            asyncio.get_running_loop().create_task(self._heartbeats())

    async def _heartbeats(self) -> None:
        assert self.channel is not None
        while True:
            self.channel.send({"type": "heartbeat", **self.figures})
            await asyncio.sleep(HEARTBEAT_SECONDS)


async def _snapshot(process_name: str, telemetry: Telemetry) -> dict[str, Any]:
    """/metrics of a role running alone: its figures and its process (boltlink.metrics)."""
    figures = dict(telemetry.figures)
    return {
        "build": build_info(),
        "clicks_aggregated": int(figures.get("recorded", 0)),
        "aggregator": figures if "lag" in figures else None,
        "processes": [this_process(process_name, process_name)],
    }

RoleMain = Callable[[Config, asyncio.Event, Telemetry], Awaitable[None]]


async def start_when_reachable(main: RoleMain, config: Config, stop: asyncio.Event, telemetry: Telemetry) -> None:
    """main(); while it cannot start because the database or Redis does not answer, again every second.

    A role respawned during an outage (the aggregator killed while PostgreSQL restarts) exited at
    once with the boot failure code, and a few such exits within min_uptime left it errored for
    good: no click was counted after the database came back. Waiting here instead keeps it
    "starting" in the master's status until it can work. Once ready, a role retries by itself
    (the aggregator's loop); other errors at boot still end the process.
    """
    while True:
        try:
            await main(config, stop, telemetry)
            return
        except (StoreUnavailable, RedisUnavailable) as exc:
            if telemetry.is_ready:
                raise
            if stop.is_set():  # stopping anyway: nothing to start, nothing failed
                return
            log.error("cannot start yet: %s; retrying in %g s", exc.detail, BOOT_RETRY_SECONDS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), BOOT_RETRY_SECONDS)
        if stop.is_set():
            return


def run_role(config: Config, main: RoleMain, *, process_name: str, channel_fd: int | None = None) -> None:
    configure_logging(config, process_name)
    # Alone (a Kubernetes Deployment of its own), with metrics_port set, it shows its own /metrics.
    metrics_sock = bind_metrics(config) if channel_fd is None else None
    run_async(_run(config, main, channel_fd, process_name, metrics_sock))


async def _run(config: Config, main: RoleMain, channel_fd: int | None, process_name: str,
               metrics_sock: socket.socket | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Under the cluster only the master's SIGTERM counts: Ctrl-C goes to the master.
    for signum in (signal.SIGTERM,) if channel_fd is not None else (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    telemetry = Telemetry()
    if channel_fd is not None:
        telemetry.channel = MasterChannel(channel_fd)
        await telemetry.channel.open(on_master_lost=stop.set)
    metrics = None
    if metrics_sock is not None:
        metrics = MetricsServer(config, metrics_sock, functools.partial(_snapshot, process_name, telemetry))
        await metrics.start()
    try:
        await start_when_reachable(main, config, stop, telemetry)
    finally:
        if metrics is not None:
            await metrics.close()
    if telemetry.channel is not None:  # the last figures, so cluster totals miss nothing this worker did
        telemetry.channel.send({"type": "heartbeat", **telemetry.figures})
