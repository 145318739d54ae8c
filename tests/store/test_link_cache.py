"""The redirect path's link cache: fast, and never more than a moment behind the store."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import pytest

from boltlink.config import Config
from boltlink.errors import StoreUnavailable
from boltlink.store import create_store
from boltlink.store.base import NewLink
from boltlink.store.clicks import Visit
from boltlink.store.link_cache import LinkCache


@pytest.fixture(params=["sqlite", "postgres"])
def config(request, tmp_path) -> Config:
    if request.param == "postgres":
        return Config(data_dir=str(tmp_path), database_url=request.getfixturevalue("postgres_url"))
    return Config(data_dir=str(tmp_path))


@pytest.fixture
async def two_stores(config):
    """Two store objects on the same database, as two API workers (or pods) have."""
    stores = [create_store(config), create_store(config)]
    for store in stores:
        await store.open()
    yield stores
    for store in stores:
        await store.close()


async def until(predicate, timeout: float) -> float:
    started = time.monotonic()
    while not await predicate():
        assert time.monotonic() - started < timeout, "not seen in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_another_workers_update_and_delete_are_seen_within_a_second(two_stores):
    writer, reader = two_stores
    cache = LinkCache(reader)
    await writer.create_link(NewLink(slug="go", url="https://example.com/old"))
    assert (await cache.get("go")).url == "https://example.com/old"
    await writer.update_link("go", {"url": "https://example.com/new"})
    assert await until(lambda: _url_is(cache, "https://example.com/new"), timeout=1.5) < 1.0
    await writer.delete_link("go")
    assert await until(lambda: _gone(cache), timeout=1.5) < 1.0


async def test_click_counts_do_not_empty_the_cache_but_target_changes_do(two_stores):
    writer, reader = two_stores
    link = await writer.create_link(NewLink(slug="go", url="https://example.com"))
    before = await reader.links_version()
    # What the aggregator writes to links (clicks_*) must not look like a change of the link.
    visit = Visit(event_id="e1", link_id=link.id, at=datetime.now(timezone.utc), referrer=None,
                  referrer_host=None, user_agent=None, browser=None, os=None, device=None, bot=False,
                  ip=None, country=None, visitor="v1")
    assert await writer.record_clicks([visit]) == 1
    assert (await writer.get_link("go")).clicks_total == 1
    assert await reader.links_version() == before
    await writer.update_link("go", {"url": "https://example.org"})
    assert await reader.links_version() > before


async def test_links_with_a_click_allowance_are_always_read_from_the_store(two_stores):
    writer, reader = two_stores
    cache = LinkCache(reader)
    await writer.create_link(NewLink(slug="once", url="https://example.com", max_clicks=1))
    assert (await cache.get("once")).max_clicks_used == 0
    assert await writer.consume_click("once")
    assert (await cache.get("once")).max_clicks_used == 1  # at once, not a check later
    assert len(cache) == 0


async def test_known_links_keep_redirecting_while_the_store_is_down(two_stores):
    writer, reader = two_stores
    cache = LinkCache(reader, check_seconds=0.0)  # check on every get
    await writer.create_link(NewLink(slug="go", url="https://example.com"))
    assert await cache.get("go") is not None

    async def down() -> int:
        raise StoreUnavailable("the database is restarting")

    reader.links_version = down  # type: ignore[method-assign]
    assert (await cache.get("go")).url == "https://example.com"


async def _url_is(cache: LinkCache, url: str) -> bool:
    link = await cache.get("go")
    return link is not None and link.url == url


async def _gone(cache: LinkCache) -> bool:
    return await cache.get("go") is None
