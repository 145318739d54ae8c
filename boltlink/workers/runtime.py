"""What the non-HTTP workers (aggregator, analytics) share: signals, the master channel, heartbeats.

A role is an async main(config, stop, telemetry): it calls telemetry.ready()
once it works, keeps telemetry.figures current, and returns soon after stop
is set (finishing what it holds first).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from boltlink import __version__, build_id
from boltlink.config import Config
from boltlink.workers.bootstrap import configure_logging, run_async
from boltlink.workers.channel import MasterChannel

HEARTBEAT_SECONDS = 1.0


@dataclass
class Telemetry:
    """What a worker tells the master: that it is ready, then its figures every second."""

    channel: MasterChannel | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    def ready(self) -> None:
        if self.channel is not None:
            self.channel.send({"type": "ready", "pid": os.getpid(), "version": __version__, "build": build_id()})
            asyncio.get_running_loop().create_task(self._heartbeats())

    async def _heartbeats(self) -> None:
        assert self.channel is not None
        while True:
            self.channel.send({"type": "heartbeat", **self.figures})
            await asyncio.sleep(HEARTBEAT_SECONDS)


RoleMain = Callable[[Config, asyncio.Event, Telemetry], Awaitable[None]]


def run_role(config: Config, main: RoleMain, *, process_name: str, channel_fd: int | None = None) -> None:
    configure_logging(config, process_name)
    run_async(_run(config, main, channel_fd))


async def _run(config: Config, main: RoleMain, channel_fd: int | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Under the cluster only the master's SIGTERM counts: Ctrl-C goes to the master.
    for signum in (signal.SIGTERM,) if channel_fd is not None else (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    telemetry = Telemetry()
    if channel_fd is not None:
        telemetry.channel = MasterChannel(channel_fd)
        await telemetry.channel.open(on_master_lost=stop.set)
    await main(config, stop, telemetry)
    if telemetry.channel is not None:  # the last figures, so cluster totals miss nothing this worker did
        telemetry.channel.send({"type": "heartbeat", **telemetry.figures})
