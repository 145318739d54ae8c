"""RedisSink: XADD while Redis answers, the local spool while it does not, and shipping the spool back."""

from __future__ import annotations

import asyncio
import collections
import fcntl
import os
import shutil
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from boltlink.events import fallback
from boltlink.events.fallback import RedisSink
from boltlink.events.model import ClickEvent
from boltlink.events.redis import connect
from boltlink.events.spool import EventQueueError, SpoolWriter, spool_files

UNREACHABLE = "redis://127.0.0.1:1/0"


def event(n: int) -> ClickEvent:
    return ClickEvent(id=f"ev{n:08d}", link_id=7, at=1_700_000_000.0 + n, referrer=None,
                      user_agent="Mozilla/5.0 test", bot=False, ip="203.0.113.0", country=None)


def numbers(events: list[ClickEvent]) -> list[int]:
    return [int(e.id.removeprefix("ev")) for e in events]


def spooled(directory: Path) -> list[ClickEvent]:
    return [ClickEvent.decode(line) for path in spool_files(directory) for line in path.read_bytes().splitlines()]


async def in_stream(client, stream: str) -> list[ClickEvent]:
    return [ClickEvent.decode(fields[b"e"]) for _, fields in await client.xrange(stream)]


async def until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def client(redis_url: str, stream: str):
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def sinks(tmp_path: Path):
    opened: list[RedisSink] = []

    async def sink(url: str, *, start: bool = True) -> RedisSink:
        sink = RedisSink(url, tmp_path / "spool", "api", 1 << 20)
        if start:
            await sink.open()
        opened.append(sink)
        return sink

    yield sink
    for sink in opened:
        await sink.close()


@pytest.mark.redis
async def test_events_go_to_the_stream_while_redis_answers(client, stream, sinks, tmp_path, redis_url):
    sink = await sinks(redis_url)
    for n in range(5):
        await sink.emit(event(n))
    assert numbers(await in_stream(client, stream)) == [0, 1, 2, 3, 4]
    assert spool_files(tmp_path / "spool") == []
    assert sink.health() == ("ok", "redis ok")


async def test_an_unreachable_redis_spools_fast_without_failing_the_redirect(sinks, tmp_path):
    sink = await sinks(UNREACHABLE)
    await sink.emit(event(0))  # the one attempt that finds Redis down
    started = time.perf_counter()
    for n in range(1, 101):
        await sink.emit(event(n))
    assert time.perf_counter() - started < 0.5  # one XADD timeout each would be 100 s
    assert numbers(spooled(tmp_path / "spool")) == list(range(101))
    state, detail = sink.health()
    assert state == "degraded" and "Redis unreachable" in detail


async def test_redis_down_and_the_spool_unwritable_is_failing(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data directory should be")
    sink = RedisSink(UNREACHABLE, blocker / "spool", "api", 1 << 20)
    with pytest.raises(EventQueueError):
        await sink.emit(event(0))
    state, detail = sink.health()
    assert state == "failing" and "cannot write click events" in detail
    await sink.close()


@pytest.mark.redis
async def test_when_redis_returns_the_spool_is_shipped_and_removed(
    client, stream, sinks, tmp_path, monkeypatch, redis_url
):
    monkeypatch.setattr(fallback, "PROBE_SECONDS", 0.05)
    sink = await sinks(UNREACHABLE)
    for n in range(20):
        await sink.emit(event(n))
    assert sink.health()[0] == "degraded"

    await sink._client.aclose()  # Redis comes back (at the same address, as far as the sink can tell)
    sink._client = connect(redis_url)

    async def recovered() -> bool:
        return sink.health()[0] == "ok" and spool_files(tmp_path / "spool") == []

    await until(recovered)
    await sink.emit(event(20))  # and new clicks go straight to the stream again
    assert numbers(await in_stream(client, stream)) == list(range(21))
    assert spool_files(tmp_path / "spool") == []


@pytest.mark.redis
async def test_ship_moves_finished_files_and_leaves_a_live_writers_file(client, stream, sinks, tmp_path, redis_url):
    spool = tmp_path / "spool"
    finished = SpoolWriter(spool, "old", max_bytes=3 * len(event(0).encode()))
    for n in range(10):
        finished.write(event(n).encode())
    finished.finish_file()
    live = SpoolWriter(spool, "live", max_bytes=1 << 20)
    live.write(event(100).encode())
    sink = await sinks(redis_url, start=False)

    assert await sink.ship() == 10
    assert numbers(await in_stream(client, stream)) == list(range(10))
    [left] = spool_files(spool)
    assert "-live-" in left.name

    live.finish_file()  # that worker stopped, or Redis came back for it too
    assert await sink.ship() == 1
    assert numbers(await in_stream(client, stream)) == [*range(10), 100]
    assert spool_files(spool) == []


@pytest.mark.redis
async def test_shipping_a_file_again_repeats_the_same_event_ids(client, stream, sinks, tmp_path, redis_url):
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "api", max_bytes=1 << 20)
    for n in range(12):
        writer.write(event(n).encode())
    writer.finish_file()
    [path] = spool_files(spool)
    shutil.copy(path, tmp_path / "copy")
    sink = await sinks(redis_url, start=False)
    assert await sink.ship() == 12
    shutil.copy(tmp_path / "copy", path)  # the shipper died after XADD, before the unlink
    assert await sink.ship() == 12
    ids = collections.Counter(e.id for e in await in_stream(client, stream))
    # Twice in the stream, but the same ids: storage keeps each event id once.
    assert ids == {event(n).id: 2 for n in range(12)}


@pytest.mark.redis
async def test_a_file_another_shipper_just_removed_is_not_shipped_again(
    client, stream, sinks, tmp_path, monkeypatch, redis_url
):
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "api", max_bytes=1 << 20)
    for n in range(5):
        writer.write(event(n).encode())
    writer.finish_file()
    real_flock = fcntl.flock

    def other_shipper_finishes_first(fd: int, operation: int) -> None:
        # Between our open() and flock(), another worker shipped the file, deleted it and let go of it.
        path = os.readlink(f"/proc/self/fd/{fd}")
        if os.path.exists(path):
            os.unlink(path)
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", other_shipper_finishes_first)
    sink = await sinks(redis_url, start=False)
    assert await sink.ship() == 0
    assert await client.xlen(stream) == 0
