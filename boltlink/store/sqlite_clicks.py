"""The ClickStore half of SqliteStore (sqlite.py mixes it in); the SQL runs on the store's worker thread.

record_clicks is sqlite_record.record (one BEGIN IMMEDIATE transaction).
Reads take one snapshot (BEGIN ... COMMIT) for the watermark and the rows.
Housekeeping (rollup, prune) works in short transactions, one day or one
group of links at a time, so the aggregator and the API workers, which
share the database's one write lock, never wait long for it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from boltlink.store import sqlite_db as db
from boltlink.store.clicks import (
    ClickStore,
    GlobalStats,
    Granularity,
    LinkStats,
    LinkTotal,
    Visit,
    VisitPage,
)
from boltlink.store.clicks_common import (
    DAY,
    HOUR,
    breakdown_parts,
    check_limit,
    decode_cursor,
    encode_cursor,
    epoch,
    floor,
    link_stats,
    offset_rows,
    plan,
    rank_links,
    totals,
    unique_visits,
)
from boltlink.store.sqlite_record import VISIT_COLUMNS, record

PRUNE_LINKS_PER_TRANSACTION = 500

_LINK_TABLES = ("visits", "clicks_hourly", "clicks_daily", "breakdown_hourly", "breakdown_daily", "visitors_daily")
_BUCKET = {"daily": "day", "hourly": "hour"}  # the bucket column of the *_daily and *_hourly tables


class SqliteClickStore(ClickStore):
    """Mixed into SqliteStore, which provides _call (run a job on the worker thread)."""

    _call: Callable[..., Any]

    async def record_clicks(self, visits: Sequence[Visit], *, source: str | None = None,
                            offsets: Mapping[str, int] | None = None, staged: asyncio.Event | None = None) -> int:
        batch = unique_visits(visits)
        positions = offset_rows(source, offsets)
        if not batch and not positions:
            if staged is not None:
                staged.set()
            return 0
        on_staged = None
        if staged is not None:
            loop = asyncio.get_running_loop()
            on_staged = lambda: loop.call_soon_threadsafe(staged.set)  # noqa: E731 (called on the store's thread)
        return await self._call(lambda conn: record(conn, batch, positions, on_staged))

    async def consumer_offsets(self, source: str) -> dict[str, int]:
        def job(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute("SELECT name, position FROM consumer_offsets WHERE source = ?", (source,))
            return {name: position for name, position in rows}

        return await self._call(job)

    async def forget_offsets(self, source: str, names: Sequence[str]) -> None:
        if names:
            await self._call(lambda conn: conn.execute(
                "DELETE FROM consumer_offsets WHERE source = ? AND name IN (SELECT value FROM json_each(?))",
                (source, json.dumps(list(names))),
            ))  # fmt: skip

    async def link_stats(self, link_id: int, start: datetime, end: datetime, granularity: Granularity,
                         top: int = 10) -> LinkStats:
        def job(conn: sqlite3.Connection) -> LinkStats:
            with db.read(conn):  # the watermark and the rows from one snapshot
                span = plan(start, end, granularity, watermark(conn))
                rows = []
                for part, table in ((span.daily, "daily"), (span.hours_read, "hourly")):
                    if part is not None:
                        rows += conn.execute(
                            f"SELECT {_BUCKET[table]}, total, humans, bots, visitors FROM clicks_{table}"
                            f" WHERE link_id = ? AND {_BUCKET[table]} >= ? AND {_BUCKET[table]} < ?",
                            (link_id, *part),
                        ).fetchall()
                days = [] if span.rolled is None else conn.execute(
                    "SELECT day, total FROM clicks_daily WHERE link_id = ? AND day >= ? AND day < ?",
                    (link_id, *span.rolled),
                ).fetchall()
                values = []
                for table, low, high, sign in breakdown_parts(span, rows, days):
                    # SQLite sorts every row to group them: most of an hourly view's time (see breakdown_parts).
                    values += conn.execute(
                        f"SELECT dimension, value, sum(count) * ? FROM breakdown_{table}"
                        f" WHERE link_id = ? AND {_BUCKET[table]} >= ? AND {_BUCKET[table]} < ?"
                        " GROUP BY dimension, value",
                        (sign, link_id, low, high),
                    ).fetchall()
            return link_stats(span, rows, values, top)

        return await self._call(job)

    async def list_visits(self, link_id: int, *, limit: int = 50, cursor: str | None = None,
                          start: datetime | None = None, end: datetime | None = None) -> VisitPage:
        check_limit(limit)
        clauses, params = ["link_id = ?"], [link_id]
        if start is not None:
            clauses.append("at >= ?")
            params.append(db.ts(start))
        if end is not None:
            clauses.append("at < ?")
            params.append(db.ts(end))
        if cursor is not None:
            after_at, after_id = decode_cursor(cursor)
            clauses.append("at <= ? AND (at < ? OR event_id > ?)")  # (at desc, event_id asc) order
            params += [db.ts(after_at), db.ts(after_at), after_id]
        sql = (f"SELECT {VISIT_COLUMNS} FROM visits WHERE {' AND '.join(clauses)}"
               " ORDER BY at DESC, event_id LIMIT ?")  # fmt: skip

        def job(conn: sqlite3.Connection) -> VisitPage:
            rows = conn.execute(sql, (*params, limit + 1)).fetchall()
            items = [_visit(row) for row in rows[:limit]]
            more = len(rows) > limit
            return VisitPage(items, encode_cursor(items[-1].at, items[-1].event_id) if more else None)

        return await self._call(job)

    async def global_stats(self, start: datetime, end: datetime, top: int = 10) -> GlobalStats:
        def job(conn: sqlite3.Connection) -> GlobalStats:
            with db.read(conn):
                span = plan(start, end, "day", watermark(conn))
                everything, per_link = [], []
                for part, table, bucket in ((span.daily, "daily", "day"), (span.hourly, "hourly", "hour")):
                    if part is None:
                        continue
                    everything += conn.execute(
                        f"SELECT total, humans, bots, visitors FROM clicks_{table}"
                        f" WHERE link_id = 0 AND {bucket} >= ? AND {bucket} < ?",
                        part,
                    ).fetchall()
                    # Existing links only: link 0 and deleted links have no row in links.
                    per_link += conn.execute(
                        f"SELECT link_id, sum(total), sum(humans), sum(bots) FROM clicks_{table}"
                        f" WHERE link_id IN (SELECT id FROM links) AND {bucket} >= ? AND {bucket} < ?"
                        " GROUP BY link_id",
                        part,
                    ).fetchall()
                sums: dict[int, list[int]] = {}
                for link_id, *counts in per_link:
                    into = sums.setdefault(link_id, [0, 0, 0])
                    for i in range(3):
                        into[i] += counts[i]
                ranked = rank_links(sums, top)
                slugs = dict(conn.execute(
                    "SELECT id, slug FROM links WHERE id IN (SELECT value FROM json_each(?))",
                    (json.dumps([link_id for link_id, _ in ranked]),),
                ).fetchall())  # fmt: skip
                links = conn.execute("SELECT count(*) FROM links").fetchone()[0]
            total, humans, bots, visitors = totals(everything)
            return GlobalStats(total=total, humans=humans, bots=bots, visitors=visitors, links=links, top_links=[
                LinkTotal(link_id, slugs[link_id], *counts) for link_id, counts in ranked
            ])  # fmt: skip

        return await self._call(job)

    async def rollup_daily(self, before: datetime) -> int:
        target = floor(epoch(before), DAY)
        rolled = 0
        while True:  # one day per transaction: the write lock is never held for long
            done = await self._call(lambda conn: rollup_one_day(conn, target))
            if done is None:
                return rolled
            rolled += done

    async def prune(self, *, visits_before: datetime, hourly_before: datetime) -> tuple[int, int]:
        visits_cut = db.ts(visits_before)
        visitors_cut = floor(epoch(visits_before), DAY)  # only days that ended before visits_before

        def links_and_cut(conn: sqlite3.Connection) -> tuple[list[int], int | None]:
            mark = watermark(conn)
            hourly_cut = None if mark is None else min(floor(epoch(hourly_before), HOUR), mark)
            return [0, *(row[0] for row in conn.execute("SELECT id FROM links ORDER BY id"))], hourly_cut

        link_ids, hourly_cut = await self._call(links_and_cut)
        deleted = [0, 0]
        for i in range(0, len(link_ids), PRUNE_LINKS_PER_TRANSACTION):
            group = json.dumps(link_ids[i : i + PRUNE_LINKS_PER_TRANSACTION])

            def job(conn: sqlite3.Connection, group: str = group) -> tuple[int, int]:
                where = "link_id IN (SELECT value FROM json_each(?)) AND"
                with db.write(conn):
                    visits = conn.execute(f"DELETE FROM visits WHERE {where} at < ?", (group, visits_cut)).rowcount
                    conn.execute(f"DELETE FROM visitors_daily WHERE {where} day < ?", (group, visitors_cut))
                    hourly = 0
                    if hourly_cut is not None:
                        for table in ("clicks_hourly", "breakdown_hourly"):
                            hourly += conn.execute(
                                f"DELETE FROM {table} WHERE {where} hour < ?", (group, hourly_cut)
                            ).rowcount
                return visits, hourly

            visits, hourly = await self._call(job)
            deleted[0] += visits
            deleted[1] += hourly
        return deleted[0], deleted[1]


# on the worker thread ------------------------------------------------------------------------


def watermark(conn: sqlite3.Connection) -> int | None:
    return conn.execute("SELECT watermark FROM rollup_state WHERE id = 1").fetchone()[0]


def rollup_one_day(conn: sqlite3.Connection, target: int) -> int | None:
    """Roll the day at the watermark into the daily tables and move the watermark past it.

    Returns the days rolled (0 when only the first watermark was set), None when there is nothing to do.
    """
    with db.write(conn):
        mark = watermark(conn)
        if mark is None:
            # The first rollup starts at the first recorded hour (every visit has an ALL_LINKS row).
            first = conn.execute("SELECT min(hour) FROM clicks_hourly WHERE link_id = 0").fetchone()[0]
            mark = target if first is None else min(floor(first, DAY), target)
            conn.execute("UPDATE rollup_state SET watermark = ? WHERE id = 1", (mark,))
            return 0
        if mark >= target:
            return None
        day = (mark, mark + DAY)
        links = "link_id IN (SELECT 0 UNION ALL SELECT id FROM links) AND hour >= ? AND hour < ?"
        conn.execute(
            "INSERT INTO clicks_daily (link_id, day, total, humans, bots, visitors)"
            " SELECT link_id, ?, sum(total), sum(humans), sum(bots), sum(visitors)"
            f" FROM clicks_hourly WHERE {links} GROUP BY link_id",
            (mark, *day),
        )
        conn.execute(
            "INSERT INTO breakdown_daily (link_id, day, dimension, value, count)"
            f" SELECT link_id, ?, dimension, value, sum(count) FROM breakdown_hourly WHERE {links}"
            " GROUP BY link_id, dimension, value",
            (mark, *day),
        )
        conn.execute("UPDATE rollup_state SET watermark = ? WHERE id = 1", (mark + DAY,))
        return 1


def delete_link_clicks(conn: sqlite3.Connection, link_id: int) -> None:
    """A deleted link's visits and counter rows; the ALL_LINKS rows keep counting its past clicks."""
    for table in _LINK_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE link_id = ?", (link_id,))


def _visit(row: sqlite3.Row) -> Visit:
    data = dict(row)
    data["at"] = db.dt(data["at"])
    data["bot"] = bool(data["bot"])
    return Visit(**data)

