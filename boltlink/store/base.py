"""The LinkStore interface and the records it speaks in.

Implementations live beside this file: sqlite.py (embedded default),
postgres.py (asyncpg) and memory.py (unit tests). Every driver exception is
translated at this boundary into boltlink.errors (StoreUnavailable,
SlugTaken, MigrationError...): nothing above store/ imports a driver.

Slugs are case-sensitive everywhere. Times are timezone-aware UTC datetimes,
kept to the microsecond; a naive datetime given to a store is taken as UTC.
An invalid database URL is a ConfigError; an unreachable server StoreUnavailable.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NamedTuple

SortKey = Literal["created_at", "-created_at", "slug", "-slug", "url", "-url", "clicks", "-clicks"]
SORT_KEYS: tuple[str, ...] = ("created_at", "-created_at", "slug", "-slug", "url", "-url", "clicks", "-clicks")

Scope = Literal["links:read", "links:write", "stats:read", "admin"]
SCOPES: tuple[str, ...] = ("links:read", "links:write", "stats:read", "admin")


@dataclass(frozen=True)
class NewLink:
    """A link to create. The slug is already validated (or generated) by the caller."""

    slug: str
    url: str
    title: str | None = None
    tags: tuple[str, ...] = ()
    expires_at: datetime | None = None
    max_clicks: int | None = None
    redirect_status: int = 302
    forward_query: bool = False
    do_not_track: bool = False


@dataclass(frozen=True, slots=True)  # slots: every API worker's link cache holds thousands (link_cache.py)
class Link:
    """A stored link with its click counters.

    clicks_* are filled by the aggregator from click events; max_clicks_used is
    the atomic count of human redirects that max_clicks is checked against.
    """

    id: int
    slug: str
    url: str
    title: str | None
    tags: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    max_clicks: int | None
    redirect_status: int
    forward_query: bool
    clicks_total: int = 0
    clicks_humans: int = 0
    clicks_bots: int = 0
    max_clicks_used: int = 0
    do_not_track: bool = False  # record no click events for this link

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def is_exhausted(self) -> bool:
        return self.max_clicks is not None and self.max_clicks_used >= self.max_clicks


# Fields of a link that PATCH may change; slug and counters are not among them.
UPDATABLE_FIELDS = (
    "url", "title", "tags", "expires_at", "max_clicks", "redirect_status", "forward_query", "do_not_track",
)


class LinkChanges(NamedTuple):
    """What link_changes_since() found: the version it read up to, and the slugs changed since the one given.

    slugs is None when the change log no longer reaches back that far (it keeps
    the last 10,000 changes) or the version is not one this database gave out:
    whoever holds links from before must forget them all.
    """

    version: int
    slugs: frozenset[str] | None


@dataclass(frozen=True)
class LinkQuery:
    """One page of links: optional search over url/slug/title, tag filter, sort."""

    q: str | None = None
    tag: str | None = None
    sort: str = "-created_at"
    page: int = 1
    limit: int = 20


@dataclass(frozen=True)
class LinkPage:
    items: list[Link]
    total: int
    page: int
    limit: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.limit))


@dataclass(frozen=True)
class ApiKey:
    """An API key as stored: never the key itself, only its SHA-256 hash."""

    id: str
    name: str
    key_hash: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    expires_at: datetime | None = None

    @property
    def active(self) -> bool:
        """Not revoked (an expired key is still active: its name stays taken until it is revoked)."""
        return self.revoked_at is None

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True)
class MigrationReport:
    applied: list[int] = field(default_factory=list)
    current: int = 0


class LinkStore(abc.ABC):
    """Links and API keys. One instance per process; safe for concurrent coroutines."""

    # lifecycle -----------------------------------------------------------

    @abc.abstractmethod
    async def open(self, *, migrate: bool = True) -> None:
        """Connect and (unless migrate=False) apply pending migrations.

        Raises StoreUnavailable, MigrationError.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections. Safe to call twice."""

    @abc.abstractmethod
    async def migrate(self) -> MigrationReport:
        """Apply pending schema migrations; idempotent and safe when two processes race."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise StoreUnavailable when the backend cannot answer a trivial query."""

    @abc.abstractmethod
    async def links_version(self) -> int:
        """A number that moves whenever a link is created, deleted, or changed in a way a redirect notices.

        Shared by every process using the store (a row the database's triggers
        keep), so an in-memory link cache knows when to forget (link_cache.py).
        Version N is the Nth change; link_changes_since() says which links they were.
        """

    @abc.abstractmethod
    async def link_changes_since(self, version: int) -> LinkChanges:
        """The current links_version() and the slugs created, deleted or changed after `version`.

        Read in one snapshot, so every change up to the version returned is in
        the slugs, and none after it. Cheap when nothing changed: link caches
        ask every half second.
        """

    # links -----------------------------------------------------------------

    @abc.abstractmethod
    async def create_link(self, new: NewLink) -> Link:
        """Insert a link. Raises SlugTaken when the slug exists (case-sensitive)."""

    @abc.abstractmethod
    async def get_link(self, slug: str) -> Link | None:
        """The link with exactly this slug, or None."""

    @abc.abstractmethod
    async def popular_links(self, limit: int) -> list[Link]:
        """Up to `limit` links a redirect cache may hold, most clicked (clicks_total) first.

        Only links without max_clicks that have not expired: what a warming link cache loads.
        """

    @abc.abstractmethod
    async def list_links(self, query: LinkQuery) -> LinkPage:
        """A page of links. q matches url, slug and title case-insensitively as a substring."""

    @abc.abstractmethod
    async def update_link(self, slug: str, changes: dict[str, object]) -> Link | None:
        """Apply changes (keys from UPDATABLE_FIELDS) and return the new link, or None if absent.

        Another key raises InvalidInput. No changes returns the link untouched
        (updated_at is not bumped). Duplicate tags are dropped, first kept.
        """

    @abc.abstractmethod
    async def delete_link(self, slug: str) -> bool:
        """Delete the link; False when there was none."""

    @abc.abstractmethod
    async def consume_click(self, slug: str) -> bool:
        """Atomically count one human redirect against max_clicks.

        True when the redirect may happen (no limit, or used < max_clicks, in
        which case max_clicks_used is incremented); False when the limit is
        reached or the slug does not exist. One statement, never
        read-then-write, so every process at once never lets more than
        max_clicks through.
        """

    # API keys ------------------------------------------------------------------

    @abc.abstractmethod
    async def create_api_key(self, key: ApiKey) -> ApiKey:
        """Store a key record. Raises Conflict if the id or name exists among active keys."""

    @abc.abstractmethod
    async def get_api_key(self, key_id: str) -> ApiKey | None:
        """The key record with this public id (revoked or not), or None."""

    @abc.abstractmethod
    async def list_api_keys(self) -> list[ApiKey]:
        """Every key record, oldest first."""

    @abc.abstractmethod
    async def revoke_api_key(self, id_or_name: str) -> ApiKey | None:
        """Mark the active key with this id or name revoked; None when there is none."""
