"""The distributed-mode sink: XADD to Redis, and the local spool whenever Redis is down.

While Redis is unreachable, redirects keep their usual speed: after one
failed XADD the sink writes to this worker's spool file and only a
background task keeps asking Redis whether it is back. When it is, the
sink finishes its spool file, and the shipper moves every finished spool
file of this data directory into the stream, then deletes it. A shipper
that dies halfway ships the file again from the start: the duplicates carry
the same event ids, which storage keeps once, so no click counts twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from redis.exceptions import RedisError

from boltlink.events.base import EventSink, Health
from boltlink.events.model import ClickEvent
from boltlink.events.redis import add_lines, connect
from boltlink.events.spool import SpoolWriter, read_lines, spool_files, try_lock
from boltlink.events.xadd_batch import XaddBatcher

log = logging.getLogger("boltlink.events")

PROBE_SECONDS = 1.0
SHIP_CHUNK = 500
XADD_TIMEOUT = 1.0


class RedisSink(EventSink):
    def __init__(self, url: str, spool_dir: Path, writer_name: str, spool_file_size: int) -> None:
        self.url = url
        self.spool = SpoolWriter(spool_dir, writer_name, spool_file_size)
        self.spool_dir = spool_dir
        self._client = connect(url)
        self._batcher = XaddBatcher(lambda lines: add_lines(self._client, lines), XADD_TIMEOUT)
        self._redis_up = True
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self.spool.open()
        self._task = asyncio.get_running_loop().create_task(self._keep_shipping())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._batcher.close()
        await self.spool.close()
        await self._client.aclose()

    async def emit(self, event: ClickEvent) -> None:
        line = event.encode()
        if self._redis_up:
            try:
                await self._batcher.add(line)  # with the other redirects' events of this moment
                return
            except (RedisError, OSError, TimeoutError) as exc:
                self._redis_up = False
                log.warning("Redis is unreachable (%s): spooling click events locally until it is back", exc)
        self.spool.write(line)  # raises EventQueueError if even that fails

    def health(self) -> tuple[Health, str]:
        spool, detail = self.spool.health()
        if spool == "failing" or self._redis_up:
            return spool, detail if spool == "failing" else "redis ok"
        return "degraded", "Redis unreachable: click events are spooled locally until it is back"

    async def _keep_shipping(self) -> None:
        while True:
            await asyncio.sleep(PROBE_SECONDS)
            try:
                if not self._redis_up:
                    await asyncio.wait_for(self._client.ping(), XADD_TIMEOUT)
                    self.spool.finish_file()  # what was spooled so far can now be shipped
                    self._redis_up = True
                    log.info("Redis is back: shipping spooled click events")
                await self.ship()
            except (RedisError, OSError, TimeoutError) as exc:
                if self._redis_up:
                    log.warning("Redis is unreachable (%s): spooling click events locally", exc)
                self._redis_up = False

    async def ship(self) -> int:
        """Move every finished spool file into the stream; returns the events shipped."""
        shipped = 0
        for path in spool_files(self.spool_dir):
            fd = try_lock(path)  # fails while its writer appends, or another worker ships it
            if fd is None:
                continue
            try:
                offset = 0
                while True:
                    lines, offset = read_lines(path, offset, SHIP_CHUNK)
                    if not lines:
                        break
                    await add_lines(self._client, [line + b"\n" for line in lines if line])
                    shipped += len(lines)
                path.unlink()
            finally:
                os.close(fd)
        if shipped:
            log.info("shipped %d spooled click events to Redis", shipped)
        return shipped
