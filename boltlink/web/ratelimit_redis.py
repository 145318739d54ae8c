"""Distributed mode's rate limits: token buckets in Redis, shared by every worker of every pod.

One Lua script takes the tokens of all of a request's buckets atomically, on
Redis's own clock (the pods' clocks may disagree). A bucket is a hash that
expires once it would be full again, so idle clients cost no memory.

Rate limits must never take the service down with Redis: when Redis does not
answer (within TIMEOUT), the limiter says so once in the log and counts in the
machine's local table (ratelimit.LocalLimiter) for RETRY_SECONDS before it
asks Redis again. Limits then hold per pod instead of across pods.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from boltlink.events.redis import connect
from boltlink.web.ratelimit import Limit, RateLimiter

log = logging.getLogger("boltlink.web")

PREFIX = "boltlink:ratelimit:"
TIMEOUT = 0.5
RETRY_SECONDS = 5.0

# KEYS: the buckets; ARGV: capacity, tokens per second. Returns the wait in ms (0: taken).
TOKEN_BUCKET = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local levels, wait = {}, 0
for i, key in ipairs(KEYS) do
    local bucket = redis.call('HMGET', key, 'tokens', 'stamp')
    local level = capacity
    if bucket[1] then
        level = math.min(capacity, tonumber(bucket[1]) + math.max(0, now - tonumber(bucket[2])) * rate)
    end
    levels[i] = level
    if level < 1 then wait = math.max(wait, (1 - level) / rate) end
end
for i, key in ipairs(KEYS) do
    local level = levels[i]
    if wait == 0 then level = level - 1 end
    redis.call('HSET', key, 'tokens', tostring(level), 'stamp', tostring(now))
    redis.call('PEXPIRE', key, math.ceil((capacity - level) / rate * 1000) + 1000)
end
return math.ceil(wait * 1000)
"""


class RedisLimiter(RateLimiter):
    def __init__(self, url: str, fallback: RateLimiter) -> None:
        self.url = url
        self.fallback = fallback
        self._client = connect(url)  # connects at the first command, on the loop that serves requests
        self._script: AsyncScript = self._client.register_script(TOKEN_BUCKET)
        self._retry_at = 0.0  # while Redis is down: when to ask it again

    async def take(self, limit: Limit, clients: Sequence[str]) -> float:
        if not self._retry_at or time.monotonic() >= self._retry_at:
            keys = [f"{PREFIX}{limit.name}:{client}" for client in clients]
            try:
                wait_ms = await asyncio.wait_for(self._script(keys=keys, args=[limit.capacity, limit.rate]), TIMEOUT)
            except (RedisError, OSError, TimeoutError) as exc:
                if not self._retry_at:
                    log.warning("Redis is unreachable (%s): rate limits count on this machine only until it is back",
                                exc or type(exc).__name__)
                self._retry_at = time.monotonic() + RETRY_SECONDS
            else:
                if self._retry_at:
                    log.info("Redis is back: rate limits count across every pod again")
                    self._retry_at = 0.0
                return int(wait_ms) / 1000.0
        return await self.fallback.take(limit, clients)

    async def close(self) -> None:
        await self._client.aclose()
        await self.fallback.close()
