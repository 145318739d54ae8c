"""Click events: what a redirect records, and how it travels to the aggregator.

    model.py     ClickEvent and its one-line JSON form
    base.py      the EventSink (API workers write) and EventSource (the aggregator reads) interfaces
    spool.py     embedded mode: append-only spool files in DATA_DIR/spool
    redis.py     distributed mode: a Redis Stream read through a consumer group
    fallback.py  a Redis sink that spools locally while Redis is down, and ships the spool when it is back
    enrich.py    ClickEvent -> Visit: user agent parsing, referrer host, visitor hash
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from boltlink.config import Config
    from boltlink.events.base import EventSink, EventSource
    from boltlink.store.clicks import ClickStore


def create_sink(config: Config, writer_name: str) -> EventSink:
    """Where this process's redirects queue their events: Redis when configured, else the spool."""
    if config.redis_url:
        from boltlink.events.fallback import RedisSink

        return RedisSink(config.redis_url, config.spool_path, writer_name, config.spool_file_size)
    from boltlink.events.spool import SpoolWriter

    return SpoolWriter(config.spool_path, writer_name, config.spool_file_size)


def create_source(config: Config, store: ClickStore) -> EventSource:
    """What the aggregator reads: the Redis stream when configured, else the spool."""
    if config.redis_url:
        from boltlink.events.redis import RedisStreamSource

        return RedisStreamSource(config.redis_url)
    from boltlink.events.spool import SpoolReader

    return SpoolReader(config.spool_path, store)
