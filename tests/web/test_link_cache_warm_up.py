"""An API process warms its link cache in the background: serving starts without waiting for it."""

from __future__ import annotations

import asyncio
import time

from boltlink.config import Config
from boltlink.store.base import LinkStore, NewLink
from boltlink.web import create_app


async def test_serving_starts_at_once_and_the_warm_up_then_fills_the_cache(config: Config, store: LinkStore) -> None:
    await store.create_link(NewLink(slug="hot", url="https://example.com/hot"))
    release = asyncio.Event()
    read_popular = store.popular_links

    async def slow_popular_links(limit: int):  # a big warm-up query
        await release.wait()
        return await read_popular(limit)

    store.popular_links = slow_popular_links  # type: ignore[method-assign]
    app = create_app(config, store)
    links = app.extensions["boltlink"].links
    async with app.test_app():
        assert len(links) == 0  # serving although the warm-up has not read anything yet
        release.set()
        deadline = time.monotonic() + 2.0
        while len(links) == 0:
            assert time.monotonic() < deadline, "the warm-up did not fill the cache"
            await asyncio.sleep(0.01)
        response = await app.test_client().get("/hot")
        assert (response.status_code, response.headers["Location"]) == (302, "https://example.com/hot")


async def test_shutdown_does_not_wait_for_an_unfinished_warm_up(config: Config, store: LinkStore) -> None:
    async def never(limit: int):
        await asyncio.Event().wait()

    store.popular_links = never  # type: ignore[method-assign]
    app = create_app(config, store)
    started = time.monotonic()
    async with app.test_app():
        pass
    assert time.monotonic() - started < 2.0
