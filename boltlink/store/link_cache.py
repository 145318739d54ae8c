"""Links for the redirect path, kept in memory by each API worker.

A redirect that asked the database for its link paid a thread hop (SQLite) or
a round trip (PostgreSQL) every time. The cache answers from memory, and stays
honest across workers and pods with one cheap query: every CHECK_SECONDS it
asks store.link_changes_since(the version it last saw) and forgets just the
slugs created, changed or deleted since (a log the database's triggers keep,
migration 0005). So every worker sees a change within about CHECK_SECONDS,
and a link created elsewhere costs the others nothing. When the log no longer
reaches back far enough, the cache forgets everything, as it did before the log.

Links with a click allowance (max_clicks) are never cached: their count moves
with every visit, and redirect.py spends it in the store anyway. Unknown slugs
are not cached either (a new link must work at once).

A new worker starts warm: warm_up() loads the most-clicked links in the
background, so serving starts at once and the first redirects of popular links
find them here instead of queueing at the database.

When the store is unreachable, the change check fails and the cache keeps
what it has: known links keep redirecting through a database restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from boltlink.errors import StoreError
from boltlink.store.base import Link, LinkChanges, LinkStore

log = logging.getLogger("boltlink.store")

CHECK_SECONDS = 0.5
# The bound is API worker RSS <= 80 MB (issue #8). Measured: a cached link takes
# ~600 bytes of RSS (a `worker api` warmed with 10,000 then 20,000 links whose
# URLs are 95 characters: 61.1 -> 68.7 -> 74.7 MB on SQLite, 62.7 -> 68.4 MB with
# 10,000 on PostgreSQL; tracemalloc counts 533 bytes for the Link, its slug, URL,
# datetimes, counters and dict slot with a 55-character URL). Under the benchmark's
# load a worker holding 10,000 links measured 74.7 MB (README), so 10,000 it is:
# all of issue #8's 10,000 slugs, and 20,000 would pass 80 MB.
MAX_ENTRIES = 10_000
# All of it: the warm-up reads 10,000 links in ~0.15 s, in the background, and a
# warm-up bigger than the bound would only evict itself.
WARM_UP_LINKS = MAX_ENTRIES
WARM_UP_TRIES = 3  # change checks racing the warm-up's own (see warm_up)


class LinkCache:
    def __init__(self, store: LinkStore, *, check_seconds: float = CHECK_SECONDS,
                 max_entries: int = MAX_ENTRIES, warm_up_links: int = WARM_UP_LINKS) -> None:
        self.store = store
        self.check_seconds = check_seconds
        self.max_entries = max_entries
        self.warm_up_links = warm_up_links
        self._links: dict[str, Link] = {}
        self._version: int | None = None  # the store's change version the cache has caught up with
        self._next_check = 0.0
        self._checking: asyncio.Future[None] | None = None
        # Moves whenever entries are dropped: a lookup that straddles a drop must not refill.
        self._generation = 0
        self._failing = False
        self._warming: asyncio.Task[int] | None = None

    async def get(self, slug: str) -> Link | None:
        """The link, as fresh as CHECK_SECONDS; None when there is none."""
        if time.monotonic() >= self._next_check:
            await self._check()
        link = self._links.get(slug)
        if link is not None:
            return link
        generation = self._generation
        link = await self.store.get_link(slug)
        if link is not None and link.max_clicks is None and generation == self._generation:
            self._remember(link)
        return link

    def forget(self, slug: str) -> None:
        """This worker changed the link: drop it now rather than at the next check."""
        self._links.pop(slug, None)
        self._generation += 1

    # warm-up -----------------------------------------------------------------

    async def start_warm_up(self) -> None:
        """Warm up in the background (a before_serving hook: serving does not wait for it)."""
        if self._warming is None and self.warm_up_links > 0:
            self._warming = asyncio.create_task(self._warm_up_logged(), name="link-cache-warm-up")

    async def close(self) -> None:
        """Stop a warm-up still running (an after_serving hook, before the store closes)."""
        warming, self._warming = self._warming, None
        if warming is not None and not warming.done():
            warming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warming

    async def _warm_up_logged(self) -> int:
        started = time.monotonic()
        try:
            loaded = await self.warm_up()
        except StoreError as exc:  # redirects fill the cache one by one instead
            log.warning("link cache: warm-up failed (%s)", exc.detail)
            return 0
        except Exception:  # nobody awaits this task: say why here, and serve on
            log.exception("link cache: warm-up failed")
            return 0
        log.info("link cache: warmed up with %d links in %.2fs", loaded, time.monotonic() - started)
        return loaded

    async def warm_up(self) -> int:
        """Load the most-clicked cacheable links (store.popular_links); how many were added.

        The links are read at some version V of the store, and meanwhile the
        change checks may drop slugs. So the warm-up asks which slugs changed
        since before its read, up to a version the cache has not passed, and
        adds only the others: a link loaded here is never older than a change
        the cache has already applied.
        """
        if self._version is None:
            await self._check()
            if self._version is None:  # the store did not answer; get() fills the cache instead
                return 0
        since = self._version
        links = await self.store.popular_links(min(self.warm_up_links, self.max_entries))
        for _ in range(WARM_UP_TRIES):
            changes = await self.store.link_changes_since(since)
            if changes.slugs is None:
                return 0  # more changed meanwhile than the log keeps: too stale to use
            if changes.version >= self._version:  # no check applied a change the slugs miss
                return self._add_all(links, changes.slugs)
        return 0

    def _add_all(self, links: list[Link], changed: frozenset[str]) -> int:
        added = 0
        for link in links:
            if len(self._links) >= self.max_entries:
                break
            if link.slug not in changed and link.slug not in self._links:
                self._links[link.slug] = link
                added += 1
        return added

    def _remember(self, link: Link) -> None:
        if len(self._links) >= self.max_entries and link.slug not in self._links:
            del self._links[next(iter(self._links))]  # the oldest entry
        self._links[link.slug] = link

    # change checks -------------------------------------------------------------

    async def _check(self) -> None:
        if self._checking is None:  # one query however many redirects arrive meanwhile
            self._checking = asyncio.ensure_future(self._read_changes())
        checking = self._checking
        try:
            await asyncio.shield(checking)
        finally:
            if self._checking is checking and checking.done():
                self._checking = None

    async def _read_changes(self) -> None:
        try:
            if self._version is None:  # the first check: no version to ask from, so drop all
                changes = LinkChanges(await self.store.links_version(), None)
            else:
                changes = await self.store.link_changes_since(self._version)
        except StoreError as exc:
            if not self._failing:
                log.warning("link cache: cannot check for link changes (%s); serving what it holds", exc.detail)
                self._failing = True
            self._next_check = time.monotonic() + self.check_seconds
            return
        if self._failing:
            log.info("link cache: the store answers again")
            self._failing = False
        self._apply(changes)
        self._next_check = time.monotonic() + self.check_seconds

    def _apply(self, changes: LinkChanges) -> None:
        if changes.slugs is None:
            if self._links:
                log.info("link cache: cannot tell which links changed; forgetting all %d", len(self._links))
            self._links.clear()
            self._generation += 1
        elif changes.slugs:
            for slug in changes.slugs:
                self._links.pop(slug, None)
            self._generation += 1
        self._version = changes.version

    def __len__(self) -> int:
        return len(self._links)
