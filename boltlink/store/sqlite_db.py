"""The SQLite side of SqliteStore: connection, transactions, migrations, rows.

Everything here runs on the store's one worker thread (see sqlite.py).
Times are stored as fixed-width UTC ISO-8601 text with microseconds
("2025-01-31T12:00:00.123456+00:00"), so text order is time order.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from boltlink.errors import BoltlinkError, MigrationError, StoreError, StoreUnavailable
from boltlink.store.base import ApiKey, Link, MigrationReport
from boltlink.store.common import now, utc
from boltlink.store.schema import Migration, latest, load_migrations, pending

BUSY_TIMEOUT_MS = 5000
# Pages of a new database file (an existing one keeps its own). A batch of clicks touches each of its
# links' rows in visits' link index, the hourly counters and visitors_daily: a page per link and table
# whatever the page size, written to the WAL at every commit. With 16 KiB pages a B-tree has fewer
# levels and pages to handle for the same rows: the aggregator used ~15% less CPU per click than with
# SQLite's default 4 KiB under a steady 3,000 redirects/s to 10,000 links (64 KiB: no better).
PAGE_SIZE = 16384
WAL_CHECKPOINT_BYTES = 64 * 1024 * 1024  # of WAL between checkpoints

# Primary result codes meaning "the database cannot be used right now", as opposed to a bug.
UNAVAILABLE_CODES = frozenset(
    {
        "SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_FULL",
        "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_NOTADB", "SQLITE_CORRUPT", "SQLITE_PROTOCOL",
    }
)  # fmt: skip

LINK_COLUMNS = (
    "id, slug, url, title, created_at, updated_at, expires_at, max_clicks, max_clicks_used,"
    " redirect_status, forward_query, do_not_track, clicks_total, clicks_humans, clicks_bots"
)


def connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the data dir: private (cluster/datadir.py)
    except OSError as exc:
        raise StoreUnavailable(
            f"Cannot create the directory for the SQLite database {path}: {exc.strerror or exc}."
        ) from exc
    try:
        # isolation_level=None: no implicit transactions; each job says BEGIN itself.
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except sqlite3.Error as exc:
        raise translate(exc, path) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # before WAL mode, which fixes it
        _use_wal(conn, path)
        # NORMAL is safe with WAL: a power loss may drop the last commits, never corrupt.
        conn.execute("PRAGMA synchronous = NORMAL")
        # The aggregator dirties thousands of pages per batch (sqlite_record.py). With the default
        # (a checkpoint every 1,000 WAL pages) every batch paid for a checkpoint that rewrote the
        # same hot pages; every connection gets the same threshold so that an API worker's small
        # write does not inherit a big checkpoint. Measured: COMMIT time -35%, ~1.25x events/s.
        # The WAL file is cut back to journal_size_limit after a checkpoint that found it longer.
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]  # the file's own: set when it was made
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_BYTES // page_size}")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_CHECKPOINT_BYTES * 2}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.create_function("unicode_lower", 1, _unicode_lower, deterministic=True)
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, path) from exc
    except BaseException:
        conn.close()
        raise
    conn.row_factory = sqlite3.Row
    return conn


def _use_wal(conn: sqlite3.Connection, path: Path) -> None:
    # Switching a fresh file to WAL needs an exclusive lock, and SQLite may
    # answer SQLITE_BUSY without calling the busy handler when several
    # processes start at once: retry until the busy timeout.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as exc:
            if primary_code(exc) not in ("SQLITE_BUSY", "SQLITE_LOCKED") or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    if str(mode).lower() != "wal":
        raise StoreUnavailable(f"The SQLite database {path} cannot use WAL mode (it stays in {mode!r} mode).")


@contextlib.contextmanager
def write(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction; IMMEDIATE so it waits for the lock up front instead of failing later."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def read(conn: sqlite3.Connection) -> Iterator[None]:
    """One snapshot for several SELECTs."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("COMMIT")


# migrations ----------------------------------------------------------------------


def migrate(conn: sqlite3.Connection) -> MigrationReport:
    migrations = load_migrations("sqlite")
    # BEGIN IMMEDIATE takes the write lock before schema_migrations is read, so
    # a second process starting at the same moment waits, then sees our rows.
    with write(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        todo = pending(migrations, done)
        for migration in todo:
            _apply(conn, migration)
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (migration.version, ts(now())),
            )
    applied = [m.version for m in todo]
    return MigrationReport(applied=applied, current=latest(migrations, done | set(applied)))


def _apply(conn: sqlite3.Connection, migration: Migration) -> None:
    for statement in split_statements(migration.sql):
        try:
            conn.execute(statement)
        except sqlite3.Error as exc:
            if primary_code(exc) in UNAVAILABLE_CODES:
                raise
            raise MigrationError(
                f"Migration sqlite/{migration.filename} failed, so no pending migration was applied: {exc}"
            ) from exc


def split_statements(sql: str) -> Iterator[str]:
    """The statements of a script; executescript() would COMMIT the migration transaction."""
    start = 0
    for end, char in enumerate(sql):
        # complete_statement knows about strings, comments and trigger bodies.
        if char == ";" and sqlite3.complete_statement(sql[start : end + 1]):
            yield sql[start : end + 1].strip()
            start = end + 1
    rest = [line for line in sql[start:].splitlines() if line.strip() and not line.strip().startswith("--")]
    if rest:
        yield "\n".join(rest)


# rows ------------------------------------------------------------------------------


def fetch_links(conn: sqlite3.Connection, tail: str, params: Sequence[Any]) -> list[Link]:
    """Links selected by `SELECT ... FROM links <tail>`, with their tags in the order given."""
    rows = conn.execute(f"SELECT {LINK_COLUMNS} FROM links {tail}", tuple(params)).fetchall()
    tags: dict[int, list[str]] = {row["id"]: [] for row in rows}
    if tags:
        # json_each: one parameter however long the page is.
        for link_id, tag in conn.execute(
            "SELECT link_id, tag FROM link_tags WHERE link_id IN (SELECT value FROM json_each(?))"
            " ORDER BY link_id, position",
            (json.dumps(list(tags)),),
        ):
            tags[link_id].append(tag)
    return [_link(row, tags[row["id"]]) for row in rows]


def stream_links(conn: sqlite3.Connection, tail: str, params: Sequence[Any]) -> list[Link]:
    """fetch_links for thousands of links (a link cache's warm-up), in a read transaction.

    The tags come first, and the links are built as their rows arrive: no list
    of every row beside the links, which would stay in the process's memory as
    fragmentation long after it is freed.
    """
    tags: dict[int, list[str]] = {}
    for link_id, tag in conn.execute(
        f"SELECT link_id, tag FROM link_tags WHERE link_id IN (SELECT id FROM links {tail})"
        " ORDER BY link_id, position",
        tuple(params),
    ):
        tags.setdefault(link_id, []).append(tag)
    rows = conn.execute(f"SELECT {LINK_COLUMNS} FROM links {tail}", tuple(params))
    return [_link(row, tags.get(row["id"], ())) for row in rows]


def _link(row: sqlite3.Row, tags: Sequence[str]) -> Link:
    data = dict(row)
    for name in ("created_at", "updated_at", "expires_at"):
        data[name] = dt_or_none(data[name])
    data["forward_query"] = bool(data["forward_query"])
    data["do_not_track"] = bool(data["do_not_track"])
    return Link(**data, tags=tuple(tags))


def insert_tags(conn: sqlite3.Connection, link_id: int, tags: Sequence[str]) -> None:
    conn.executemany(
        "INSERT INTO link_tags (link_id, tag, position) VALUES (?, ?, ?)",
        [(link_id, tag, position) for position, tag in enumerate(tags)],
    )


def api_key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        key_hash=row["key_hash"],
        scopes=tuple(json.loads(row["scopes"])),
        created_at=dt(row["created_at"]),
        revoked_at=dt_or_none(row["revoked_at"]),
        last_used_at=dt_or_none(row["last_used_at"]),
        expires_at=dt_or_none(row["expires_at"]),
    )


def to_db(value: object) -> object:
    if isinstance(value, datetime):
        return ts(value)
    if isinstance(value, bool):
        return int(value)
    return value


def ts(value: datetime) -> str:
    return utc(value).isoformat(timespec="microseconds")


def ts_or_none(value: datetime | None) -> str | None:
    return None if value is None else ts(value)


def dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def dt_or_none(text: str | None) -> datetime | None:
    return None if text is None else dt(text)


def _unicode_lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


# errors ----------------------------------------------------------------------------


def primary_code(exc: sqlite3.Error) -> str:
    """SQLITE_BUSY for SQLITE_BUSY_SNAPSHOT and the like."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    return "_".join(name.split("_")[:2])


def translate(exc: sqlite3.Error, path: Path) -> BoltlinkError:
    if primary_code(exc) in UNAVAILABLE_CODES:
        return StoreUnavailable(f"The SQLite database {path} is unavailable: {exc}.")
    return StoreError(f"SQLite error on {path}: {exc}.")
