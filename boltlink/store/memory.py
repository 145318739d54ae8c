"""MemoryStore: the LinkStore in plain dicts, for unit tests.

Same semantics as the database backends (the contract suite in
tests/store/ runs against all three). Nothing here awaits in the middle of
a change, so each method is atomic on the event loop.
"""

from __future__ import annotations

import dataclasses
from collections import deque

from boltlink.errors import Conflict, SlugTaken, StoreUnavailable
from boltlink.store.base import ApiKey, Link, LinkChanges, LinkPage, LinkQuery, LinkStore, MigrationReport, NewLink
from boltlink.store.common import check_changes, check_query, now, unique_tags, utc, utc_or_none
from boltlink.store.memory_clicks import MemoryClickStore
from boltlink.store.schema import latest, load_migrations, pending

CHANGE_LOG_KEPT = 10_000  # as the link_change_log triggers of migration 0005
# The columns whose update the database's triggers count as a change (migration 0003): a redirect notices them.
REDIRECT_FIELDS = frozenset({"url", "expires_at", "max_clicks", "redirect_status", "forward_query", "do_not_track"})


class MemoryStore(LinkStore, MemoryClickStore):
    def __init__(self) -> None:
        self._open = False
        self._links: dict[str, Link] = {}
        self._keys: dict[str, ApiKey] = {}
        self._next_id = 1
        self._version = 0  # links_version(): moves with every create, update and delete
        self._change_log: deque[tuple[int, str]] = deque(maxlen=CHANGE_LOG_KEPT)  # (version, slug)
        # Pretends to hold the SQLite schema, so migrate() reports like the real backends.
        self._versions: set[int] = set()
        self._init_clicks()

    # lifecycle -----------------------------------------------------------

    async def open(self, *, migrate: bool = True) -> None:
        self._open = True
        if migrate:
            await self.migrate()

    async def close(self) -> None:
        self._open = False

    async def migrate(self) -> MigrationReport:
        self._open = True
        migrations = load_migrations("sqlite")
        applied = [m.version for m in pending(migrations, self._versions)]
        self._versions.update(applied)
        return MigrationReport(applied=applied, current=latest(migrations, self._versions))

    async def ping(self) -> None:
        self._check_open()

    async def links_version(self) -> int:
        self._check_open()
        return self._version

    async def link_changes_since(self, version: int) -> LinkChanges:
        self._check_open()
        if version == self._version:
            return LinkChanges(version, frozenset())
        oldest = self._change_log[0][0] if self._change_log else self._version + 1
        if version > self._version or oldest > version + 1:
            return LinkChanges(self._version, None)
        return LinkChanges(self._version, frozenset(slug for v, slug in self._change_log if v > version))

    def _changed(self, slug: str) -> None:
        self._version += 1
        self._change_log.append((self._version, slug))

    def _check_open(self) -> None:
        if not self._open:
            raise StoreUnavailable("The link store is not open.")

    # links -----------------------------------------------------------------

    async def create_link(self, new: NewLink) -> Link:
        self._check_open()
        if new.slug in self._links:
            raise SlugTaken(new.slug)
        created = now()
        link = Link(
            id=self._next_id,
            slug=new.slug,
            url=new.url,
            title=new.title,
            tags=unique_tags(new.tags),
            created_at=created,
            updated_at=created,
            expires_at=utc_or_none(new.expires_at),
            max_clicks=new.max_clicks,
            redirect_status=new.redirect_status,
            forward_query=new.forward_query,
            do_not_track=new.do_not_track,
        )
        self._next_id += 1
        self._links[link.slug] = link
        self._changed(link.slug)
        return link

    async def get_link(self, slug: str) -> Link | None:
        self._check_open()
        return self._links.get(slug)

    async def popular_links(self, limit: int) -> list[Link]:
        self._check_open()
        moment = now()
        cacheable = [link for link in self._links.values() if link.max_clicks is None and not link.is_expired(moment)]
        cacheable.sort(key=lambda link: (link.clicks_total, link.id), reverse=True)
        return cacheable[:limit]

    async def list_links(self, query: LinkQuery) -> LinkPage:
        self._check_open()
        column, descending = check_query(query)
        matches = [link for link in self._links.values() if _matches(link, query)]
        matches.sort(key=lambda link: (getattr(link, column), link.id), reverse=descending)
        start = (query.page - 1) * query.limit
        return LinkPage(
            items=matches[start : start + query.limit], total=len(matches), page=query.page, limit=query.limit
        )

    async def update_link(self, slug: str, changes: dict[str, object]) -> Link | None:
        self._check_open()
        clean = check_changes(changes)
        link = self._links.get(slug)
        if link is None or not clean:
            return link
        updated = dataclasses.replace(link, **clean, updated_at=now())  # type: ignore[arg-type]
        self._links[slug] = updated
        if REDIRECT_FIELDS.intersection(clean):
            self._changed(slug)
        return updated

    async def delete_link(self, slug: str) -> bool:
        self._check_open()
        link = self._links.pop(slug, None)
        if link is not None:
            self._forget_link(link.id)
            self._changed(slug)
        return link is not None

    async def consume_click(self, slug: str) -> bool:
        self._check_open()
        link = self._links.get(slug)
        if link is None:
            return False
        if link.max_clicks is None:
            return True
        if link.max_clicks_used >= link.max_clicks:
            return False
        self._links[slug] = dataclasses.replace(link, max_clicks_used=link.max_clicks_used + 1)
        return True

    # API keys ------------------------------------------------------------------

    async def create_api_key(self, key: ApiKey) -> ApiKey:
        self._check_open()
        if key.id in self._keys:
            raise Conflict(f"An API key with id '{key.id}' already exists.")
        if any(k.active and k.name == key.name for k in self._keys.values()):
            raise Conflict(f"An active API key named '{key.name}' already exists.")
        stored = dataclasses.replace(
            key,
            scopes=tuple(key.scopes),
            created_at=utc(key.created_at),
            revoked_at=utc_or_none(key.revoked_at),
            last_used_at=utc_or_none(key.last_used_at),
            expires_at=utc_or_none(key.expires_at),
        )
        self._keys[key.id] = stored
        return stored

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        self._check_open()
        return self._keys.get(key_id)

    async def list_api_keys(self) -> list[ApiKey]:
        self._check_open()
        return sorted(self._keys.values(), key=lambda k: (k.created_at, k.id))

    async def revoke_api_key(self, id_or_name: str) -> ApiKey | None:
        self._check_open()
        active = [k for k in self._keys.values() if k.active]
        # An id match wins over a name match, as in the database backends.
        target = next((k for k in active if k.id == id_or_name), None) or next(
            (k for k in active if k.name == id_or_name), None
        )
        if target is None:
            return None
        revoked = dataclasses.replace(target, revoked_at=now())
        self._keys[target.id] = revoked
        return revoked


def _matches(link: Link, query: LinkQuery) -> bool:
    if query.tag is not None and query.tag not in link.tags:
        return False
    if query.q:
        needle = query.q.lower()
        return any(needle in (value or "").lower() for value in (link.url, link.slug, link.title))
    return True
