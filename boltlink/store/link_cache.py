"""Links for the redirect path, kept in memory by each API worker.

A redirect that asked the database for its link paid a thread hop (SQLite) or
a round trip (PostgreSQL) every time. The cache answers from memory, and stays
honest across workers and pods with one cheap query: every CHECK_SECONDS it
reads store.links_version() (a row the database's triggers move on every
create, delete and redirect-relevant update) and forgets everything when it
moved. So every worker sees a change within about CHECK_SECONDS.

Links with a click allowance (max_clicks) are never cached: their count moves
with every visit, and redirect.py spends it in the store anyway. Unknown slugs
are not cached either (a new link must work at once).

When the store is unreachable, the version check fails and the cache keeps
what it has: known links keep redirecting through a database restart.
"""

from __future__ import annotations

import asyncio
import logging
import time

from boltlink.errors import StoreError
from boltlink.store.base import Link, LinkStore

log = logging.getLogger("boltlink.store")

CHECK_SECONDS = 0.5
MAX_ENTRIES = 100_000  # ~1 KB each: a bound on memory, not a working-set size


class LinkCache:
    def __init__(self, store: LinkStore, *, check_seconds: float = CHECK_SECONDS,
                 max_entries: int = MAX_ENTRIES) -> None:
        self.store = store
        self.check_seconds = check_seconds
        self.max_entries = max_entries
        self._links: dict[str, Link] = {}
        self._version: int | None = None
        self._next_check = 0.0
        self._checking: asyncio.Future[None] | None = None
        self._generation = 0  # moves with every clear: a lookup that straddles one must not refill
        self._failing = False

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
            if len(self._links) >= self.max_entries:
                del self._links[next(iter(self._links))]  # the oldest entry
            self._links[slug] = link
        return link

    def forget(self, slug: str) -> None:
        """This worker changed the link: drop it now rather than at the next check."""
        self._links.pop(slug, None)

    async def _check(self) -> None:
        if self._checking is None:  # one query however many redirects arrive meanwhile
            self._checking = asyncio.ensure_future(self._read_version())
        checking = self._checking
        try:
            await asyncio.shield(checking)
        finally:
            if self._checking is checking and checking.done():
                self._checking = None

    async def _read_version(self) -> None:
        try:
            version = await self.store.links_version()
        except StoreError as exc:
            if not self._failing:
                log.warning("link cache: cannot check for link changes (%s); serving what it holds", exc.detail)
                self._failing = True
            self._next_check = time.monotonic() + self.check_seconds
            return
        if self._failing:
            log.info("link cache: the store answers again")
            self._failing = False
        if version != self._version:
            self._links.clear()
            self._generation += 1
            self._version = version
        self._next_check = time.monotonic() + self.check_seconds

    def __len__(self) -> int:
        return len(self._links)
