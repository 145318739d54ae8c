"""The ClickStore half of PostgresStore (postgres.py mixes it in); record_clicks is postgres_record.record.

Reads run in one REPEATABLE READ READ ONLY transaction (the watermark and
the rows from one snapshot). Housekeeping takes one day (rollup) or one
group of links (prune) per transaction, so a recorder waiting for
rollup_state never waits long; both go link by link through the primary
keys, so only the rows concerned are read however long the tables grow.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from boltlink.errors import StoreError
from boltlink.store.clicks import ClickStore, GlobalStats, Granularity, LinkStats, LinkTotal, Visit, VisitPage
from boltlink.store.clicks_common import (
    DAY,
    HOUR,
    breakdown_parts,
    check_limit,
    decode_cursor,
    encode_cursor,
    epoch,
    floor,
    instant,
    link_stats,
    offset_rows,
    plan,
    unique_visits,
)
from boltlink.store.common import utc
from boltlink.store.postgres_record import VISIT_COLUMNS, record, watermark, without_nul

ATTEMPTS = 3
PRUNE_LINKS_PER_TRANSACTION = 1000
_RETRY = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_NUL = (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)  # text with \x00
_EPOCH_DAY = date(1970, 1, 1)

_LINK_TABLES = ("visits", "clicks_hourly", "clicks_daily", "breakdown_hourly", "breakdown_daily", "visitors_daily")


def to_date(seconds: int) -> date:
    return _EPOCH_DAY + timedelta(days=seconds // DAY)


# The bucket column of the *_daily and *_hourly tables, and its start in unix seconds.
_BUCKET = {
    "daily": ("day", "(day - DATE '1970-01-01')::bigint * 86400"),
    "hourly": ("hour", "extract(epoch FROM hour)::bigint"),
}


def _bounds(table: str, low: int, high: int) -> tuple[Any, Any]:
    """[low, high) unix seconds as the bucket column's type (date or timestamptz)."""
    convert: Callable[[int], Any] = to_date if table == "daily" else instant
    return convert(low), convert(high)


class PostgresClickStore(ClickStore):
    """Mixed into PostgresStore, which provides _connection()."""

    _connection: Callable[[], contextlib.AbstractAsyncContextManager[asyncpg.Connection]]

    @contextlib.asynccontextmanager
    async def _transaction(self, **options: Any) -> AsyncIterator[asyncpg.Connection]:
        async with self._connection() as conn, conn.transaction(**options):
            yield conn

    async def record_clicks(self, visits: Sequence[Visit], *, source: str | None = None,
                            offsets: Mapping[str, int] | None = None, staged: asyncio.Event | None = None) -> int:
        if staged is not None:  # the work is PostgreSQL's, in its own process
            staged.set()
        batch = sorted(unique_visits(visits), key=lambda v: v.event_id)
        positions = offset_rows(source, offsets)
        if not batch and not positions:
            return 0
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self._transaction() as conn:
                    return await record(conn, batch, positions)
            except StoreError as exc:
                if attempt == ATTEMPTS:
                    raise
                if isinstance(exc.__cause__, _NUL):
                    batch = [without_nul(v) for v in batch]  # rare: checked only when the server refuses
                elif not isinstance(exc.__cause__, _RETRY):
                    raise
        raise AssertionError("unreachable")

    async def consumer_offsets(self, source: str) -> dict[str, int]:
        async with self._connection() as conn:
            rows = await conn.fetch("SELECT name, position FROM consumer_offsets WHERE source = $1", source)
        return {row["name"]: row["position"] for row in rows}

    async def forget_offsets(self, source: str, names: Sequence[str]) -> None:
        if names:
            async with self._connection() as conn:
                await conn.execute(
                    "DELETE FROM consumer_offsets WHERE source = $1 AND name = ANY($2::text[])", source, list(names)
                )

    async def link_stats(self, link_id: int, start: datetime, end: datetime, granularity: Granularity,
                         top: int = 10) -> LinkStats:
        rows: list[Any] = []
        values: list[Any] = []
        async with self._transaction(isolation="repeatable_read", readonly=True) as conn:
            span = plan(start, end, granularity, await watermark(conn))
            for part, table in ((span.daily, "daily"), (span.hours_read, "hourly")):
                if part is not None:
                    column, seconds = _BUCKET[table]
                    rows += await conn.fetch(
                        f"SELECT {seconds}, total, humans, bots, visitors FROM clicks_{table}"
                        f" WHERE link_id = $1 AND {column} >= $2 AND {column} < $3",
                        link_id, *_bounds(table, *part),
                    )  # fmt: skip
            days = [] if span.rolled is None else await conn.fetch(
                f"SELECT {_BUCKET['daily'][1]}, total FROM clicks_daily WHERE link_id = $1 AND day >= $2 AND day < $3",
                link_id, *_bounds("daily", *span.rolled),
            )  # fmt: skip
            for table, low, high, sign in breakdown_parts(span, rows, days):
                column = _BUCKET[table][0]
                values += await conn.fetch(
                    f"SELECT dimension, value, sum(count)::bigint * $4 FROM breakdown_{table}"
                    f" WHERE link_id = $1 AND {column} >= $2 AND {column} < $3 GROUP BY dimension, value",
                    link_id, *_bounds(table, low, high), sign,
                )  # fmt: skip
        return link_stats(span, rows, values, top)

    async def list_visits(self, link_id: int, *, limit: int = 50, cursor: str | None = None,
                          start: datetime | None = None, end: datetime | None = None) -> VisitPage:
        check_limit(limit)
        clauses, params = ["link_id = $1"], [link_id]
        if start is not None:
            params.append(utc(start))
            clauses.append(f"at >= ${len(params)}")
        if end is not None:
            params.append(utc(end))
            clauses.append(f"at < ${len(params)}")
        if cursor is not None:
            after_at, after_id = decode_cursor(cursor)
            params += [after_at, after_id]
            at, event_id = f"${len(params) - 1}", f"${len(params)}"
            clauses.append(f"at <= {at} AND (at < {at} OR event_id > {event_id})")  # (at desc, event_id asc)
        params.append(limit + 1)
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT {VISIT_COLUMNS} FROM visits WHERE {' AND '.join(clauses)}"
                f" ORDER BY at DESC, event_id LIMIT ${len(params)}",
                *params,
            )
        items = [Visit(**dict(row.items())) for row in rows[:limit]]
        more = len(rows) > limit
        return VisitPage(items, encode_cursor(items[-1].at, items[-1].event_id) if more else None)

    async def global_stats(self, start: datetime, end: datetime, top: int = 10) -> GlobalStats:
        async with self._transaction(isolation="repeatable_read", readonly=True) as conn:
            span = plan(start, end, "day", await watermark(conn))
            # An empty part becomes an empty range, so both queries keep one shape.
            days = [to_date(s) for s in span.daily or (0, 0)]
            hours = [instant(s) for s in span.hourly or (0, 0)]
            row = await conn.fetchrow(
                """
                SELECT coalesce(sum(total), 0)::bigint, coalesce(sum(humans), 0)::bigint,
                       coalesce(sum(bots), 0)::bigint, coalesce(sum(visitors), 0)::bigint
                FROM (SELECT total, humans, bots, visitors FROM clicks_daily
                      WHERE link_id = 0 AND day >= $1 AND day < $2
                      UNION ALL
                      SELECT total, humans, bots, visitors FROM clicks_hourly
                      WHERE link_id = 0 AND hour >= $3 AND hour < $4) AS everything
                """,
                *days, *hours,
            )  # fmt: skip
            ranked = await conn.fetch(
                """
                SELECT p.link_id, l.slug, sum(p.total)::bigint AS total, sum(p.humans)::bigint,
                       sum(p.bots)::bigint
                FROM (SELECT link_id, total, humans, bots FROM clicks_daily
                      WHERE day >= $1 AND day < $2 AND link_id <> 0
                      UNION ALL
                      SELECT link_id, total, humans, bots FROM clicks_hourly
                      WHERE hour >= $3 AND hour < $4 AND link_id <> 0) AS p
                JOIN links l ON l.id = p.link_id  -- deleted links (and ALL_LINKS) have no row
                GROUP BY p.link_id, l.slug
                HAVING sum(p.total) > 0
                ORDER BY total DESC, p.link_id
                LIMIT $5
                """,
                *days, *hours, max(top, 0),
            )  # fmt: skip
            links = await conn.fetchval("SELECT count(*) FROM links")
        return GlobalStats(*row, links=links, top_links=[LinkTotal(*r) for r in ranked])

    async def rollup_daily(self, before: datetime) -> int:
        target = floor(epoch(before), DAY)
        rolled = 0
        while True:  # one day per transaction: recorders wait on rollup_state only briefly
            async with self._transaction() as conn:
                done = await _rollup_one_day(conn, target)
            if done is None:
                return rolled
            rolled += done

    async def prune(self, *, visits_before: datetime, hourly_before: datetime) -> tuple[int, int]:
        async with self._connection() as conn:
            mark = await watermark(conn)
            link_ids = [0, *(r[0] for r in await conn.fetch("SELECT id FROM links ORDER BY id"))]
        visitors_cut = to_date(floor(epoch(visits_before), DAY))  # only days that ended before visits_before
        hourly_cut = None if mark is None else instant(min(floor(epoch(hourly_before), HOUR), mark))
        visits = hourly = 0
        for i in range(0, len(link_ids), PRUNE_LINKS_PER_TRANSACTION):
            group = link_ids[i : i + PRUNE_LINKS_PER_TRANSACTION]
            async with self._transaction() as conn:
                visits += _count(await conn.execute(
                    "DELETE FROM visits WHERE link_id = ANY($1::bigint[]) AND at < $2", group, utc(visits_before)
                ))  # fmt: skip
                await conn.execute(
                    "DELETE FROM visitors_daily WHERE link_id = ANY($1::bigint[]) AND day < $2", group, visitors_cut
                )
                if hourly_cut is not None:
                    for table in ("clicks_hourly", "breakdown_hourly"):
                        hourly += _count(await conn.execute(
                            f"DELETE FROM {table} WHERE link_id = ANY($1::bigint[]) AND hour < $2", group, hourly_cut
                        ))  # fmt: skip
        return visits, hourly


async def _rollup_one_day(conn: asyncpg.Connection, target: int) -> int | None:
    """Roll the day at the watermark into the daily tables (see sqlite_clicks.rollup_one_day)."""
    mark = await watermark(conn, "FOR UPDATE")
    if mark is None:
        first = await conn.fetchval("SELECT min(hour) FROM clicks_hourly WHERE link_id = 0")
        mark = target if first is None else min(floor(epoch(first), DAY), target)
        await conn.execute("UPDATE rollup_state SET watermark = $1 WHERE id = 1", to_date(mark))
        return 0
    if mark >= target:
        return None
    # Link by link through the primary keys: only this day's rows are read, however long the tables.
    link_ids = [0, *(r[0] for r in await conn.fetch("SELECT id FROM links ORDER BY id"))]
    day = (to_date(mark), link_ids, instant(mark), instant(mark + DAY))
    await conn.execute(
        "INSERT INTO clicks_daily (link_id, day, total, humans, bots, visitors)"
        " SELECT link_id, $1, sum(total), sum(humans), sum(bots), sum(visitors) FROM clicks_hourly"
        " WHERE link_id = ANY($2::bigint[]) AND hour >= $3 AND hour < $4 GROUP BY link_id",
        *day,
    )
    await conn.execute(
        "INSERT INTO breakdown_daily (link_id, day, dimension, value, count)"
        " SELECT link_id, $1, dimension, value, sum(count) FROM breakdown_hourly"
        " WHERE link_id = ANY($2::bigint[]) AND hour >= $3 AND hour < $4 GROUP BY link_id, dimension, value",
        *day,
    )
    await conn.execute("UPDATE rollup_state SET watermark = $1 WHERE id = 1", to_date(mark + DAY))
    return 1


async def delete_link_clicks(conn: asyncpg.Connection, link_id: int) -> None:
    """A deleted link's visits and counter rows; the ALL_LINKS rows keep counting its past clicks.

    Call in the deleting transaction after locking rollup_state FOR SHARE, so that
    no rollup copies the link's hourly rows into the daily tables behind our back.
    """
    for table in _LINK_TABLES:
        await conn.execute(f"DELETE FROM {table} WHERE link_id = $1", link_id)


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])
