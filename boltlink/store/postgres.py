"""PostgresStore: links and API keys in PostgreSQL through an asyncpg pool.

Every asyncpg or socket error is translated in _connection() (or, where it
means something, in the method itself) into boltlink.errors, and no message
ever shows the password of the database URL. Times are timestamptz, so
microseconds survive the round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from boltlink.config import mask_url_password
from boltlink.errors import (
    BoltlinkError,
    ConfigError,
    Conflict,
    MigrationError,
    SlugTaken,
    StoreError,
    StoreUnavailable,
)
from boltlink.store.base import ApiKey, Link, LinkChanges, LinkPage, LinkQuery, LinkStore, MigrationReport, NewLink
from boltlink.store.common import (
    LIKE_ESCAPE,
    check_changes,
    check_query,
    like_pattern,
    unique_tags,
    utc,
    utc_or_none,
)
from boltlink.store.postgres_clicks import PostgresClickStore, delete_link_clicks
from boltlink.store.schema import latest, load_migrations, pending

# Any fixed bigint works, as long as every boltlink process uses the same one: "boltlink" in ASCII.
MIGRATION_LOCK_KEY = int.from_bytes(b"boltlink", "big")

CONNECT_TIMEOUT = 5.0
CLOSE_TIMEOUT = 10.0

# Errors that mean "the database cannot be reached or used right now", not a bug.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,  # pool closed, connection lost mid-use
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.InvalidAuthorizationSpecificationError,  # class 28: bad user or password
    asyncpg.InvalidCatalogNameError,  # the database does not exist
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full
    asyncpg.OperatorInterventionError,  # class 57: shutdown, starting up, statement timeout
)

# Every column of a Link, the tags (in the order given) as an array.
_SELECT_LINK = (
    "SELECT l.id, l.slug, l.url, l.title, l.created_at, l.updated_at, l.expires_at, l.max_clicks,"
    " l.max_clicks_used, l.redirect_status, l.forward_query, l.do_not_track,"
    " l.clicks_total, l.clicks_humans, l.clicks_bots,"
    " ARRAY(SELECT t.tag FROM link_tags t WHERE t.link_id = l.id ORDER BY t.position) AS tags"
    " FROM links l"
)
_INSERT_TAGS = (
    "INSERT INTO link_tags (link_id, tag, position)"
    " SELECT $1, tag, position FROM unnest($2::text[]) WITH ORDINALITY AS given(tag, position)"
)


class PostgresStore(LinkStore, PostgresClickStore):
    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self._dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._where = _masked(dsn)

    # lifecycle -----------------------------------------------------------

    async def open(self, *, migrate: bool = True) -> None:
        """Connect and (unless migrate=False) apply pending migrations; nothing stays open on failure."""
        try:
            await self._connect()
            if migrate:
                await self.migrate()
        except BaseException:
            await self.close()
            raise

    async def migrate(self) -> MigrationReport:
        await self._connect()
        migrations = load_migrations("postgres")
        async with self._connection() as conn, conn.transaction():
            # Held until this transaction ends: a second process starting now waits
            # here, then reads the versions this one recorded.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
            todo = pending(migrations, done)
            for migration in todo:
                try:
                    await conn.execute(migration.sql)  # simple protocol: the file may hold many statements
                except _UNAVAILABLE:
                    raise
                except asyncpg.PostgresError as exc:
                    raise MigrationError(
                        f"Migration postgres/{migration.filename} failed,"
                        f" so no pending migration was applied: {exc}"
                    ) from exc
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", migration.version)
        applied = [m.version for m in todo]
        return MigrationReport(applied=applied, current=latest(migrations, done | set(applied)))

    async def _connect(self) -> None:
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=CONNECT_TIMEOUT,
                command_timeout=60,
                server_settings={"application_name": "boltlink"},  # names us in pg_stat_activity
            )
        except ValueError as exc:  # asyncpg's ClientConfigurationError is one too
            raise ConfigError(f"The database URL {self._where} is not valid: {exc}") from exc
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(
                f"Cannot connect to PostgreSQL at {self._where}: {_describe(exc)}"
            ) from exc
        except asyncpg.PostgresError as exc:
            raise StoreUnavailable(f"PostgreSQL at {self._where} refused the connection: {exc}") from exc

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT)
        except (TimeoutError, *_UNAVAILABLE):
            pool.terminate()

    async def ping(self) -> None:
        async with self._connection() as conn:
            await conn.fetchval("SELECT 1")

    async def links_version(self) -> int:
        async with self._connection() as conn:
            return await conn.fetchval("SELECT version FROM link_changes")

    async def link_changes_since(self, version: int) -> LinkChanges:
        async with self._connection() as conn:
            # One statement, so one snapshot for the version and its log.
            row = await conn.fetchrow(
                "SELECT version AS head,"
                " (SELECT min(version) FROM link_change_log) AS oldest,"
                " ARRAY(SELECT slug FROM link_change_log WHERE version > $1) AS slugs"
                " FROM link_changes WHERE id = 1",
                version,
            )
        head, oldest = row["head"], row["oldest"]
        if head == version:
            return LinkChanges(head, frozenset())
        if version > head or oldest is None or oldest > version + 1:
            return LinkChanges(head, None)
        return LinkChanges(head, frozenset(row["slugs"]))

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; errors inside the block come out as boltlink errors."""
        pool = self._pool
        if pool is None:
            raise StoreUnavailable(f"The PostgreSQL store {self._where} is not open.")
        try:
            async with pool.acquire() as conn:
                yield conn
        except BoltlinkError:
            raise
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL at {self._where} is unavailable: {_describe(exc)}") from exc
        except asyncpg.PostgresError as exc:
            raise StoreError(f"PostgreSQL error: {exc}") from exc

    # links -----------------------------------------------------------------

    async def create_link(self, new: NewLink) -> Link:
        async with self._connection() as conn, conn.transaction():
            try:
                link_id = await conn.fetchval(
                    "INSERT INTO links (slug, url, title, expires_at, max_clicks, redirect_status,"
                    " forward_query, do_not_track) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                    new.slug, new.url, new.title, utc_or_none(new.expires_at), new.max_clicks,
                    new.redirect_status, new.forward_query, new.do_not_track,
                )  # fmt: skip
            except asyncpg.UniqueViolationError as exc:
                raise SlugTaken(new.slug) from exc
            await conn.execute(_INSERT_TAGS, link_id, list(unique_tags(new.tags)))
            return _link(await conn.fetchrow(f"{_SELECT_LINK} WHERE l.id = $1", link_id))

    async def get_link(self, slug: str) -> Link | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(f"{_SELECT_LINK} WHERE l.slug = $1", slug)
        return None if row is None else _link(row)

    async def popular_links(self, limit: int) -> list[Link]:
        query = (
            f"{_SELECT_LINK} WHERE l.max_clicks IS NULL AND (l.expires_at IS NULL OR l.expires_at > now())"
            " ORDER BY l.clicks_total DESC, l.id DESC LIMIT $1"  # links_clicks_total_idx, backwards
        )
        # A cursor, so thousands of rows never sit in memory beside their links: a freed
        # list of every row would stay in the API worker's RSS as fragmentation.
        async with self._connection() as conn, conn.transaction(readonly=True):
            return [_link(row) async for row in conn.cursor(query, limit, prefetch=500)]

    async def list_links(self, query: LinkQuery) -> LinkPage:
        column, descending = check_query(query)
        clauses: list[str] = []
        params: list[Any] = []
        if query.q:
            params.append(like_pattern(query.q))
            # COLLATE "default": slug and url are "C" columns, and ILIKE folds only ASCII under "C".
            clauses.append(
                "(" + " OR ".join(
                    f'l.{c} COLLATE "default" ILIKE ${len(params)} ESCAPE \'{LIKE_ESCAPE}\''
                    for c in ("url", "slug", "title")
                ) + ")"
            )  # fmt: skip
        if query.tag is not None:
            params.append(query.tag)
            clauses.append(
                f"EXISTS (SELECT 1 FROM link_tags t WHERE t.link_id = l.id AND t.tag = ${len(params)})"
            )
        where = "WHERE " + " AND ".join(clauses) if clauses else ""
        order = "DESC" if descending else "ASC"
        page_params = [*params, query.limit, (query.page - 1) * query.limit]
        async with self._connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            total = await conn.fetchval(f"SELECT count(*) FROM links l {where}", *params)
            rows = await conn.fetch(
                f"{_SELECT_LINK} {where} ORDER BY l.{column} {order}, l.id {order}"
                f" LIMIT ${len(params) + 1} OFFSET ${len(params) + 2}",
                *page_params,
            )
        return LinkPage(items=[_link(r) for r in rows], total=total, page=query.page, limit=query.limit)

    async def update_link(self, slug: str, changes: dict[str, object]) -> Link | None:
        clean = check_changes(changes)
        if not clean:
            return await self.get_link(slug)
        columns = {k: v for k, v in clean.items() if k != "tags"}
        assignments = ", ".join(
            [f"{name} = ${i}" for i, name in enumerate(columns, start=2)] + ["updated_at = now()"]
        )
        async with self._connection() as conn, conn.transaction():
            link_id = await conn.fetchval(
                f"UPDATE links SET {assignments} WHERE slug = $1 RETURNING id", slug, *columns.values()
            )
            if link_id is None:
                return None
            if "tags" in clean:
                await conn.execute("DELETE FROM link_tags WHERE link_id = $1", link_id)
                await conn.execute(_INSERT_TAGS, link_id, list(clean["tags"]))  # type: ignore[call-overload]
            return _link(await conn.fetchrow(f"{_SELECT_LINK} WHERE l.id = $1", link_id))

    async def delete_link(self, slug: str) -> bool:
        # link_tags rows go with it (ON DELETE CASCADE); visits and counter rows have no
        # foreign key (see migrations/postgres/0002_clicks.sql) and are deleted here. A batch
        # being recorded holds FOR KEY SHARE on its links, so the DELETE waits for its commit.
        async with self._connection() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM rollup_state WHERE id = 1 FOR SHARE")  # no rollup meanwhile
            link_id = await conn.fetchval("DELETE FROM links WHERE slug = $1 RETURNING id", slug)
            if link_id is not None:
                await delete_link_clicks(conn, link_id)
        return link_id is not None

    async def consume_click(self, slug: str) -> bool:
        # One statement. An unlimited link matches no row to update, so it is
        # never written (nor locked). For a limited link the UPDATE's WHERE is
        # re-checked on the newest row version after waiting for its lock, so
        # concurrent callers cannot overshoot max_clicks.
        async with self._connection() as conn:
            return await conn.fetchval(
                """
                WITH target AS (SELECT id, max_clicks FROM links WHERE slug = $1),
                bumped AS (
                    UPDATE links SET max_clicks_used = links.max_clicks_used + 1
                    FROM target
                    WHERE links.id = target.id AND target.max_clicks IS NOT NULL
                      AND (links.max_clicks IS NULL OR links.max_clicks_used < links.max_clicks)
                    RETURNING 1
                )
                SELECT EXISTS (SELECT 1 FROM bumped)
                    OR coalesce((SELECT max_clicks IS NULL FROM target), false)
                """,
                slug,
            )

    # API keys ------------------------------------------------------------------

    async def create_api_key(self, key: ApiKey) -> ApiKey:
        async with self._connection() as conn:
            try:
                row = await conn.fetchrow(
                    "INSERT INTO api_keys (id, name, key_hash, scopes, created_at, revoked_at, last_used_at,"
                    " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
                    key.id, key.name, key.key_hash, list(key.scopes), utc(key.created_at),
                    utc_or_none(key.revoked_at), utc_or_none(key.last_used_at), utc_or_none(key.expires_at),
                )  # fmt: skip
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name == "api_keys_pkey":
                    raise Conflict(f"An API key with id '{key.id}' already exists.") from exc
                raise Conflict(f"An active API key named '{key.name}' already exists.") from exc
        return _api_key(row)

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        async with self._connection() as conn:
            row = await conn.fetchrow("SELECT * FROM api_keys WHERE id = $1", key_id)
        return None if row is None else _api_key(row)

    async def list_api_keys(self) -> list[ApiKey]:
        async with self._connection() as conn:
            rows = await conn.fetch("SELECT * FROM api_keys ORDER BY created_at, id")
        return [_api_key(r) for r in rows]

    async def revoke_api_key(self, id_or_name: str) -> ApiKey | None:
        async with self._connection() as conn:
            # An id match wins over a name match.
            row = await conn.fetchrow(
                """
                UPDATE api_keys SET revoked_at = now()
                WHERE id = (
                    SELECT id FROM api_keys WHERE revoked_at IS NULL AND (id = $1 OR name = $1)
                    ORDER BY id = $1 DESC LIMIT 1
                    FOR UPDATE
                ) AND revoked_at IS NULL
                RETURNING *
                """,
                id_or_name,
            )
        return None if row is None else _api_key(row)


def _link(row: asyncpg.Record) -> Link:
    return Link(**{**dict(row.items()), "tags": tuple(row["tags"])})


def _api_key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        key_hash=row["key_hash"],
        scopes=tuple(row["scopes"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
        expires_at=row["expires_at"],
    )


def _masked(dsn: str) -> str:
    try:
        return mask_url_password(dsn)
    except ValueError:
        return "(unparsable database URL)"


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
