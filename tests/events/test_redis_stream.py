"""The distributed click queue against a real Redis: a consumer group, acks after commit, claims, trimming."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis

from boltlink.events import redis as redis_events
from boltlink.events.model import ClickEvent
from boltlink.events.redis import RedisStreamSource, RedisUnavailable, add_lines

pytestmark = pytest.mark.redis


def event(n: int) -> ClickEvent:
    return ClickEvent(id=f"ev{n:08d}", link_id=7, at=1_700_000_000.0 + n, referrer=None,
                      user_agent="Mozilla/5.0 test", bot=False, ip="203.0.113.0", country=None)


def numbers(events: list[ClickEvent]) -> list[int]:
    return [int(e.id.removeprefix("ev")) for e in events]


@pytest.fixture
async def client(redis_url: str, stream: str):
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def sources(redis_url: str, stream: str):
    """Opens RedisStreamSources by consumer name, and closes them all after the test."""
    opened: list[RedisStreamSource] = []

    async def source(consumer: str = "aggregator") -> RedisStreamSource:
        source = RedisStreamSource(redis_url, consumer)
        await source.open()
        opened.append(source)
        return source

    yield source
    for source in opened:
        await source.close()


async def add(client, numbers: range) -> None:
    await add_lines(client, [event(n).encode() for n in numbers])


async def pending(client) -> int:
    return (await client.xpending(redis_events.STREAM, redis_events.GROUP))["pending"]


async def test_events_are_read_through_the_group_and_acked(client, sources):
    source = await sources()
    await add(client, range(25))
    batch = await source.read(100, wait=0.1)
    assert numbers(batch.events) == list(range(25))
    assert len(batch.receipts) == 25 and batch.malformed == 0
    assert await pending(client) == 25  # read, not yet committed
    await source.ack(batch)
    assert await pending(client) == 0
    assert (await source.read(100, wait=0.05)).events == []


async def test_a_batch_limit_is_respected_and_the_rest_follows(client, sources):
    source = await sources()
    await add(client, range(10))
    first = await source.read(4, wait=0.1)
    await source.ack(first)
    second = await source.read(100, wait=0.1)
    assert (numbers(first.events), numbers(second.events)) == ([0, 1, 2, 3], list(range(4, 10)))


async def test_a_batch_whose_commit_failed_is_read_again_before_newer_events(client, sources):
    source = await sources()
    await add(client, range(5))
    failed = await source.read(100, wait=0.1)  # the database was down: the aggregator does not ack
    await add(client, range(5, 8))
    source.rewind()
    again = await source.read(100, wait=0.1)
    assert numbers(again.events) == numbers(failed.events) == list(range(5))
    await source.ack(again)
    assert numbers((await source.read(100, wait=0.1)).events) == [5, 6, 7]


async def test_reading_ahead_while_a_batch_commits_gives_each_event_once(client, sources):
    source = await sources()
    await add(client, range(6))
    first = await source.read(3, wait=0.1)
    second = await source.read(3, wait=0.1)  # read while the first commits: not acked yet
    third = await source.read(3, wait=0.05)
    assert (numbers(first.events), numbers(second.events), third.events) == ([0, 1, 2], [3, 4, 5], [])
    await source.ack(first)
    await source.ack(second)
    assert await pending(client) == 0


async def test_a_rewind_after_a_crash_reads_own_pending_entries_in_order_once(client, sources):
    crashed = await sources("a")
    await add(client, range(6))
    assert numbers((await crashed.read(100, wait=0.1)).events) == list(range(6))
    await crashed.close()  # died before its commit

    restarted = await sources("a")
    first = await restarted.read(4, wait=0.1)
    second = await restarted.read(4, wait=0.1)  # read ahead: the rest of its pending entries, not first again
    assert (numbers(first.events), numbers(second.events)) == ([0, 1, 2, 3], [4, 5])
    restarted.rewind()  # first's commit failed
    assert numbers((await restarted.read(100, wait=0.1)).events) == list(range(6))


async def test_a_long_wait_on_an_idle_stream_returns_empty_instead_of_failing(sources):
    source = await sources()
    started = time.monotonic()
    batch = await source.read(100, wait=1.5)  # longer than the client's 1 s socket timeout
    assert batch.events == [] and time.monotonic() - started <= 1.6


async def test_a_restarted_consumer_gets_its_unacked_events_again_first(client, sources):
    crashed = await sources("a")
    await add(client, range(10))
    assert numbers((await crashed.read(100, wait=0.1)).events) == list(range(10))
    await crashed.close()  # died before its commit: no ack
    await add(client, range(10, 15))

    restarted = await sources("a")
    batch = await restarted.read(100, wait=0.1)
    assert numbers(batch.events) == list(range(10))  # its own pending entries, before anything new
    await restarted.ack(batch)
    batch = await restarted.read(100, wait=0.1)
    assert numbers(batch.events) == list(range(10, 15))
    await restarted.ack(batch)
    assert await pending(client) == 0


async def test_another_consumer_claims_a_dead_consumers_events_once_idle(client, sources, monkeypatch):
    monkeypatch.setattr(redis_events, "CLAIM_IDLE_MS", 300)
    dead = await sources("a")
    await add(client, range(8))
    assert len((await dead.read(100, wait=0.1)).events) == 8

    other = await sources("b")
    assert (await other.read(100, wait=0)).events == []  # not idle long enough: "a" may still commit
    deadline = time.monotonic() + 5
    batch = await other.read(100, wait=0)
    while not batch.events and time.monotonic() < deadline:
        batch = await other.read(100, wait=0.05)
    assert numbers(batch.events) == list(range(8))
    await other.ack(batch)
    assert await pending(client) == 0


async def test_trim_keeps_every_unacked_entry(client, sources, stream):
    source = await sources()
    await add(client, range(100))
    batch = await source.read(100, wait=0.1)
    kept = batch.receipts[60:]
    batch.receipts = batch.receipts[:60]
    await source.ack(batch)
    await source.trim()
    assert await client.xlen(stream) >= 40
    remaining = {entry_id for entry_id, _ in await client.xrange(stream)}
    assert set(kept) <= remaining
    still = [ClickEvent.decode(fields[b"e"]) for _, fields in await client.xrange(stream, min=kept[0])]
    assert numbers(still) == list(range(60, 100))


async def test_trim_keeps_delivered_but_unread_and_undelivered_entries(client, sources, stream):
    source = await sources()
    await add(client, range(300))
    batch = await source.read(250, wait=0.1)
    await source.ack(batch)
    await source.trim()
    # The 50 never read are not pending yet; trimming must not take them either.
    rest = await source.read(100, wait=0.1)
    assert numbers(rest.events) == list(range(250, 300))


async def test_trim_removes_acknowledged_entries(client, sources, stream):
    source = await sources()
    await add(client, range(1000))
    while (batch := await source.read(300, wait=0.05)).events:
        await source.ack(batch)
    await source.trim()  # ack() trims too, at most every TRIM_EVERY_SECONDS
    # Trimming is approximate (whole stream nodes of 100 entries): far fewer remain, never more than a node.
    assert await client.xlen(stream) <= 100


async def test_a_batch_of_only_malformed_entries_does_not_stay_pending(client, sources, stream):
    source = await sources()
    await client.xadd(stream, {b"e": b"garbage"})
    await client.xadd(stream, {b"other": b"field"})
    batch = await source.read(100, wait=0.1)
    assert (batch.events, batch.malformed) == ([], 2)
    # The aggregator commits and acks only batches with events (or offsets): these must not block
    # trimming forever by staying pending.
    assert await pending(client) == 0
    await add(client, range(3))
    batch = await source.read(100, wait=0.1)
    assert numbers(batch.events) == [0, 1, 2]


async def test_an_unreachable_redis_is_a_clear_error():
    source = RedisStreamSource("redis://127.0.0.1:1/0")
    with pytest.raises(RedisUnavailable, match="unreachable"):
        await source.open()
    await source.close()
