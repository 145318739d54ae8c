"""PostgresStore.record_clicks: a batch of visits into visits and the counter tables, in one transaction.

One READ COMMITTED transaction of a few statements, whatever the batch size:

    rollup_state      FOR SHARE: a rollup (FOR UPDATE) never runs between our read of the
                      watermark and our commit, so late visits land on the right side of it
    links             FOR KEY SHARE, in id order: none of the batch's links can be deleted
                      under us, and the visits of links already gone are dropped
    click_stage       COPY (binary) of the batch into a temporary table of this connection
    links             FOR NO KEY UPDATE in id order: the statement below updates them
    one statement     visits INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING the new ones,
                      and from those, in the same statement: visitors_daily (the keys seen for the
                      first time), clicks_hourly, breakdown_hourly, the daily tables for late
                      visits, and links.clicks_*
    consumer_offsets  last, so a bad offset (CHECK position >= 0) undoes everything

The server does the grouping, as SQLite does in sqlite_record.py: summing a
batch in Python (clicks_common.tally) and sending the sums back as JSON cost
the aggregator more CPU than everything else it does for a visit
(scripts/bench_aggregator.py), on the same cores as the database. Only the
new visits are counted, so a batch replayed after a crash changes nothing.

Every statement takes its rows in key order, so two recorders (which the
design never runs, but the tests do) wait for each other rather than
deadlock; PostgresClickStore.record_clicks retries a deadlock anyway.

No foreign key checks visits.link_id: PostgreSQL's RI trigger cost ~10 us
per inserted row (EXPLAIN ANALYZE: 20 of 52 ms for 2,000 visits), while the
one FOR KEY SHARE query above does the same job for the whole batch.
"""

from __future__ import annotations

import dataclasses
import json

import asyncpg

from boltlink.store.clicks import DIMENSIONS, DIRECT, UNKNOWN, Visit

VISIT_COLUMNS = (
    "event_id, link_id, at, referrer, referrer_host, user_agent, browser, os, device, bot, ip, country, visitor"
)
WORK_MEM = "64MB"
_VISIT_COLUMN_NAMES = [name.strip() for name in VISIT_COLUMNS.split(",")]

# ON COMMIT DELETE ROWS: empty at the start of every transaction, whatever the last one did.
_STAGE = "CREATE TEMP TABLE IF NOT EXISTS click_stage (LIKE visits) ON COMMIT DELETE ROWS"

# Buckets in UTC whatever the session's TimeZone: an hour as timestamptz, a day as date.
_HOUR = "to_timestamp(floor(extract(epoch FROM at) / 3600) * 3600)"
_DAY_OF_HOUR = "(DATE '1970-01-01' + (floor(extract(epoch FROM hour) / 86400))::integer)"

def _dimension_value(dimension: str) -> str:
    """(name, value) of one breakdown dimension of a new visit n, as Visit.dimension() reads it."""
    column, missing = ("referrer_host", DIRECT) if dimension == "referrer" else (dimension, UNKNOWN)
    return f"('{dimension}', coalesce(nullif(n.{column}, ''), '{missing}'))"


_DIMENSIONS = f"(VALUES {', '.join(_dimension_value(d) for d in DIMENSIONS)}) AS d (dimension, value)"

# $1: the rollup watermark as a date, or NULL before the first rollup.
# Visitors: a (link, day, visitor) key new to visitors_daily counts once, in the hour of its
# earliest visit in this batch; ALL_LINKS (0) counts a visitor once per day across links.
_RECORD = f"""
WITH new AS (
    INSERT INTO visits ({VISIT_COLUMNS})
    SELECT {VISIT_COLUMNS} FROM pg_temp.click_stage ORDER BY event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING link_id, {_HOUR} AS hour, bot, referrer_host, browser, os, device, country, visitor
), keys AS (
    SELECT link_id, {_DAY_OF_HOUR} AS day, visitor, min(hour) AS hour FROM new GROUP BY 1, 2, 3
    UNION ALL
    SELECT 0, {_DAY_OF_HOUR}, visitor, min(hour) FROM new GROUP BY 2, 3
), first_seen AS (
    INSERT INTO visitors_daily (link_id, day, visitor)
    SELECT link_id, day, visitor FROM keys ORDER BY 1, 2, 3
    ON CONFLICT DO NOTHING
    RETURNING link_id, day, visitor
), visitors AS (
    SELECT k.link_id, k.hour, count(*) AS visitors FROM keys AS k JOIN first_seen USING (link_id, day, visitor)
    GROUP BY 1, 2
), hours AS (
    SELECT c.*, coalesce(v.visitors, 0) AS visitors FROM (
        SELECT link_id, hour, count(*) AS total, count(*) FILTER (WHERE NOT bot) AS humans,
               count(*) FILTER (WHERE bot) AS bots
        FROM new GROUP BY 1, 2
        UNION ALL
        SELECT 0, hour, count(*), count(*) FILTER (WHERE NOT bot), count(*) FILTER (WHERE bot) FROM new GROUP BY 2
    ) AS c LEFT JOIN visitors AS v USING (link_id, hour)
), values_by_hour AS (
    SELECT n.link_id, n.hour, d.dimension, d.value, count(*) AS count FROM new AS n CROSS JOIN LATERAL {_DIMENSIONS}
    GROUP BY 1, 2, 3, 4
), add_hours AS (
    INSERT INTO clicks_hourly AS c (link_id, hour, total, humans, bots, visitors)
    SELECT link_id, hour, total, humans, bots, visitors FROM hours ORDER BY 1, 2
    ON CONFLICT (link_id, hour) DO UPDATE SET total = c.total + EXCLUDED.total,
        humans = c.humans + EXCLUDED.humans, bots = c.bots + EXCLUDED.bots, visitors = c.visitors + EXCLUDED.visitors
), add_values AS (
    INSERT INTO breakdown_hourly AS c (link_id, hour, dimension, value, count)
    SELECT * FROM values_by_hour ORDER BY 1, 2, 3, 4
    ON CONFLICT (link_id, hour, dimension, value) DO UPDATE SET count = c.count + EXCLUDED.count
), add_days AS (  -- late visits for days already rolled up count in the daily tables too
    INSERT INTO clicks_daily AS c (link_id, day, total, humans, bots, visitors)
    SELECT link_id, {_DAY_OF_HOUR}, sum(total), sum(humans), sum(bots), sum(visitors) FROM hours
    WHERE {_DAY_OF_HOUR} < $1 GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (link_id, day) DO UPDATE SET total = c.total + EXCLUDED.total,
        humans = c.humans + EXCLUDED.humans, bots = c.bots + EXCLUDED.bots, visitors = c.visitors + EXCLUDED.visitors
), add_day_values AS (
    INSERT INTO breakdown_daily AS c (link_id, day, dimension, value, count)
    SELECT link_id, {_DAY_OF_HOUR}, dimension, value, sum(count) FROM values_by_hour
    WHERE {_DAY_OF_HOUR} < $1 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (link_id, day, dimension, value) DO UPDATE SET count = c.count + EXCLUDED.count
), add_links AS (
    UPDATE links AS l SET clicks_total = l.clicks_total + n.total, clicks_humans = l.clicks_humans + n.humans,
        clicks_bots = l.clicks_bots + n.bots
    FROM (SELECT link_id, sum(total) AS total, sum(humans) AS humans, sum(bots) AS bots FROM hours
          WHERE link_id <> 0 GROUP BY 1) AS n
    WHERE l.id = n.link_id
)
SELECT count(*) FROM new
"""


async def watermark(conn: asyncpg.Connection, lock: str = "") -> int | None:
    """The rollup watermark in unix seconds (None before the first rollup)."""
    return await conn.fetchval(
        f"SELECT (watermark - DATE '1970-01-01')::bigint * 86400 FROM rollup_state WHERE id = 1 {lock}"
    )


async def record(conn: asyncpg.Connection, batch: list[Visit], positions: list[tuple[str, str, int]]) -> int:
    """Record the batch (event ids unique within it, in order) and store the offsets; the number of new visits."""
    mark = await conn.fetchval("SELECT watermark FROM rollup_state WHERE id = 1 FOR SHARE")
    new = 0
    if batch:
        ids = sorted({v.link_id for v in batch})
        live = {r[0] for r in await conn.fetch(
            "SELECT id FROM links WHERE id = ANY($1::bigint[]) ORDER BY id FOR KEY SHARE", ids
        )}  # fmt: skip
        rows = [
            (v.event_id, v.link_id, v.at, v.referrer, v.referrer_host, v.user_agent,
             v.browser, v.os, v.device, v.bot, v.ip, v.country, v.visitor)
            for v in batch if v.link_id in live
        ]  # fmt: skip
        if rows:
            # A batch's sorts and groupings (20,000 visits of ~340 bytes) overflow the default 4 MB and
            # spill to temporary files; for this transaction only.
            await conn.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
            await conn.execute(_STAGE)
            await conn.copy_records_to_table("click_stage", schema_name="pg_temp", records=rows,
                                             columns=_VISIT_COLUMN_NAMES)
            await conn.execute("SELECT id FROM links WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE",
                               sorted(live))
            new = await conn.fetchval(_RECORD, mark)
    if positions:  # last, so a bad offset (CHECK position >= 0) undoes everything before it
        await conn.execute(
            "INSERT INTO consumer_offsets (source, name, position)"
            " SELECT e->>0, e->>1, (e->>2)::bigint FROM json_array_elements($1::json) AS e"
            " ON CONFLICT (source, name) DO UPDATE SET position = EXCLUDED.position",
            json.dumps(positions, separators=(",", ":")),
        )
    return new


def without_nul(visit: Visit) -> Visit:
    """PostgreSQL text cannot hold NUL (SQLite can): drop it rather than refuse the batch forever."""
    fields = {f.name: getattr(visit, f.name) for f in dataclasses.fields(visit)}
    return Visit(**{k: v.replace("\x00", "") if isinstance(v, str) else v for k, v in fields.items()})
