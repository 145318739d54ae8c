"""The aggregator: click events -> visits and counters, each batch in one transaction, exactly once.

read a batch -> enrich (user agent, referrer host, visitor hash) ->
store.record_clicks(visits, offsets) in ONE transaction -> ack the source.
A crash anywhere replays at most the uncommitted batch, whose event ids
the store already knows or never saw: nothing counts twice or goes missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from boltlink.config import Config
from boltlink.errors import BoltlinkError
from boltlink.events import create_source
from boltlink.events.base import EventSource
from boltlink.events.enrich import to_visit
from boltlink.store import create_store
from boltlink.store.clicks import ClickStore
from boltlink.workers.runtime import Telemetry

log = logging.getLogger("boltlink.aggregator")

READ_WAIT_SECONDS = 0.5  # how long a read may wait for events, so a stop is noticed promptly
RETRY_SECONDS = 1.0


async def run_aggregator(config: Config, stop: asyncio.Event, telemetry: Telemetry) -> None:
    store = create_store(config)
    await store.open()
    source = create_source(config, store)
    try:
        await source.open()
        telemetry.ready()
        log.info("aggregating click events from %s", "Redis" if config.redis_url else config.spool_path)
        await _consume(config, store, source, stop, telemetry)
    finally:
        await source.close()
        await store.close()
        log.info("stopped")


async def _consume(config: Config, store: ClickStore, source: EventSource, stop: asyncio.Event,
                   telemetry: Telemetry) -> None:
    recorded_total = 0
    window_start, window_events = time.monotonic(), 0
    while not stop.is_set():
        try:
            batch = await source.read(config.aggregator_batch_size, READ_WAIT_SECONDS)
            if batch.events or batch.offsets:
                visits = [to_visit(event) for event in batch.events]
                recorded_total += await store.record_clicks(visits, source=batch.source or None,
                                                            offsets=batch.offsets)
                window_events += len(batch.events)
            await source.ack(batch)  # even when empty: finished spool files get deleted while idle too
        except BoltlinkError as exc:  # database or Redis away: nothing was acked, so retry the same events
            log.error("%s; retrying in %.0f s", exc.detail, RETRY_SECONDS)
            await _sleep_unless(stop, RETRY_SECONDS)
            continue
        now = time.monotonic()
        oldest = min((e.at for e in batch.events), default=None)
        telemetry.figures.update(
            batch_size=len(batch.events),
            lag=max(0.0, time.time() - oldest) if oldest is not None else 0.0,
            recorded=recorded_total,
            backlog=source.backlog(),
        )
        if now - window_start >= 1.0:
            telemetry.figures["events_per_second"] = round(window_events / (now - window_start), 1)
            window_start, window_events = now, 0


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
