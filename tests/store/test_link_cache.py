"""The redirect path's link cache: fast, and never more than a moment behind the store."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import pytest

from boltlink.config import Config
from boltlink.errors import StoreUnavailable
from boltlink.store import create_store
from boltlink.store.base import LinkStore, NewLink
from boltlink.store.clicks import Visit
from boltlink.store.link_cache import LinkCache
from boltlink.store.memory import CHANGE_LOG_KEPT, MemoryStore


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

    async def down(*args: object) -> int:
        raise StoreUnavailable("the database is restarting")

    reader.links_version = reader.link_changes_since = reader.get_link = down  # type: ignore[method-assign]
    assert (await cache.get("go")).url == "https://example.com"


async def test_a_change_elsewhere_drops_only_that_link_within_the_check_interval(two_stores):
    writer, reader = two_stores
    reads = count_reads(reader)
    cache = LinkCache(reader)
    for slug in ("go", "stay"):
        await writer.create_link(NewLink(slug=slug, url=f"https://example.com/{slug}"))
    for slug in ("go", "stay"):
        await cache.get(slug)
    await writer.update_link("go", {"url": "https://example.com/new"})
    assert await until(lambda: _url_is(cache, "https://example.com/new"), timeout=1.5) < 1.0
    before = reads["stay"]
    assert (await cache.get("stay")).url == "https://example.com/stay"
    assert reads["stay"] == before  # still answered from memory


async def test_a_link_created_elsewhere_does_not_evict_cached_links(two_stores):
    writer, reader = two_stores
    reads = count_reads(reader)
    cache = LinkCache(reader, check_seconds=0.0)  # check on every get
    await writer.create_link(NewLink(slug="a", url="https://example.com/a"))
    await cache.get("a")
    await writer.create_link(NewLink(slug="b", url="https://example.com/b"))
    assert (await cache.get("b")).url == "https://example.com/b"  # a new link works at once
    assert (await cache.get("a")).url == "https://example.com/a"
    assert reads["a"] == 1
    assert len(cache) == 2


async def test_a_cache_further_behind_than_the_change_log_forgets_everything():
    store = MemoryStore()
    await store.open()
    reads = count_reads(store)
    cache = LinkCache(store, check_seconds=0.0)
    await store.create_link(NewLink(slug="old", url="https://example.com/old"))
    await cache.get("old")
    # A worker that slept through more changes than the log keeps cannot tell which links they were.
    for number in range(CHANGE_LOG_KEPT + 1):
        await store.create_link(NewLink(slug=f"new-{number}", url="https://example.com/"))
    assert (await store.link_changes_since(1)).slugs is None
    await cache.get("old")
    assert reads["old"] == 2
    assert len(cache) == 1


async def test_warm_up_loads_the_most_clicked_links(two_stores):
    writer, reader = two_stores
    for slug, clicks in (("first", 30), ("second", 20), ("third", 10), ("fourth", 5)):
        link = await writer.create_link(NewLink(slug=slug, url=f"https://example.com/{slug}"))
        await writer.record_clicks([_visit(link.id, f"{slug}-{n}") for n in range(clicks)])
    await writer.create_link(NewLink(slug="limited", url="https://example.com/", max_clicks=100))
    reads = count_reads(reader)
    cache = LinkCache(reader, warm_up_links=3)

    assert await cache.warm_up() == 3
    for slug in ("first", "second", "third"):
        assert (await cache.get(slug)).clicks_total > 5
    assert reads == {}  # none of them asked the store
    await cache.get("fourth")
    assert reads == {"fourth": 1}


async def test_warm_up_leaves_out_links_changed_while_it_read(two_stores):
    writer, reader = two_stores
    for slug in ("changed", "steady"):
        await writer.create_link(NewLink(slug=slug, url=f"https://example.com/{slug}"))
    cache = LinkCache(reader, check_seconds=60.0)  # no check would catch the change in time
    read_popular = reader.popular_links

    async def change_after_reading(limit: int):
        links = await read_popular(limit)
        await writer.update_link("changed", {"url": "https://example.org/new"})
        return links

    reader.popular_links = change_after_reading  # type: ignore[method-assign]
    assert await cache.warm_up() == 1  # "steady" only
    assert (await cache.get("changed")).url == "https://example.org/new"


async def test_warm_up_of_an_unreachable_store_loads_nothing_and_redirects_still_work(two_stores):
    writer, reader = two_stores
    await writer.create_link(NewLink(slug="go", url="https://example.com"))
    cache = LinkCache(reader)

    async def down(limit: int):
        raise StoreUnavailable("the database is restarting")

    reader.popular_links = down  # type: ignore[method-assign]
    await cache.start_warm_up()
    await cache.close()  # waits for (or stops) the warm-up; its failure is logged, not raised
    assert (await cache.get("go")).url == "https://example.com"


def count_reads(store: LinkStore) -> dict[str, int]:
    """How many times each slug was read from the store (not the cache)."""
    reads: dict[str, int] = {}
    get_link = store.get_link

    async def counted(slug: str):
        reads[slug] = reads.get(slug, 0) + 1
        return await get_link(slug)

    store.get_link = counted  # type: ignore[method-assign]
    return reads


def _visit(link_id: int, event_id: str) -> Visit:
    return Visit(event_id=event_id, link_id=link_id, at=datetime.now(timezone.utc), referrer=None,
                 referrer_host=None, user_agent=None, browser=None, os=None, device=None, bot=False,
                 ip=None, country=None, visitor=event_id)


async def _url_is(cache: LinkCache, url: str) -> bool:
    link = await cache.get("go")
    return link is not None and link.url == url


async def _gone(cache: LinkCache) -> bool:
    return await cache.get("go") is None
