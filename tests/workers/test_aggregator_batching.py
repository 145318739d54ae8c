"""The aggregator under a steady trickle of clicks: a few batches a second, not one per poll."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from boltlink.config import Config
from boltlink.events.model import ClickEvent
from boltlink.events.spool import SpoolWriter
from boltlink.store.base import NewLink
from boltlink.store.sqlite import SqliteStore
from boltlink.workers import aggregator
from boltlink.workers.runtime import Telemetry

TRICKLE_SECONDS = 1.5
PER_SECOND = 400


class CountingStore(SqliteStore):
    """The real SQLite store, counting its commits of visits."""

    commits = 0

    async def record_clicks(self, visits, **kwargs):  # type: ignore[no-untyped-def]
        if visits:
            CountingStore.commits += 1
        return await super().record_clicks(visits, **kwargs)


async def test_a_steady_trickle_is_committed_in_a_few_batches_a_second_and_every_click_counts(
    tmp_path: Path, monkeypatch
) -> None:
    config = Config(data_dir=str(tmp_path / "data"))
    store = SqliteStore(config.sqlite_path)
    await store.open()
    link = await store.create_link(NewLink(slug="x", url="https://example.com/"))
    monkeypatch.setattr(aggregator, "create_store", lambda _config: CountingStore(config.sqlite_path))
    CountingStore.commits = 0

    writer = SpoolWriter(config.spool_path, "api-0", config.spool_file_size)
    await writer.open()
    stop = asyncio.Event()
    running = asyncio.ensure_future(aggregator.run_aggregator(config, stop, Telemetry()))
    sent = 0
    try:
        started = time.monotonic()
        while time.monotonic() - started < TRICKLE_SECONDS:  # a redirect every 2.5 ms, as a busy link gets
            writer.write(ClickEvent(id=f"t{sent}", link_id=link.id, at=time.time(), referrer=None,
                                    user_agent="Mozilla/5.0", bot=False, ip=None, country=None).encode())
            sent += 1
            await asyncio.sleep(1 / PER_SECOND)
        await writer.close()
        deadline = time.monotonic() + 20
        while (await store.get_link("x")).clicks_total < sent:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the aggregator did not count the trickle"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await running
        await store.close()
    elapsed = time.monotonic() - started
    # One commit per LINGER_SECONDS at most (plus the last), however short each poll: before the linger
    # it was one per poll of whatever a few milliseconds had brought.
    assert CountingStore.commits <= elapsed / aggregator.LINGER_SECONDS + 2, (CountingStore.commits, sent)
    assert (await _total(config)) == sent


async def _total(config: Config) -> int:
    store = SqliteStore(config.sqlite_path)
    await store.open()
    try:
        link = await store.get_link("x")
        assert link is not None
        return link.clicks_total
    finally:
        await store.close()
