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
import sys
import time

from boltlink.config import Config
from boltlink.errors import BoltlinkError
from boltlink.events import create_source
from boltlink.events.base import EventBatch, EventSource
from boltlink.events.enrich import to_visit
from boltlink.store import create_store
from boltlink.store.clicks import ClickStore, Visit
from boltlink.workers.runtime import Telemetry

log = logging.getLogger("boltlink.aggregator")

READ_WAIT_SECONDS = 0.5  # how long a read may wait for events, so a stop is noticed promptly
# After a batch that was not full, the next read waits until this long after the last one began.
# Without it, under a steady stream of redirects the aggregator read whatever a few milliseconds
# had brought: a commit of a dozen events, each paying the dozen statements of a batch. With it, a
# few batches a second carry the same events for a fraction of the CPU, which the API workers on
# the same cores use instead; a click reaches the stats at most this much later. Measured under
# scripts/bench.py's (a): ~50 us of aggregator CPU per click at 0.2 s, ~35 us at 0.5 s.
LINGER_SECONDS = 0.5
RETRY_SECONDS = 1.0


# While the event loop enriches the next batch, SQLite's thread runs statements without the GIL
# and has to win it back at the end of each; the holder lets go after this interval (Python's
# default is 5 ms, for a dozen statements a batch). bench_aggregator.py: ~+3.5% events/s.
SWITCH_INTERVAL_SECONDS = 0.001


def configure_process() -> None:
    """For a process that runs only the aggregator (not `serve`, where the API shares the process)."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


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


class _Figures:
    """What the aggregator reports with each heartbeat (see Telemetry): from its start, idle or busy."""

    def __init__(self, telemetry: Telemetry, source: EventSource) -> None:
        self.figures = telemetry.figures
        self.source = source
        self.recorded = 0
        self.window_start, self.window_events = time.monotonic(), 0
        self.figures.update(batch_size=0, lag=0.0, recorded=0, events_per_second=0.0, backlog=source.backlog())

    def committed(self, batch: EventBatch, recorded: int) -> None:
        self.recorded += recorded
        self.window_events += len(batch.events)
        oldest = min((e.at for e in batch.events), default=None)
        self.figures.update(
            batch_size=len(batch.events),
            lag=max(0.0, time.time() - oldest) if oldest is not None else 0.0,
            recorded=self.recorded,
        )
        self.tick()

    def tick(self) -> None:
        """After every read, empty ones too, so an idle aggregator shows 0 events/s rather than its last rate."""
        now = time.monotonic()
        if now - self.window_start >= 1.0:
            self.figures["events_per_second"] = round(self.window_events / (now - self.window_start), 1)
            self.figures["backlog"] = self.source.backlog()
            self.window_start, self.window_events = now, 0


class _Commit:
    """One batch being recorded; acked once its transaction is committed."""

    def __init__(self, store: ClickStore, batch: EventBatch, visits: list[Visit]) -> None:
        self.batch = batch
        self.staged = asyncio.Event()
        self.task = asyncio.ensure_future(
            store.record_clicks(visits, source=batch.source or None, offsets=batch.offsets, staged=self.staged)
        )

    async def until_staged(self) -> None:
        """Until the store needs none of this process's CPU for the batch any more (or it ended)."""
        if self.staged.is_set():
            return
        waiter = asyncio.ensure_future(self.staged.wait())
        try:
            await asyncio.wait((waiter, self.task), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()


async def _consume(config: Config, store: ClickStore, source: EventSource, stop: asyncio.Event,
                   telemetry: Telemetry) -> None:
    """Read batch N+1 and enrich it while batch N commits: the two take turns on the CPU and the database.

    Measured with scripts/bench_aggregator.py: reading and enriching are about half of
    the work, and recording (the database, or SQLite's thread, which mostly holds no GIL)
    the rest; overlapped, the slower of the two sets the pace instead of their sum. The
    part of a SQLite commit that holds the GIL (inserting the visits) goes first, alone:
    overlapped with Python work it waited for the GIL after every row (ClickStore.record_clicks).
    """
    figures = _Figures(telemetry, source)
    committing: _Commit | None = None
    next_read = 0.0  # when a batch that was not full lets the next read begin
    try:
        while not stop.is_set():
            try:
                if next_read > time.monotonic():
                    await _sleep_unless(stop, next_read - time.monotonic())  # the commit goes on meanwhile
                    if stop.is_set():
                        break
                read_started = time.monotonic()
                batch = await source.read(config.aggregator_batch_size, READ_WAIT_SECONDS)
                full = len(batch.events) >= config.aggregator_batch_size
                next_read = 0.0 if full or not batch.events else read_started + LINGER_SECONDS
                visits = [to_visit(event) for event in batch.events]
                if committing is not None:
                    done, committing = committing, None
                    await _finish(done, source, figures)
                if batch.events or batch.offsets:
                    committing = _Commit(store, batch, visits)
                    await committing.until_staged()  # SQLite's insert first: it needs the GIL (record_clicks)
                else:
                    await source.ack(batch)  # even when empty: finished spool files get deleted while idle too
                    figures.figures["lag"] = 0.0  # nothing waiting
                    figures.tick()
            except BoltlinkError as exc:  # database or Redis away: what was not acked is read again
                if committing is not None:
                    done, committing = committing, None
                    with contextlib.suppress(BoltlinkError):
                        await _finish(done, source, figures)
                source.rewind()
                log.error("%s; retrying in %.0f s", exc.detail, RETRY_SECONDS)
                await _sleep_unless(stop, RETRY_SECONDS)
    finally:
        if committing is not None:  # stopping: finish what is in flight; a batch read ahead is read again
            try:
                await _finish(committing, source, figures)
            except BoltlinkError as exc:
                log.error("%s; the last batch is read again at the next start", exc.detail)


async def _finish(commit: _Commit, source: EventSource, figures: _Figures) -> None:
    recorded = await commit.task
    await source.ack(commit.batch)
    figures.committed(commit.batch, recorded)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
