"""PostgresStore.record_clicks: a batch of visits into visits and the counter tables, in one transaction.

One READ COMMITTED transaction of a few statements, whatever the batch size:

    rollup_state      FOR SHARE: a rollup (FOR UPDATE) never runs between our read of the
                      watermark and our commit, so late visits land on the right side of it
    links             FOR KEY SHARE, in id order: none of the batch's links can be deleted
                      under us, and the visits of links already gone are dropped
    visits            INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING event_id: the new ones
    visitors_daily    the same, RETURNING the (link, day, visitor) keys seen for the first time
    counters          INSERT ... ON CONFLICT DO UPDATE, summed in Python first (clicks_common.tally)
    links             FOR NO KEY UPDATE in id order, then one UPDATE of clicks_*
    consumer_offsets  last, so a bad offset (CHECK position >= 0) undoes everything

Every statement takes its rows in key order, so two recorders (which the
design never runs, but the tests do) wait for each other rather than
deadlock; PostgresClickStore.record_clicks retries a deadlock anyway.

No foreign key checks visits.link_id: PostgreSQL's RI trigger cost ~10 us
per inserted row (EXPLAIN ANALYZE: 20 of 52 ms for 2,000 visits), while the
one FOR KEY SHARE query above does the same job for the whole batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from boltlink.store.clicks import Visit
from boltlink.store.clicks_common import DAY, Tally, tally

VISIT_COLUMNS = (
    "event_id, link_id, at, referrer, referrer_host, user_agent, browser, os, device, bot, ip, country, visitor"
)
_VISIT_COLUMN_NAMES = [name.strip() for name in VISIT_COLUMNS.split(",")]
_INSERT_VISITS = f"""
INSERT INTO visits ({VISIT_COLUMNS})
SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::text[], $9::text[], $10::boolean[], $11::text[], $12::text[], $13::text[])
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""
_INSERT_VISITORS = """
INSERT INTO visitors_daily (link_id, day, visitor)
SELECT (e->>0)::bigint, DATE '1970-01-01' + (e->>1)::integer, e->>2 FROM json_array_elements($1::json) AS e
ON CONFLICT DO NOTHING
RETURNING link_id, (day - DATE '1970-01-01')::bigint * 86400, visitor
"""
# Buckets travel as unix seconds.
_BUCKETS = {"hour": "to_timestamp((e->>1)::bigint)", "day": "DATE '1970-01-01' + ((e->>1)::bigint / 86400)::integer"}


def _add_counts(table: str, bucket: str) -> str:
    return f"""
INSERT INTO {table} AS c (link_id, {bucket}, total, humans, bots, visitors)
SELECT (e->>0)::bigint, {_BUCKETS[bucket]}, (e->>2)::bigint, (e->>3)::bigint, (e->>4)::bigint, (e->>5)::bigint
FROM json_array_elements($1::json) AS e
ON CONFLICT (link_id, {bucket}) DO UPDATE SET total = c.total + EXCLUDED.total,
    humans = c.humans + EXCLUDED.humans, bots = c.bots + EXCLUDED.bots, visitors = c.visitors + EXCLUDED.visitors
"""


def _add_breakdown(table: str, bucket: str) -> str:
    return f"""
INSERT INTO {table} AS c (link_id, {bucket}, dimension, value, count)
SELECT (e->>0)::bigint, {_BUCKETS[bucket]}, e->>2, e->>3, (e->>4)::bigint FROM json_array_elements($1::json) AS e
ON CONFLICT (link_id, {bucket}, dimension, value) DO UPDATE SET count = c.count + EXCLUDED.count
"""


_COUNTERS = {
    "hour": (_add_counts("clicks_hourly", "hour"), _add_breakdown("breakdown_hourly", "hour")),
    "day": (_add_counts("clicks_daily", "day"), _add_breakdown("breakdown_daily", "day")),
}


async def watermark(conn: asyncpg.Connection, lock: str = "") -> int | None:
    """The rollup watermark in unix seconds (None before the first rollup)."""
    return await conn.fetchval(
        f"SELECT (watermark - DATE '1970-01-01')::bigint * 86400 FROM rollup_state WHERE id = 1 {lock}"
    )


async def record(conn: asyncpg.Connection, batch: list[Visit], positions: list[tuple[str, str, int]]) -> int:
    mark = await watermark(conn, "FOR SHARE")
    new: list[Visit] = []
    prepared: _Prepared | None = None
    if batch:
        live = {r[0] for r in await conn.fetch(
            "SELECT id FROM links WHERE id = ANY($1::bigint[]) ORDER BY id FOR KEY SHARE",
            sorted({v.link_id for v in batch}),
        )}  # fmt: skip
        candidates = [v for v in batch if v.link_id in live]
        if candidates:
            # Speed: the server inserts the visits (~10 us a row) while this process sums them up
            # (tally and the JSON of the next statements, ~5 us a visit), instead of one after the other
            # (bench_aggregator.py, PostgreSQL: record_clicks 8.4 -> 7.x s for 200,000 events). The sums
            # assume every visit is new, as all are but in a replayed batch; if some were not, they are
            # made again from the new ones below, so what is stored does not change.
            insert = asyncio.ensure_future(_insert_visits(conn, [
                (v.event_id, v.link_id, v.at, v.referrer, v.referrer_host, v.user_agent,
                 v.browser, v.os, v.device, v.bot, v.ip, v.country, v.visitor)
                for v in candidates
            ]))  # fmt: skip
            try:
                await asyncio.sleep(0)  # let it send the statement before the CPU work below
                prepared = _Prepared.of(candidates)
            finally:
                ids = await insert  # awaited whatever happens: never two statements at once
            if ids is not None:  # a replayed batch: only some were new
                new = [v for v in candidates if v.event_id in ids]
                prepared = _Prepared.of(new) if new else None
            else:
                new = candidates
    if new:
        assert prepared is not None
        counts = prepared.counts
        seen = await conn.fetch(_INSERT_VISITORS, prepared.visitors)
        counts.add_new_visitors((r[0], r[1], r[2]) for r in seen)
        await _add(conn, "hour", counts.hourly, counts.breakdown, prepared.breakdown)
        days, day_values = counts.daily(mark)  # late visits for days already rolled up
        await _add(conn, "day", days, day_values)
        await _add_to_links(conn, counts, prepared.links)
    if positions:  # last, so a bad offset (CHECK position >= 0) undoes everything before it
        await conn.execute(
            "INSERT INTO consumer_offsets (source, name, position)"
            " SELECT e->>0, e->>1, (e->>2)::bigint FROM json_array_elements($1::json) AS e"
            " ON CONFLICT (source, name) DO UPDATE SET position = EXCLUDED.position",
            _json(positions),
        )
    return len(new)


async def _insert_visits(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> set[str] | None:
    """Store the visits; None when every one was new, else the event ids that were.

    Speed: COPY (binary) takes a batch in about half the server time of INSERT ...
    SELECT unnest() (5,000 rows: 27-48 ms against 80-90 ms, measured), but it
    cannot skip rows that exist. Batches are new but after a crash, so COPY
    first, in a savepoint; a duplicate event id undoes only the COPY, and the
    batch goes again through INSERT ... ON CONFLICT DO NOTHING.
    """
    try:
        async with conn.transaction():  # a savepoint inside record()'s transaction
            await conn.copy_records_to_table("visits", records=rows, columns=_VISIT_COLUMN_NAMES)
        return None
    except asyncpg.UniqueViolationError:
        inserted = await conn.fetch(_INSERT_VISITS, *_columns(rows, 13))
        return {r[0] for r in inserted}


@dataclass
class _Prepared:
    """What the statements after the visits INSERT need that does not depend on their answers."""

    counts: Tally
    visitors: str  # JSON of the (link, day, visitor) keys, in key order
    breakdown: str  # JSON of the hourly breakdown rows, in key order
    links: str  # JSON of the per-link sums, in id order

    @classmethod
    def of(cls, visits: list[Visit]) -> _Prepared:
        counts = tally(visits)
        return cls(
            counts=counts,
            visitors=_json([(k[0], k[1] // DAY, k[2]) for k in sorted(counts.visitors)]),
            breakdown=_breakdown_json(counts.breakdown),
            links=_json([(i, *counts.links[i]) for i in sorted(counts.links)]),
        )


async def _add(conn: asyncpg.Connection, kind: str, counts: Mapping[tuple[int, int], list[int]],
               values: Mapping[tuple[int, int, str, str], int], values_json: str | None = None) -> None:
    add_counts, add_values = _COUNTERS[kind]
    if counts:
        await conn.execute(add_counts, _json([(*k, *c) for k, c in sorted(counts.items())]))
    if values:
        await conn.execute(add_values, values_json if values_json is not None else _breakdown_json(values))


def _breakdown_json(values: Mapping[tuple[int, int, str, str], int]) -> str:
    return _json([(*k, c) for k, c in sorted(values.items())])


async def _add_to_links(conn: asyncpg.Connection, counts: Tally, rows_json: str) -> None:
    ids = sorted(counts.links)
    await conn.execute("SELECT id FROM links WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE", ids)
    await conn.execute(
        "UPDATE links AS l SET clicks_total = l.clicks_total + (e->>1)::bigint,"
        " clicks_humans = l.clicks_humans + (e->>2)::bigint, clicks_bots = l.clicks_bots + (e->>3)::bigint"
        " FROM json_array_elements($1::json) AS e WHERE l.id = (e->>0)::bigint",
        rows_json,
    )


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows -> one list per column, as unnest() takes them (empty lists for no rows)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _json(rows: list[tuple[Any, ...]]) -> str:
    """Rows as one JSON array of arrays, read with json_array_elements().

    Measured: asyncpg checks every element of an array parameter against
    collections.abc (~1.4 us per row of 5 columns), which cost more client
    CPU than the JSON text does on both sides together. The visits, whose
    13 columns PostgreSQL would re-parse for every ->>, stay arrays.
    """
    return json.dumps(rows, separators=(",", ":"))


def without_nul(visit: Visit) -> Visit:
    """PostgreSQL text cannot hold NUL (SQLite can): drop it rather than refuse the batch forever."""
    fields = {f.name: getattr(visit, f.name) for f in dataclasses.fields(visit)}
    return Visit(**{k: v.replace("\x00", "") if isinstance(v, str) else v for k, v in fields.items()})
