"""Token buckets for rate limits: the interface, and the table every API process on a machine shares.

    RateLimiter.take(limit, clients) -> seconds to wait; 0.0 means go ahead

A bucket holds up to `limit.capacity` tokens and refills at `limit.per_minute`
a minute. A request takes one token from each bucket it counts against (its
client address, its API key) or, when one of them is empty, from none, and
is told how long until it would be let through.

- LocalLimiter (embedded mode) keeps the buckets in a 4 MiB table that every
  API worker of the data directory maps (DATA_DIR/run/ratelimit.v1), so a
  limit holds for the whole cluster, not once per worker. Each take locks the
  few slots it touches (an fcntl byte-range lock) for about a microsecond.
- RedisLimiter (distributed mode, ratelimit_redis.py) keeps them in Redis,
  shared by every pod, and uses the local table while Redis does not answer.
"""

from __future__ import annotations

import abc
import fcntl
import hashlib
import logging
import mmap
import os
import struct
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from boltlink.config import Config

log = logging.getLogger("boltlink.web")


@dataclass(frozen=True)
class Limit:
    """One kind of limit: its name keeps its buckets apart from other kinds' ("writes", "redirects")."""

    name: str
    per_minute: int
    burst: int = 0  # 0: a full minute's allowance at once

    @property
    def capacity(self) -> float:
        return float(self.burst or self.per_minute)

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self.per_minute / 60.0


class RateLimiter(abc.ABC):
    @abc.abstractmethod
    async def take(self, limit: Limit, clients: Sequence[str]) -> float:
        """Take a token from every client's bucket, or from none; 0.0 if taken, else seconds to wait."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Let go of what the limiter holds (a file mapping, a Redis connection)."""


def create_limiter(config: Config) -> RateLimiter:
    """Redis-backed in distributed mode, else the machine-wide table; nothing opens before the first take."""
    local = LocalLimiter(config.run_path / TABLE_NAME)
    if not config.redis_url:
        return local
    from boltlink.web.ratelimit_redis import RedisLimiter

    return RedisLimiter(config.redis_url, fallback=local)


# The table: SLOTS slots of (fingerprint, tokens, stamp, full_at). A bucket
# lives in one of the WINDOW slots its fingerprint points at; a new bucket takes
# an empty slot, or one that has refilled (as good as empty), or else the one
# closest to full. 40,000 clients with a bucket not yet full again (seen within
# the last minute, for a per-minute limit) lose none that way; beyond, a few do,
# and a lost bucket starts full again (tests/web/test_rate_limits.py).
TABLE_NAME = "ratelimit.v1"  # a new layout takes a new name: an old table is never misread
_SLOT = struct.Struct("<Qddd")
SLOTS = 1 << 17  # 4 MiB, as sparse as the clients seen: untouched pages cost no memory
WINDOW = 16
TABLE_SIZE = SLOTS * _SLOT.size
_WINDOW = struct.Struct("<" + "Qddd" * WINDOW)


def fingerprint(name: str) -> int:
    """A 64-bit hash that is the same in every process (str.__hash__ is salted per process)."""
    value = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
    return value or 1  # 0 marks an empty slot


class LocalLimiter(RateLimiter):
    def __init__(self, path: Path | None) -> None:
        self.path = path  # None: a table private to this process
        self._map: mmap.mmap | None = None
        self._fd: int | None = None
        self._release: weakref.finalize | None = None

    async def take(self, limit: Limit, clients: Sequence[str]) -> float:
        return self.take_now(limit, clients, time.time())

    def take_now(self, limit: Limit, clients: Sequence[str], now: float) -> float:
        table = self._map if self._map is not None else self._open()
        prints = [fingerprint(f"{limit.name}:{client}") for client in clients]
        ranges = _lock_ranges([_window(p) for p in prints])
        for start, length in ranges:
            self._lock(fcntl.LOCK_EX, start, length)
        try:
            capacity, rate = limit.capacity, limit.rate
            chosen: list[int] = []
            levels: list[float] = []
            for value in prints:
                slot, bucket = _find(table, value, now, chosen)
                chosen.append(slot)
                if bucket is None:
                    levels.append(capacity)
                else:
                    tokens, stamp = bucket  # max(): a wall clock set back must not drain buckets
                    levels.append(min(capacity, tokens + max(0.0, now - stamp) * rate))
            short = [1.0 - level for level in levels if level < 1.0]
            wait = max(short) / rate if short else 0.0
            spent = 0.0 if short else 1.0
            for value, slot, level in zip(prints, chosen, levels, strict=True):
                tokens = level - spent
                _SLOT.pack_into(table, slot * _SLOT.size, value, tokens, now, now + (capacity - tokens) / rate)
        finally:
            for start, length in ranges:
                self._lock(fcntl.LOCK_UN, start, length)
        return wait

    def _open(self) -> mmap.mmap:
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    if os.fstat(fd).st_size < TABLE_SIZE:
                        os.ftruncate(fd, TABLE_SIZE)  # zeros: every slot empty; racing processes agree
                    self._map = mmap.mmap(fd, TABLE_SIZE)
                except OSError:
                    os.close(fd)
                    raise
                self._fd = fd
                # An app that is never served (tests, scripts) never calls close(): don't leak the fd then.
                self._release = weakref.finalize(self, os.close, fd)
                return self._map
            except OSError as exc:
                log.warning("rate limits count per process: cannot share %s (%s)", self.path, exc.strerror or exc)
                self.path = None
        self._map = mmap.mmap(-1, TABLE_SIZE)
        return self._map

    def _lock(self, operation: int, start: int, length: int) -> None:
        if self._fd is not None:  # a private table has nobody to lock out
            fcntl.lockf(self._fd, operation, length, start)

    async def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._release is not None:
            self._release()  # closes the fd, once
            self._release = self._fd = None


def _window(value: int) -> int:
    return value % (SLOTS - WINDOW + 1)


def _lock_ranges(windows: list[int]) -> list[tuple[int, int]]:
    """Byte ranges covering the windows, merged and in ascending order: every process locks in the same
    order, so two takes can never wait for each other."""
    ranges: list[list[int]] = []
    for first in sorted(windows):
        if ranges and first <= ranges[-1][1]:
            ranges[-1][1] = max(ranges[-1][1], first + WINDOW)
        else:
            ranges.append([first, first + WINDOW])
    return [(first * _SLOT.size, (end - first) * _SLOT.size) for first, end in ranges]


def _find(table: mmap.mmap, value: int, now: float, taken: list[int]) -> tuple[int, tuple[float, float] | None]:
    """The slot of this fingerprint's bucket with its (tokens, stamp), or the slot a new bucket should take."""
    first = _window(value)
    fields = _WINDOW.unpack_from(table, first * _SLOT.size)  # the whole window in one call
    held = fields[0::4]
    if value in held:
        offset = held.index(value)
        if first + offset not in taken:
            return first + offset, (fields[4 * offset + 1], fields[4 * offset + 2])
    spare, spare_free_at = -1, float("inf")
    for offset, (fingerprint_held, full_at) in enumerate(zip(held, fields[3::4], strict=True)):
        if first + offset in taken:
            continue
        free_at = 0.0 if fingerprint_held == 0 or full_at <= now else full_at
        if free_at < spare_free_at:
            spare, spare_free_at = first + offset, free_at
    return spare, None
