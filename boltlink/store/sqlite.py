"""SqliteStore: the embedded store, standard library sqlite3 on one worker thread.

One ThreadPoolExecutor(max_workers=1) owns the connection, so the event loop
never blocks on disk and only one thread ever touches the connection. Each
job opens and ends its own transaction, so a cancelled await never leaves a
transaction open (the job still runs to its end on the thread).

Several processes (the API workers of a cluster) open the same file: the
database runs in WAL mode, waits up to BUSY_TIMEOUT_MS for a lock, and every
multi-statement write starts with BEGIN IMMEDIATE (sqlite_db.write).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from boltlink.errors import Conflict, SlugTaken, StoreUnavailable
from boltlink.store import sqlite_db as db
from boltlink.store.base import ApiKey, Link, LinkChanges, LinkPage, LinkQuery, LinkStore, MigrationReport, NewLink
from boltlink.store.common import LIKE_ESCAPE, check_changes, check_query, like_pattern, now, unique_tags
from boltlink.store.sqlite_clicks import SqliteClickStore, delete_link_clicks

T = TypeVar("T")

_SEARCHED = ("url", "slug", "title")


class SqliteStore(LinkStore, SqliteClickStore):
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # used on the worker thread only

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
        return await self._call(db.migrate)

    async def _connect(self) -> None:
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="boltlink-sqlite")
        try:
            self._conn = await asyncio.get_running_loop().run_in_executor(executor, db.connect, self.path)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        # Queued behind any job still in flight, so those finish first.
        await asyncio.get_running_loop().run_in_executor(executor, self._close_connection)
        executor.shutdown(wait=False)

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def ping(self) -> None:
        await self._call(lambda conn: conn.execute("SELECT count(*) FROM schema_migrations").fetchone())

    async def links_version(self) -> int:
        return await self._call(_links_version)

    async def link_changes_since(self, version: int) -> LinkChanges:
        def job(conn: sqlite3.Connection) -> LinkChanges:
            if _links_version(conn) == version:  # nearly always: one read, no transaction
                return LinkChanges(version, frozenset())
            with db.read(conn):  # the version and its log from one snapshot
                head = _links_version(conn)
                oldest = conn.execute("SELECT min(version) FROM link_change_log").fetchone()[0]
                if version > head or oldest is None or oldest > version + 1:
                    return LinkChanges(head, None)
                rows = conn.execute("SELECT slug FROM link_change_log WHERE version > ?", (version,))
                return LinkChanges(head, frozenset(row[0] for row in rows))

        return await self._call(job)

    async def _call(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run job(connection) on the worker thread; driver errors come back as boltlink errors."""
        executor = self._executor
        if executor is None:
            raise StoreUnavailable(f"The SQLite store {self.path} is not open.")
        try:
            future = asyncio.get_running_loop().run_in_executor(executor, self._run, job)
        except RuntimeError as exc:  # shut down by a concurrent close()
            raise StoreUnavailable(f"The SQLite store {self.path} is closed.") from exc
        return await future

    def _run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise StoreUnavailable(f"The SQLite store {self.path} is closed.")
        try:
            return job(conn)
        except sqlite3.Error as exc:
            raise db.translate(exc, self.path) from exc

    # links -----------------------------------------------------------------

    async def create_link(self, new: NewLink) -> Link:
        stamp = db.ts(now())
        values = (new.slug, new.url, new.title, stamp, stamp, db.ts_or_none(new.expires_at),
                  new.max_clicks, new.redirect_status, int(new.forward_query), int(new.do_not_track))  # fmt: skip

        def job(conn: sqlite3.Connection) -> Link:
            try:
                with db.write(conn):
                    link_id = conn.execute(
                        "INSERT INTO links (slug, url, title, created_at, updated_at, expires_at,"
                        " max_clicks, redirect_status, forward_query, do_not_track)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                        " RETURNING id",
                        values,
                    ).fetchone()[0]
                    db.insert_tags(conn, link_id, unique_tags(new.tags))
                    return db.fetch_links(conn, "WHERE id = ?", (link_id,))[0]
            except sqlite3.IntegrityError as exc:
                if "links.slug" in str(exc):
                    raise SlugTaken(new.slug) from exc
                raise

        return await self._call(job)

    async def get_link(self, slug: str) -> Link | None:
        def job(conn: sqlite3.Connection) -> Link | None:
            with db.read(conn):
                found = db.fetch_links(conn, "WHERE slug = ?", (slug,))
            return found[0] if found else None

        return await self._call(job)

    async def popular_links(self, limit: int) -> list[Link]:
        def job(conn: sqlite3.Connection) -> list[Link]:
            with db.read(conn):  # one snapshot for the tags and the links
                return db.stream_links(
                    conn,
                    "WHERE max_clicks IS NULL AND (expires_at IS NULL OR expires_at > ?)"
                    " ORDER BY clicks_total DESC, id DESC LIMIT ?",  # links_clicks_total_idx, backwards
                    (db.ts(now()), limit),
                )

        return await self._call(job)

    async def list_links(self, query: LinkQuery) -> LinkPage:
        column, descending = check_query(query)
        where, params = _filters(query)
        order = "DESC" if descending else "ASC"
        tail = f"{where} ORDER BY {column} {order}, id {order} LIMIT ? OFFSET ?"
        page_params = (*params, query.limit, (query.page - 1) * query.limit)

        def job(conn: sqlite3.Connection) -> LinkPage:
            with db.read(conn):  # one snapshot for the count and the page
                total = conn.execute(f"SELECT count(*) FROM links {where}", params).fetchone()[0]
                items = db.fetch_links(conn, tail, page_params)
            return LinkPage(items=items, total=total, page=query.page, limit=query.limit)

        return await self._call(job)

    async def update_link(self, slug: str, changes: dict[str, object]) -> Link | None:
        clean = check_changes(changes)
        if not clean:
            return await self.get_link(slug)
        columns = {name: db.to_db(value) for name, value in clean.items() if name != "tags"}
        columns["updated_at"] = db.ts(now())
        assignments = ", ".join(f"{name} = ?" for name in columns)

        def job(conn: sqlite3.Connection) -> Link | None:
            with db.write(conn):
                row = conn.execute(
                    f"UPDATE links SET {assignments} WHERE slug = ? RETURNING id", (*columns.values(), slug)
                ).fetchone()
                if row is None:
                    return None
                if "tags" in clean:
                    conn.execute("DELETE FROM link_tags WHERE link_id = ?", (row[0],))
                    db.insert_tags(conn, row[0], clean["tags"])  # type: ignore[arg-type]
                return db.fetch_links(conn, "WHERE id = ?", (row[0],))[0]

        return await self._call(job)

    async def delete_link(self, slug: str) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            # link_tags rows go with it (ON DELETE CASCADE, foreign_keys is on); visits and
            # counter rows have no foreign key (see migrations/sqlite/0002_clicks.sql).
            with db.write(conn):
                row = conn.execute("DELETE FROM links WHERE slug = ? RETURNING id", (slug,)).fetchone()
                if row is not None:
                    delete_link_clicks(conn, row[0])
            return row is not None

        return await self._call(job)

    async def consume_click(self, slug: str) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            # Read first so an unlimited link (the common case) never takes the
            # write lock all worker processes queue on. The read decides nothing
            # for a limited link: the one guarded UPDATE does, atomically.
            row = conn.execute("SELECT max_clicks FROM links WHERE slug = ?", (slug,)).fetchone()
            if row is None:
                return False
            if row[0] is None:
                return True
            cursor = conn.execute(
                "UPDATE links SET max_clicks_used = max_clicks_used + 1"
                " WHERE slug = ? AND (max_clicks IS NULL OR max_clicks_used < max_clicks)",
                (slug,),
            )
            return cursor.rowcount > 0

        return await self._call(job)

    # API keys ------------------------------------------------------------------

    async def create_api_key(self, key: ApiKey) -> ApiKey:
        values = (key.id, key.name, key.key_hash, json.dumps(list(key.scopes)), db.ts(key.created_at),
                  db.ts_or_none(key.revoked_at), db.ts_or_none(key.last_used_at),
                  db.ts_or_none(key.expires_at))  # fmt: skip

        def job(conn: sqlite3.Connection) -> ApiKey:
            try:
                row = conn.execute(
                    "INSERT INTO api_keys (id, name, key_hash, scopes, created_at, revoked_at,"
                    " last_used_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                    values,
                ).fetchone()
            except sqlite3.IntegrityError as exc:
                if "api_keys.id" in str(exc):
                    raise Conflict(f"An API key with id '{key.id}' already exists.") from exc
                raise Conflict(f"An active API key named '{key.name}' already exists.") from exc
            return db.api_key(row)

        return await self._call(job)

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        def job(conn: sqlite3.Connection) -> ApiKey | None:
            row = conn.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
            return None if row is None else db.api_key(row)

        return await self._call(job)

    async def list_api_keys(self) -> list[ApiKey]:
        def job(conn: sqlite3.Connection) -> list[ApiKey]:
            return [db.api_key(r) for r in conn.execute("SELECT * FROM api_keys ORDER BY created_at, id")]

        return await self._call(job)

    async def revoke_api_key(self, id_or_name: str) -> ApiKey | None:
        stamp = db.ts(now())

        def job(conn: sqlite3.Connection) -> ApiKey | None:
            with db.write(conn):
                for column in ("id", "name"):  # an id match wins over a name match
                    row = conn.execute(
                        f"UPDATE api_keys SET revoked_at = ? WHERE {column} = ? AND revoked_at IS NULL"
                        " RETURNING *",
                        (stamp, id_or_name),
                    ).fetchone()
                    if row is not None:
                        return db.api_key(row)
            return None

        return await self._call(job)


def _links_version(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT version FROM link_changes").fetchone()[0]


def _filters(query: LinkQuery) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.q:
        # SQLite's LIKE folds ASCII letters only; lower both sides in Python
        # when the search has other letters (É, Ö...), as PostgreSQL would.
        if query.q.isascii():
            columns, pattern = list(_SEARCHED), like_pattern(query.q)
        else:
            columns, pattern = [f"unicode_lower({c})" for c in _SEARCHED], like_pattern(query.q.lower())
        clauses.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '{LIKE_ESCAPE}'" for c in columns) + ")")
        params.extend([pattern] * len(columns))
    if query.tag is not None:
        clauses.append("EXISTS (SELECT 1 FROM link_tags t WHERE t.link_id = links.id AND t.tag = ?)")
        params.append(query.tag)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)
