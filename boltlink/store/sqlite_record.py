"""SqliteStore.record_clicks: a batch of visits into visits and the counter tables, in one transaction.

A batch of 2,000 visits over 1,000 links makes ~9,500 breakdown rows and
~4,000 visitor keys. Binding a row from Python costs about as much as the
B-tree work for it, so Python binds each visit once and SQLite does the
grouping itself (measured on the 2-core machine, 200,000 visits in batches
of 2,000: ~34,000 visits/s, against ~28,000 when grouping in Python and
upserting with executemany):

    1. the links that exist                          one json_each() query
    2. the visits into temp.visit_stage              one executemany, into a table with no index
    3. INSERT OR IGNORE them into visits              one statement; the new ones get rowids
                                                     above the largest before (we hold the write lock)
    4. copy the new visits, with their hour, into temp.click_batch
    5. every counter: INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE from click_batch
    6. the consumer offsets, last

Step 2 is the only one that runs Python per row (binding it), under the GIL; the
B-tree work of the visits and their two indexes is step 3's, which runs without
it, beside the aggregator's next batch (aggregator.py). Alternating runs of
scripts/bench_aggregator.py: ~8% less aggregator CPU than executemany straight
into visits.

The hour comes from the text timestamp cut to the second: date functions
round a fraction, which could move 12:59:59.9 into the next hour. (Needs
SQLite 3.35 for RETURNING, like the rest of the store, and 3.33 for UPDATE
... FROM.)
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

from boltlink.store import sqlite_db as db
from boltlink.store.clicks import DIMENSIONS, DIRECT, UNKNOWN, Visit

# The aggregator's connection keeps the hot pages of the counter tables in memory (KiB; per connection).
CACHE_KIB = 65536

VISIT_COLUMNS = (
    "event_id, link_id, at, referrer, referrer_host, user_agent, browser, os, device, bot, ip, country, visitor"
)
# The batch as bound from Python (temp.visit_stage), then into visits in one statement: see step 2 above.
_STAGE_VISIT = f"INSERT INTO temp.visit_stage ({VISIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_VISITS = f"INSERT OR IGNORE INTO main.visits ({VISIT_COLUMNS}) SELECT {VISIT_COLUMNS} FROM temp.visit_stage"

_TEMP_TABLES = (
    # The batch's visits as bound, before INSERT OR IGNORE into visits; emptied after every batch.
    "CREATE TEMP TABLE IF NOT EXISTS visit_stage (event_id, link_id, at, referrer, referrer_host, user_agent,"
    " browser, os, device, bot, ip, country, visitor)",
    # The visits of this batch that were new, with their buckets; emptied after every batch.
    "CREATE TEMP TABLE IF NOT EXISTS click_batch (link_id INTEGER, hour INTEGER, day INTEGER, bot INTEGER,"
    " referrer TEXT, browser TEXT, os TEXT, device TEXT, country TEXT, visitor TEXT)",
    # The (link, day, visitor) keys seen for the first time, and the hour they were first seen in.
    "CREATE TEMP TABLE IF NOT EXISTS click_visitors (link_id INTEGER, day INTEGER, visitor TEXT, hour INTEGER)",
)

_FILL_BATCH = (
    "INSERT INTO temp.click_batch (link_id, hour, day, bot, referrer, browser, os, device, country, visitor)"
    " SELECT link_id, h, h - h % 86400, bot, referrer_host, browser, os, device, country, visitor"
    " FROM (SELECT *, CAST(strftime('%s', substr(at, 1, 19)) AS INTEGER) / 3600 * 3600 AS h"
    "       FROM main.visits WHERE id > ?)"
)

# Keys not yet in visitors_daily, for each link and for ALL_LINKS (0).
_NEW_VISITORS = """
INSERT INTO temp.click_visitors (link_id, day, visitor, hour)
SELECT c.link_id, c.day, c.visitor, c.hour FROM (
    SELECT link_id, day, visitor, min(hour) AS hour FROM temp.click_batch GROUP BY link_id, day, visitor
    UNION ALL
    SELECT 0, day, visitor, min(hour) FROM temp.click_batch GROUP BY day, visitor
) AS c
WHERE NOT EXISTS (
    SELECT 1 FROM main.visitors_daily v WHERE v.link_id = c.link_id AND v.day = c.day AND v.visitor = c.visitor
)
"""


def _add_counts(table: str, bucket: str, where: str) -> str:
    # "WHERE true" before ON CONFLICT: SQLite's documented fix for the upsert parsing ambiguity.
    return f"""
INSERT INTO main.{table} (link_id, {bucket}, total, humans, bots)
SELECT * FROM (
    SELECT link_id, {bucket}, count(*), count(*) - sum(bot), sum(bot) FROM temp.click_batch {where}
    GROUP BY link_id, {bucket}
    UNION ALL
    SELECT 0, {bucket}, count(*), count(*) - sum(bot), sum(bot) FROM temp.click_batch {where} GROUP BY {bucket}
) WHERE true
ON CONFLICT (link_id, {bucket}) DO UPDATE SET total = total + excluded.total,
    humans = humans + excluded.humans, bots = bots + excluded.bots
"""


def _add_visitors(table: str, bucket: str, where: str) -> str:
    day = "hour - hour % 86400" if bucket == "day" else "hour"
    return f"""
INSERT INTO main.{table} (link_id, {bucket}, visitors)
SELECT link_id, {day}, count(*) FROM temp.click_visitors {where} GROUP BY link_id, {day} ORDER BY 1, 2
ON CONFLICT (link_id, {bucket}) DO UPDATE SET visitors = visitors + excluded.visitors
"""


def _add_breakdown(table: str, bucket: str, where: str) -> str:
    parts = []
    for dim in DIMENSIONS:
        column, missing = ("referrer", DIRECT) if dim == "referrer" else (dim, UNKNOWN)
        parts.append(
            f"SELECT link_id, {bucket}, '{dim}', coalesce(nullif({column}, ''), '{missing}'), count(*)"
            f" FROM temp.click_batch {where} GROUP BY 1, 2, 4"
        )
    union = "\n    UNION ALL\n    ".join(parts)
    return f"""
INSERT INTO main.{table} (link_id, {bucket}, dimension, value, count)
SELECT * FROM (
    {union}
) WHERE true
ON CONFLICT (link_id, {bucket}, dimension, value) DO UPDATE SET count = count + excluded.count
"""


_HOURLY = (_add_counts("clicks_hourly", "hour", ""), _add_visitors("clicks_hourly", "hour", ""),
           _add_breakdown("breakdown_hourly", "hour", ""))  # fmt: skip
# Late visits for days already rolled up count in the daily tables too (reads use those before the watermark).
_LATE = "WHERE hour < :watermark"
_DAILY = (_add_counts("clicks_daily", "day", _LATE), _add_visitors("clicks_daily", "day", _LATE),
          _add_breakdown("breakdown_daily", "day", _LATE))  # fmt: skip

_ADD_TO_LINKS = """
UPDATE main.links SET clicks_total = clicks_total + n.total, clicks_humans = clicks_humans + n.humans,
    clicks_bots = clicks_bots + n.bots
FROM (SELECT link_id, count(*) AS total, count(*) - sum(bot) AS humans, sum(bot) AS bots
      FROM temp.click_batch GROUP BY link_id) AS n
WHERE links.id = n.link_id
"""

_STORE_OFFSETS = (
    "INSERT INTO main.consumer_offsets (source, name, position) VALUES (?, ?, ?)"
    " ON CONFLICT (source, name) DO UPDATE SET position = excluded.position"
)


def record(conn: sqlite3.Connection, batch: list[Visit], positions: list[tuple[str, str, int]],
           staged: Callable[[], object] | None = None) -> int:
    """Record the batch (event ids unique within it) and store the offsets; the number of new visits.

    staged() is called once the visits are staged: executemany() binds every row under the GIL,
    which it must take back from the event loop's thread after each one, so while that thread works
    the insert crawls. Everything after it is one statement at a time, run without the GIL.
    """
    _prepare(conn)
    with db.write(conn):
        before = _stage(conn, batch) if batch else None
        if staged is not None:
            staged()
        new = _insert_staged(conn, before) if before is not None else 0
        if new:
            conn.execute(_NEW_VISITORS)
            conn.execute("INSERT INTO main.visitors_daily (link_id, day, visitor)"
                         " SELECT link_id, day, visitor FROM temp.click_visitors")  # fmt: skip
            for sql in _HOURLY:
                conn.execute(sql)
            mark = conn.execute("SELECT watermark FROM main.rollup_state WHERE id = 1").fetchone()[0]
            if mark is not None and conn.execute("SELECT min(hour) FROM temp.click_batch").fetchone()[0] < mark:
                for sql in _DAILY:
                    conn.execute(sql, {"watermark": mark})
            conn.execute(_ADD_TO_LINKS)
            conn.execute("DELETE FROM temp.click_batch")
            conn.execute("DELETE FROM temp.click_visitors")
        # Last, so a bad offset (CHECK position >= 0) rolls back everything before it too.
        conn.executemany(_STORE_OFFSETS, positions)
    return new


def _prepare(conn: sqlite3.Connection) -> None:
    """Once per connection: only the aggregator records clicks, so API workers keep the defaults."""
    if conn.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB:
        return
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    conn.execute("PRAGMA temp_store = MEMORY")
    for sql in _TEMP_TABLES:
        conn.execute(sql)
    # A transaction that failed half way rolled these back; a connection reused after a crash starts empty.
    conn.execute("DELETE FROM temp.click_batch")
    conn.execute("DELETE FROM temp.click_visitors")
    conn.execute("DELETE FROM temp.visit_stage")


def _stage(conn: sqlite3.Connection, batch: list[Visit]) -> int | None:
    """Bind the visits of existing links into temp.visit_stage; the largest visits rowid before them,
    or None when no visit's link exists."""
    wanted = json.dumps(sorted({v.link_id for v in batch}))
    live = {row[0] for row in conn.execute(
        "SELECT id FROM main.links WHERE id IN (SELECT value FROM json_each(?))", (wanted,)
    )}  # fmt: skip
    rows = [
        (v.event_id, v.link_id, _text(v.at), v.referrer, v.referrer_host, v.user_agent, v.browser, v.os, v.device,
         int(v.bot), v.ip, v.country, v.visitor)
        for v in batch if v.link_id in live
    ]  # fmt: skip
    if not rows:
        return None
    before = conn.execute("SELECT coalesce(max(id), 0) FROM main.visits").fetchone()[0]
    conn.executemany(_STAGE_VISIT, rows)
    return before


def _insert_staged(conn: sqlite3.Connection, before: int) -> int:
    """Insert the staged visits; copy the new ones (rowids above before) into temp.click_batch and count them."""
    conn.execute(_INSERT_VISITS)
    conn.execute("DELETE FROM temp.visit_stage")
    return conn.execute(_FILL_BATCH, (before,)).rowcount


# "2025-01-31T12:00:00" by (year, month, day, hour, minute, second), for _text.
_SECONDS: dict[tuple[int, ...], str] = {}


def _text(at: datetime) -> str:
    """db.ts(at), 0.6 us cheaper when at is UTC already, as the aggregator's visits are: the text up to
    the second is made once per second (a batch's visits share a few hundred seconds)."""
    if at.tzinfo is not UTC:
        return db.ts(at)
    second = (at.year, at.month, at.day, at.hour, at.minute, at.second)
    head = _SECONDS.get(second)
    if head is None:
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        head = _SECONDS[second] = at.isoformat(timespec="seconds").removesuffix("+00:00")
    return f"{head}.{at.microsecond:06d}+00:00"
