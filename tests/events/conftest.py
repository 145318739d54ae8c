"""Fixtures for the click queue: a private Redis stream per test, and the two offset calls of a ClickStore."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

import pytest
import redis

from boltlink.events import redis as redis_events


class OffsetStore:
    """What SpoolReader needs from a ClickStore; commit() stands in for record_clicks(..., offsets)."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, int]] = {}

    def commit(self, source: str, offsets: dict[str, int]) -> None:
        self.stored.setdefault(source, {}).update(offsets)

    async def consumer_offsets(self, source: str) -> dict[str, int]:
        return dict(self.stored.get(source, {}))

    async def forget_offsets(self, source: str, names: Sequence[str]) -> None:
        for name in names:
            self.stored.get(source, {}).pop(name, None)


@pytest.fixture
def offset_store() -> OffsetStore:
    return OffsetStore()


@pytest.fixture
def stream(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A stream and group no other test (or engineer's run) uses; deleted afterwards."""
    name = f"boltlink-test:clicks:{uuid.uuid4().hex}"
    monkeypatch.setattr(redis_events, "STREAM", name)
    monkeypatch.setattr(redis_events, "GROUP", f"group-{uuid.uuid4().hex[:8]}")
    yield name
    with redis.Redis.from_url(redis_url) as client:
        client.delete(name)
