"""Distributed mode: click events in a Redis Stream, read by the aggregator through a consumer group.

Entries are acknowledged (XACK) only after the batch is committed to the
database, and the stream is trimmed only below the oldest entry some
consumer still has pending: MAXLEN trimming would also delete entries that
were read but not yet acknowledged, so it is never used.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from boltlink.errors import RedisUnavailable
from boltlink.events.base import EventBatch, EventSource
from boltlink.events.spool import decode_lines

log = logging.getLogger("boltlink.events")

STREAM = "boltlink:clicks"
GROUP = "boltlink-aggregators"
FIELD = b"e"
CLAIM_IDLE_MS = 30_000  # pending this long, the consumer that read it is taken for dead
TRIM_EVERY_SECONDS = 10.0
# Fix: XREADGROUP BLOCK of 1 s or more outlived connect()'s 1 s socket timeout, so read(wait >= 1) raised
# RedisUnavailable on an idle stream. A read may return empty sooner than `wait`, never fail for it.
BLOCK_MAX_MS = 500


def connect(url: str) -> aioredis.Redis:
    """A client that fails fast: a redirect must never hang on Redis."""
    return aioredis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0, health_check_interval=30)


async def add_lines(client: aioredis.Redis, lines: list[bytes]) -> None:
    """XADD each encoded event, in one round trip."""
    async with client.pipeline(transaction=False) as pipe:
        for line in lines:
            pipe.xadd(STREAM, {FIELD: line})
        await pipe.execute()


class RedisStreamSource(EventSource):
    def __init__(self, url: str, consumer: str = "aggregator") -> None:
        self.url = url
        self.consumer = consumer
        self._client: aioredis.Redis | None = None
        # Where the next read of this consumer's own pending entries (read before a crash, or read
        # again after rewind()) starts; None once they are all read again.
        self._own_pending_from: str | None = "0"
        self._last_trim = 0.0

    async def open(self) -> None:
        self._client = connect(self.url)
        await self._create_group()

    async def _create_group(self) -> None:
        assert self._client is not None
        try:
            await self._client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise RedisUnavailable(f"cannot create the consumer group: {exc}") from None
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(f"Redis is unreachable: {exc}") from None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def read(self, max_events: int, wait: float) -> EventBatch:
        assert self._client is not None
        try:
            entries = await self._pending_entries(max_events)
            if not entries:
                reply = await self._client.xreadgroup(GROUP, self.consumer, {STREAM: ">"}, count=max_events,
                                                      block=max(1, min(BLOCK_MAX_MS, int(wait * 1000))))
                entries = reply[0][1] if reply else []
            batch = self._batch(entries)
            if batch.receipts and not batch.events:
                # Fix: the aggregator acks only batches with events, so entries that are all malformed
                # stayed pending forever, were claimed again and again, and held back trim().
                await self._client.xack(STREAM, GROUP, *batch.receipts)
                batch.receipts = []
        except (RedisError, OSError) as exc:
            # Fix: a read whose reply was lost (timeout, dropped connection, Redis stopping) had its entries
            # delivered to this consumer all the same; they came back only via XAUTOCLAIM, CLAIM_IDLE_MS later.
            self.rewind()
            if isinstance(exc, ResponseError) and str(exc).startswith("NOGROUP"):
                # Fix: a Redis restarted without persistence has lost the stream and the group, which only
                # open() created: every read failed with NOGROUP until the aggregator itself was restarted.
                log.warning("the consumer group is gone (Redis restarted empty?): creating it again")
                await self._create_group()
                return EventBatch(events=[], source="")
            raise RedisUnavailable(f"cannot read click events from Redis: {exc}") from None
        return batch

    def rewind(self) -> None:
        # Fix: a batch whose commit failed came back only via XAUTOCLAIM, CLAIM_IDLE_MS later and after
        # newer events; read it again first, as the spool does.
        self._own_pending_from = "0"

    async def _pending_entries(self, max_events: int) -> list[Any]:
        """First what this consumer read before a crash, then what dead consumers left behind."""
        assert self._client is not None
        if self._own_pending_from is not None:
            reply = await self._client.xreadgroup(GROUP, self.consumer, {STREAM: self._own_pending_from},
                                                  count=max_events)
            listed = reply[0][1] if reply else []
            if listed:
                # From past the last one listed: the batch read now may not be acked before the next read.
                last = listed[-1][0]
                self._own_pending_from = last.decode() if isinstance(last, bytes) else last
                entries = [e for e in listed if e[1]]  # an entry trimmed away is listed with no fields
                if entries:
                    return entries
            else:
                self._own_pending_from = None
        claimed = await self._client.xautoclaim(STREAM, GROUP, self.consumer, CLAIM_IDLE_MS, "0-0",
                                                count=max_events)
        return [e for e in claimed[1] if e[1]]

    def _batch(self, entries: list[Any]) -> EventBatch:
        lines = [fields.get(FIELD, b"") for _, fields in entries]
        events, malformed = decode_lines(lines, STREAM)
        return EventBatch(events=events, source="", receipts=[entry_id for entry_id, _ in entries],
                          malformed=malformed)

    async def ack(self, batch: EventBatch) -> None:
        assert self._client is not None
        try:
            if batch.receipts:
                await self._client.xack(STREAM, GROUP, *batch.receipts)
            if time.monotonic() - self._last_trim > TRIM_EVERY_SECONDS:
                await self.trim()
        except (RedisError, OSError) as exc:
            # Unacked entries are read again and recorded as duplicates of nothing: harmless.
            log.warning("could not acknowledge click events in Redis: %s", exc)

    async def trim(self) -> None:
        """Drop entries every group has acknowledged: below the oldest pending or undelivered id."""
        assert self._client is not None
        self._last_trim = time.monotonic()
        floors = []
        for group in await self._client.xinfo_groups(STREAM):
            pending = await self._client.xpending(STREAM, group["name"])
            if pending["pending"]:
                floors.append(_id_tuple(pending["min"]))
            else:
                last = _id_tuple(group["last-delivered-id"])
                floors.append((last[0], last[1] + 1))  # everything up to it is delivered and acked
        if floors:
            low = min(floors)
            await self._client.xtrim(STREAM, minid=f"{low[0]}-{low[1]}")

    def backlog(self) -> int | None:
        return None


def _id_tuple(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    millis, _, seq = text.partition("-")
    return int(millis), int(seq or 0)
