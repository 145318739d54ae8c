"""XaddBatcher: concurrent redirects' events share one pipeline, and share its outcome."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from boltlink.events.fallback import RedisSink
from boltlink.events.model import ClickEvent
from boltlink.events.xadd_batch import XaddBatcher


class Recorder:
    """A send() that holds each pipeline until released, so tests decide what is on the wire when."""

    def __init__(self) -> None:
        self.pipelines: list[list[bytes]] = []
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def send(self, lines: list[bytes]) -> None:
        self.pipelines.append(lines)
        await self.release.wait()
        if self.fail is not None:
            raise self.fail


async def on_the_wire(recorder: Recorder, pipelines: int) -> None:
    for _ in range(100):  # a few loop turns: add() starts the sender, which then sends
        if len(recorder.pipelines) >= pipelines:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{len(recorder.pipelines)} pipelines sent, expected {pipelines}")


async def test_a_lone_event_goes_at_once() -> None:
    recorder = Recorder()
    recorder.release.set()
    batcher = XaddBatcher(recorder.send, timeout=1.0)
    await batcher.add(b"a")
    assert recorder.pipelines == [[b"a"]]


async def test_events_arriving_while_a_pipeline_is_out_go_together_in_the_next() -> None:
    recorder = Recorder()
    batcher = XaddBatcher(recorder.send, timeout=1.0)
    first = asyncio.ensure_future(batcher.add(b"0"))
    await on_the_wire(recorder, 1)  # the first pipeline leaves with one event
    rest = [asyncio.ensure_future(batcher.add(str(n).encode())) for n in range(1, 50)]
    await asyncio.sleep(0)
    assert recorder.pipelines == [[b"0"]]
    assert not first.done(), "a redirect returned before Redis had its click"
    recorder.release.set()
    await asyncio.gather(first, *rest)
    assert recorder.pipelines == [[b"0"], [str(n).encode() for n in range(1, 50)]]


async def test_every_waiter_of_a_failed_pipeline_gets_its_error() -> None:
    recorder = Recorder()
    recorder.fail = ConnectionError("Redis went away")
    batcher = XaddBatcher(recorder.send, timeout=1.0)
    waiters = [asyncio.ensure_future(batcher.add(b"x")) for _ in range(5)]
    recorder.release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results), results


async def test_a_pipeline_that_does_not_answer_in_time_fails_its_waiters_with_a_timeout() -> None:
    recorder = Recorder()  # never released
    batcher = XaddBatcher(recorder.send, timeout=0.05)
    with pytest.raises(TimeoutError):
        await batcher.add(b"x")


async def test_a_waiter_that_gives_up_does_not_disturb_the_others() -> None:
    recorder = Recorder()
    batcher = XaddBatcher(recorder.send, timeout=1.0)
    gone = asyncio.ensure_future(batcher.add(b"gone"))
    stays = asyncio.ensure_future(batcher.add(b"stays"))
    await on_the_wire(recorder, 1)
    gone.cancel()  # the visitor hung up
    recorder.release.set()
    await stays
    assert gone.cancelled()


def event(n: int) -> ClickEvent:
    return ClickEvent(id=f"burst{n:06d}", link_id=7, at=1_700_000_000.0 + n, referrer=None,
                      user_agent="Mozilla/5.0 test", bot=False, ip="203.0.113.0", country=None)


@pytest.mark.redis
async def test_a_burst_of_redirects_reaches_the_stream_complete_in_few_round_trips(redis_url, stream, tmp_path):
    sink = RedisSink(redis_url, tmp_path / "spool", "api", 1 << 20)
    await sink.open()
    try:
        await asyncio.gather(*(sink.emit(event(n)) for n in range(200)))
        assert sink._batcher.pipelines < 20, sink._batcher.pipelines  # 200 events, not 200 round trips
    finally:
        await sink.close()
    client = aioredis.from_url(redis_url)
    try:
        ids = [ClickEvent.decode(fields[b"e"]).id for _, fields in await client.xrange(stream)]
    finally:
        await client.aclose()
    assert ids == [event(n).id for n in range(200)]
