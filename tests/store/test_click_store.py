"""The ClickStore contract, run against every backend: memory, SQLite and PostgreSQL.

Expected numbers are counted here from the visits themselves, never with the
store's own helpers, so a wrong rule in clicks_common cannot agree with itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from boltlink.errors import InvalidInput, StoreError
from boltlink.store.base import LinkQuery, LinkStore, NewLink
from boltlink.store.clicks import ALL_LINKS, DIMENSIONS, ClickStore, Visit
from boltlink.store.memory import MemoryStore
from boltlink.store.postgres import PostgresStore
from boltlink.store.sqlite import SqliteStore

REPO_ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 3, 10, 9, 15, 30, 250000, tzinfo=UTC)  # a Monday morning
DAY0 = T0.replace(hour=0, minute=0, second=0, microsecond=0)


class Store(LinkStore, ClickStore):
    """What every backend is: both interfaces on one database."""


@dataclass
class Backend:
    name: str
    make: Callable[[], Store]
    target: str = ""  # SQLite path or PostgreSQL URL, for other processes

    @property
    def dialect(self) -> str:
        return "postgres" if self.name == "postgres" else "sqlite"


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "memory":
        return Backend("memory", MemoryStore)  # type: ignore[arg-type]
    if request.param == "sqlite":
        path = tmp_path / "boltlink.sqlite3"
        return Backend("sqlite", lambda: SqliteStore(path), str(path))  # type: ignore[arg-type, return-value]
    url = request.getfixturevalue("postgres_url")
    return Backend("postgres", lambda: PostgresStore(url), url)  # type: ignore[arg-type, return-value]


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    opened = backend.make()
    await opened.open()
    yield opened
    await opened.close()


async def new_link(store: Store, slug: str, **fields: object) -> int:
    return (await store.create_link(NewLink(slug=slug, url=f"https://example.com/{slug}", **fields))).id  # type: ignore[arg-type]


def visit(event_id: str, link_id: int, at: datetime, **fields: object) -> Visit:
    values: dict[str, object] = dict(
        referrer=None, referrer_host=None, user_agent="Mozilla/5.0", browser="Firefox", os="Linux",
        device="Other", bot=False, ip="192.0.2.0", country="DE", visitor=f"visitor-of-{event_id}",
    )  # fmt: skip
    values.update(fields)
    return Visit(event_id=event_id, link_id=link_id, at=at, **values)  # type: ignore[arg-type]


def mixed_visits(link_id: int, count: int, prefix: str = "e", start: datetime = T0) -> list[Visit]:
    """Visits spread over ~3 days, with bots, repeated visitors and every kind of missing value."""
    hosts = [None, "t.co", "news.example", "t.co"]
    browsers = ["Firefox", "Chrome", None, "Chrome", ""]
    return [
        visit(
            f"{prefix}{i}", link_id, start + timedelta(minutes=37 * i),
            referrer=f"https://{hosts[i % 4]}/x" if hosts[i % 4] else None, referrer_host=hosts[i % 4],
            browser=browsers[i % 5], os=["Linux", "iOS", None][i % 3], device=None if i % 7 == 0 else "iPhone",
            bot=i % 6 == 0, country=[None, "DE", "FR"][i % 3], visitor=f"v{i % 9}",
        )  # fmt: skip
        for i in range(count)
    ]


# what the counts must be, worked out the plain way ------------------------------------------


def day_of(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def expected_totals(visits: Iterable[Visit]) -> tuple[int, int, int, int]:
    chosen = list(visits)
    bots = sum(1 for v in chosen if v.bot)
    visitors = len({(day_of(v.at), v.visitor) for v in chosen})  # unique per day, summed over days
    return len(chosen), len(chosen) - bots, bots, visitors


def expected_top(visits: Iterable[Visit]) -> dict[str, list[tuple[str, int]]]:
    chosen = list(visits)
    top = {}
    for dim in DIMENSIONS:
        if dim == "referrer":
            counter = Counter(v.referrer_host or "(direct)" for v in chosen)
        else:
            counter = Counter(getattr(v, dim) or "(unknown)" for v in chosen)
        top[dim] = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    return top


def in_range(visits: Iterable[Visit], start: datetime, end: datetime) -> list[Visit]:
    return [v for v in visits if start <= v.at < end]


async def stats_tuple(store: Store, link_id: int, start: datetime, end: datetime, granularity: str = "day") -> tuple:
    stats = await store.link_stats(link_id, start, end, granularity, top=100)  # type: ignore[arg-type]
    return stats.total, stats.humans, stats.bots, stats.visitors


# recording ------------------------------------------------------------------------------------


async def test_recorded_visits_are_counted_exactly(store: Store) -> None:
    link_id = await new_link(store, "a")
    other = await new_link(store, "b")
    visits = mixed_visits(link_id, 120) + mixed_visits(other, 30, prefix="o")
    assert await store.record_clicks(visits[:70]) == 70
    assert await store.record_clicks(visits[70:]) == 80
    mine = [v for v in visits if v.link_id == link_id]

    link = await store.get_link("a")
    assert link is not None
    assert (link.clicks_total, link.clicks_humans, link.clicks_bots) == expected_totals(mine)[:3]
    start, end = DAY0 - timedelta(days=1), DAY0 + timedelta(days=6)
    stats = await store.link_stats(link_id, start, end, "day", top=100)
    assert (stats.total, stats.humans, stats.bots, stats.visitors) == expected_totals(mine)
    assert stats.top == expected_top(mine)
    assert [p.start for p in stats.series] == [start + timedelta(days=d) for d in range(7)]
    for point in stats.series:
        day_visits = in_range(mine, point.start, point.start + timedelta(days=1))
        assert (point.total, point.humans, point.bots, point.visitors) == expected_totals(day_visits)
    hourly = await store.link_stats(link_id, start, end, "hour", top=100)
    assert (hourly.total, hourly.humans, hourly.bots, hourly.visitors) == expected_totals(mine)
    assert len(hourly.series) == 7 * 24
    assert hourly.top == stats.top


async def test_top_values_are_limited_and_ordered_by_count_then_value(store: Store) -> None:
    link_id = await new_link(store, "a")
    browsers = ["Zeta"] * 3 + ["Alpha"] * 2 + ["Beta"] * 2 + ["Gamma"]
    await store.record_clicks([visit(f"e{i}", link_id, T0, browser=b) for i, b in enumerate(browsers)])
    stats = await store.link_stats(link_id, DAY0, DAY0 + timedelta(days=1), "day", top=2)
    assert stats.top["browser"] == [("Zeta", 3), ("Alpha", 2)]
    assert stats.top["referrer"] == [("(direct)", 8)]
    assert set(stats.top) == set(DIMENSIONS)


async def test_a_replayed_batch_records_nothing_and_changes_nothing(store: Store) -> None:
    link_id = await new_link(store, "a")
    visits = mixed_visits(link_id, 40)
    assert await store.record_clicks(visits, source="spool", offsets={"w1": 100}) == 40
    before = (await store.get_link("a"), await store.link_stats(link_id, DAY0, DAY0 + timedelta(days=4), "hour"),
              await store.global_stats(DAY0, DAY0 + timedelta(days=4)))  # fmt: skip
    assert await store.record_clicks(visits, source="spool", offsets={"w1": 100}) == 0
    after = (await store.get_link("a"), await store.link_stats(link_id, DAY0, DAY0 + timedelta(days=4), "hour"),
             await store.global_stats(DAY0, DAY0 + timedelta(days=4)))  # fmt: skip
    assert after == before


async def test_staged_is_set_by_the_time_a_batch_is_recorded_or_refused(store: Store) -> None:
    """The aggregator waits for `staged` before it enriches the next batch: it must never stay unset."""
    link_id = await new_link(store, "a")
    for visits in (mixed_visits(link_id, 40), []):
        staged = asyncio.Event()
        await store.record_clicks(visits, source="spool", offsets={"w1": 100}, staged=staged)
        assert staged.is_set()


async def test_only_the_new_visits_of_a_mixed_batch_count(store: Store) -> None:
    link_id = await new_link(store, "a")
    visits = mixed_visits(link_id, 30)
    assert await store.record_clicks(visits[:20]) == 20
    assert await store.record_clicks(visits[10:]) == 10  # 10 known, 10 new
    repeated = [visits[29], visits[29], replace(visits[0], bot=True)]  # a repeat inside the batch, a known id
    assert await store.record_clicks(repeated) == 0
    link = await store.get_link("a")
    assert link is not None and link.clicks_total == 30
    assert await stats_tuple(store, link_id, DAY0, DAY0 + timedelta(days=4)) == expected_totals(visits)


async def test_an_event_id_repeated_within_a_batch_counts_once(store: Store) -> None:
    link_id = await new_link(store, "a")
    first = visit("same", link_id, T0)
    assert await store.record_clicks([first, replace(first, bot=True), visit("other", link_id, T0)]) == 2
    assert await stats_tuple(store, link_id, DAY0, DAY0 + timedelta(days=1)) == (2, 2, 0, 2)
    page = await store.list_visits(link_id)
    assert {v.event_id: v.bot for v in page.items} == {"same": False, "other": False}


async def test_visits_of_a_missing_or_deleted_link_are_dropped(store: Store) -> None:
    link_id = await new_link(store, "a")
    gone = await new_link(store, "gone")
    await store.delete_link("gone")
    batch = [visit("x1", 987_654, T0), visit("x2", gone, T0), visit("ok", link_id, T0)]
    assert await store.record_clicks(batch, source="spool", offsets={"f": 3}) == 1
    assert (await store.global_stats(DAY0, DAY0 + timedelta(days=1))).total == 1
    assert await stats_tuple(store, gone, DAY0, DAY0 + timedelta(days=1)) == (0, 0, 0, 0)
    assert await store.consumer_offsets("spool") == {"f": 3}
    # Recorded later, when the link exists, they are new.
    assert await store.record_clicks([visit("x1", link_id, T0)]) == 1


async def test_unique_visitors_are_counted_per_day(store: Store) -> None:
    link_id = await new_link(store, "a")
    other = await new_link(store, "b")
    batch = [
        visit("1", link_id, T0, visitor="ann"),
        visit("2", link_id, T0 + timedelta(hours=3), visitor="ann"),  # same day: not again
        visit("3", link_id, T0 + timedelta(days=1), visitor="ann"),  # next day: again
        visit("4", link_id, T0, visitor="bob", bot=True),
        visit("5", other, T0, visitor="ann"),  # another link: unique there, not again in total
    ]
    await store.record_clicks(batch[:2])
    await store.record_clicks(batch[2:])
    assert await stats_tuple(store, link_id, DAY0, DAY0 + timedelta(days=2)) == (4, 3, 1, 3)
    assert await stats_tuple(store, other, DAY0, DAY0 + timedelta(days=2)) == (1, 1, 0, 1)
    everything = await store.global_stats(DAY0, DAY0 + timedelta(days=2))
    assert (everything.total, everything.visitors) == (5, 3)  # ann and bob on day 0, ann on day 1
    # A visitor first seen in the batch's later visit is counted in the hour of the earliest one.
    hourly = await store.link_stats(link_id, DAY0, DAY0 + timedelta(days=1), "hour")
    assert [(p.start.hour, p.visitors) for p in hourly.series if p.visitors] == [(9, 2)]


async def test_a_nul_character_does_not_make_a_batch_unrecordable(store: Store) -> None:
    # PostgreSQL text cannot hold NUL; a batch the server refuses would be retried by the aggregator forever.
    link_id = await new_link(store, "a")
    odd = visit("nul", link_id, T0, user_agent="bad\x00agent", browser="Odd\x00one", referrer_host="x\x00.example")
    assert await store.record_clicks([odd, visit("fine", link_id, T0)]) == 2
    stats = await store.link_stats(link_id, DAY0, DAY0 + timedelta(days=1), "day")
    assert stats.total == 2 and len(stats.top["browser"]) == 2
    assert await store.record_clicks([odd]) == 0  # still known by its event id


# offsets and atomicity -------------------------------------------------------------------------


async def test_offsets_are_stored_per_source_and_can_be_forgotten(store: Store) -> None:
    link_id = await new_link(store, "a")
    assert await store.consumer_offsets("spool") == {}
    assert await store.record_clicks([visit("1", link_id, T0)], source="spool", offsets={"a": 10, "b": 5}) == 1
    assert await store.record_clicks([], source="spool", offsets={"a": 25}) == 0  # an offset alone is stored too
    await store.record_clicks([], source="other", offsets={"a": 1})
    assert await store.consumer_offsets("spool") == {"a": 25, "b": 5}
    await store.forget_offsets("spool", ["a", "missing"])
    assert await store.consumer_offsets("spool") == {"b": 5}
    assert await store.consumer_offsets("other") == {"a": 1}
    with pytest.raises(ValueError):
        await store.record_clicks([], offsets={"a": 1})  # offsets belong to a source


async def test_a_failing_batch_stores_neither_visits_nor_counters_nor_offsets(store: Store) -> None:
    link_id = await new_link(store, "a")
    await store.record_clicks(mixed_visits(link_id, 5), source="spool", offsets={"f": 5})
    before = (await store.get_link("a"), await store.link_stats(link_id, DAY0, DAY0 + timedelta(days=4), "hour"),
              await store.global_stats(DAY0, DAY0 + timedelta(days=4)), await store.list_visits(link_id))  # fmt: skip
    # The offsets are written last, so this fails after everything else of the batch was written.
    with pytest.raises(StoreError):
        await store.record_clicks(mixed_visits(link_id, 20, prefix="n"), source="spool", offsets={"f": 20, "g": -1})
    after = (await store.get_link("a"), await store.link_stats(link_id, DAY0, DAY0 + timedelta(days=4), "hour"),
             await store.global_stats(DAY0, DAY0 + timedelta(days=4)), await store.list_visits(link_id))  # fmt: skip
    assert after == before
    assert await store.consumer_offsets("spool") == {"f": 5}
    # Nothing half-done is left behind: the same batch with a good offset counts in full.
    assert await store.record_clicks(mixed_visits(link_id, 20, prefix="n"), source="spool", offsets={"f": 20}) == 20


# reading ------------------------------------------------------------------------------------------


async def test_series_cover_every_bucket_the_range_overlaps_with_zeros(store: Store) -> None:
    link_id = await new_link(store, "a")
    ten = T0.replace(hour=10, minute=5, second=0, microsecond=0)
    await store.record_clicks([visit("a", link_id, ten), visit("b", link_id, ten.replace(hour=13, minute=59))])
    stats = await store.link_stats(link_id, ten.replace(minute=30), ten.replace(hour=14, minute=10), "hour")
    assert [(p.start.hour, p.total) for p in stats.series] == [(10, 1), (11, 0), (12, 0), (13, 1), (14, 0)]
    assert all(p.start.utcoffset() == timedelta(0) and p.start.minute == 0 for p in stats.series)
    aligned = await store.link_stats(link_id, ten.replace(minute=0), ten.replace(hour=14, minute=0), "hour")
    assert [p.start.hour for p in aligned.series] == [10, 11, 12, 13]
    just_after = await store.link_stats(link_id, ten, ten.replace(hour=13, minute=0, second=0, microsecond=1), "hour")
    assert [p.start.hour for p in just_after.series] == [10, 11, 12, 13]  # 13:00:00.000001 overlaps 13:00
    days = await store.link_stats(link_id, ten - timedelta(days=2), ten + timedelta(hours=1), "day")
    assert [(p.start, p.total) for p in days.series] == [
        (DAY0 - timedelta(days=2), 0), (DAY0 - timedelta(days=1), 0), (DAY0, 2)
    ]  # fmt: skip
    empty = await store.link_stats(link_id, ten, ten, "hour")
    assert (empty.total, empty.series) == (0, [])
    with pytest.raises(InvalidInput):
        await store.link_stats(link_id, ten, ten, "week")  # type: ignore[arg-type]


async def test_a_visit_in_the_last_microsecond_of_an_hour_counts_in_that_hour(store: Store) -> None:
    link_id = await new_link(store, "a")
    edge = DAY0.replace(hour=23, minute=59, second=59, microsecond=999999)
    await store.record_clicks([visit("edge", link_id, edge)])
    hours = await store.link_stats(link_id, DAY0, DAY0 + timedelta(days=2), "hour")
    assert [(p.start, p.total) for p in hours.series if p.total] == [(DAY0.replace(hour=23), 1)]
    days = await store.link_stats(link_id, DAY0, DAY0 + timedelta(days=2), "day")
    assert [p.total for p in days.series] == [1, 0]


async def test_statistics_are_the_same_before_and_after_the_daily_rollup(store: Store) -> None:
    link_id = await new_link(store, "a")
    other = await new_link(store, "b")
    visits = mixed_visits(link_id, 150) + mixed_visits(other, 60, prefix="o")
    await store.record_clicks(visits)

    async def snapshot() -> list[object]:
        result: list[object] = []
        for start, end in ((DAY0, DAY0 + timedelta(days=5)), (T0, T0 + timedelta(days=1, hours=5))):
            result.append(await store.link_stats(link_id, start, end, "day"))
            result.append(await store.link_stats(link_id, start, end, "hour"))
            result.append(await store.global_stats(start, end))
        return result

    before = await snapshot()
    assert await store.rollup_daily(DAY0 + timedelta(days=2)) == 2
    assert await snapshot() == before
    assert await store.rollup_daily(DAY0 + timedelta(days=2)) == 0  # idempotent
    assert await store.rollup_daily(DAY0 + timedelta(days=1)) == 0  # never backwards
    assert await snapshot() == before
    assert await store.rollup_daily(DAY0 + timedelta(days=3, hours=5)) == 1  # only complete days
    assert await snapshot() == before


async def test_a_late_visit_for_a_rolled_up_day_still_counts(store: Store) -> None:
    link_id = await new_link(store, "a")
    await store.record_clicks([visit("1", link_id, T0), visit("2", link_id, T0 + timedelta(days=2))])
    assert await store.rollup_daily(DAY0 + timedelta(days=2)) == 2
    late = [visit("late", link_id, T0 + timedelta(hours=1), visitor="new", browser="Late"),
            visit("late2", link_id, T0, visitor="visitor-of-1")]  # fmt: skip
    assert await store.record_clicks(late) == 2
    day = await store.link_stats(link_id, DAY0, DAY0 + timedelta(days=1), "day")
    assert (day.total, day.visitors) == (3, 2)
    assert ("Late", 1) in day.top["browser"]
    hour = await store.link_stats(link_id, DAY0, DAY0 + timedelta(days=1), "hour")
    assert (hour.total, hour.visitors) == (3, 2)
    assert (await store.global_stats(DAY0, DAY0 + timedelta(days=1))).total == 3


async def test_prune_removes_old_visits_and_hourly_rows_but_keeps_the_counts(store: Store) -> None:
    link_id = await new_link(store, "a")
    visits = mixed_visits(link_id, 100)  # ~2.6 days from T0
    await store.record_clicks(visits)
    week = (DAY0, DAY0 + timedelta(days=7))
    by_day = await store.link_stats(link_id, *week, "day")
    cut = DAY0 + timedelta(days=1, hours=12)
    # Nothing rolled up yet: visits go, hourly rows must stay.
    removed, hourly = await store.prune(visits_before=cut, hourly_before=cut)
    assert removed == len([v for v in visits if v.at < cut]) and hourly == 0
    assert await store.link_stats(link_id, *week, "day") == by_day
    assert await store.rollup_daily(DAY0 + timedelta(days=2)) == 2
    removed, hourly = await store.prune(visits_before=cut, hourly_before=DAY0 + timedelta(days=5))
    assert removed == 0 and hourly > 0  # hourly rows only before the watermark (day 2)
    assert await store.link_stats(link_id, *week, "day") == by_day
    assert await store.prune(visits_before=cut, hourly_before=DAY0 + timedelta(days=5)) == (0, 0)
    page = await store.list_visits(link_id, limit=1000)
    assert sorted(v.event_id for v in page.items) == sorted(v.event_id for v in visits if v.at >= cut)
    hours = await store.link_stats(link_id, *week, "hour")
    assert sum(p.total for p in hours.series) == len([v for v in visits if v.at >= DAY0 + timedelta(days=2)])
    link = await store.get_link("a")
    assert link is not None and link.clicks_total == 100


async def test_hourly_top_values_are_the_hourly_rows_sums_across_rolled_up_days(store: Store) -> None:
    # The SQL stores read rolled-up days mostly inside an hourly range from the daily breakdown rows
    # (minus the hours outside the range): the answer must be what the hourly rows alone give.
    link_id = await new_link(store, "a")
    other = await new_link(store, "b")
    visits = [
        visit(f"e{i}", link_id, DAY0 + timedelta(minutes=20 * i + 7), referrer_host=f"h{i * 5 % 17}.example",
              browser=f"B{i * 7 % 11}", os=["Linux", "iOS", None][i % 3], device=f"D{i % 4}",
              country=f"C{i * 3 % 13}", bot=i % 5 == 0)
        for i in range(5 * 72)  # every 20 minutes for 5 days
    ] + [visit(f"o{i}", other, DAY0 + timedelta(hours=5 * i), browser="Other") for i in range(24)]  # fmt: skip
    await store.record_clicks(visits)
    assert await store.rollup_daily(DAY0 + timedelta(days=3)) == 3
    late = visit("late", link_id, DAY0 + timedelta(days=1, hours=22, minutes=1), browser="Late")
    await store.record_clicks([late])  # in the daily and the hourly tables
    mine = [v for v in visits if v.link_id == link_id] + [late]

    def h(days: int, hours: int) -> datetime:
        return DAY0 + timedelta(days=days, hours=hours)

    ranges = [
        (h(0, 5), h(4, 7)),  # 19 hours of day 0, days 1-2, hours past the watermark
        (h(0, 20), h(2, 3)),  # a few hours at both edges
        (h(1, 2), h(2, 22)),  # ends mid-day before the watermark
        (h(1, 3), h(1, 21)),  # inside one rolled-up day
        (h(0, 0), h(3, 0)),  # exactly the rolled-up days
        (h(-1, 0), h(6, 0)),  # beyond the clicks on both sides
        (h(2, 13), h(3, 11)),  # across the watermark
        (h(0, 4) + timedelta(minutes=30), h(2, 9) + timedelta(seconds=1)),  # unaligned ends
    ]

    async def check(chosen: list[Visit]) -> None:
        for start, end in ranges:
            last = end.replace(minute=0, second=0, microsecond=0)  # the range covers every hour it overlaps
            expected = in_range(chosen, start.replace(minute=0, second=0, microsecond=0),
                                last if last == end else last + timedelta(hours=1))  # fmt: skip
            stats = await store.link_stats(link_id, start, end, "hour", top=100)
            assert (stats.top, stats.total) == (expected_top(expected), len(expected)), (start, end)

    await check(mine)
    # Pruned hours read as zero, as before, also in a day whose daily rows still count them ...
    cut = h(1, 6)
    await store.prune(visits_before=DAY0, hourly_before=cut)
    kept = [v for v in mine if v.at >= cut]
    await check(kept)
    # ... and when a late visit brings a pruned hour back.
    again = visit("again", link_id, h(1, 2), browser="Again")
    await store.record_clicks([again])
    await check([*kept, again])


async def test_list_visits_pages_newest_first_with_a_cursor(store: Store) -> None:
    link_id = await new_link(store, "a")
    other = await new_link(store, "b")
    same = T0 + timedelta(hours=1)
    visits = [visit(f"e{i}", link_id, T0 + timedelta(minutes=i)) for i in range(5)]
    visits += [visit("t-b", link_id, same), visit("t-a", link_id, same), visit("t-c", link_id, same)]  # a tie
    await store.record_clicks([*visits, visit("x", other, T0)])
    expected = ["t-a", "t-b", "t-c", "e4", "e3", "e2", "e1", "e0"]
    seen, cursor, pages = [], None, 0
    while True:
        page = await store.list_visits(link_id, limit=3, cursor=cursor)
        seen += [v.event_id for v in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert (seen, pages) == (expected, 3)
    first = (await store.list_visits(link_id, limit=1)).items[0]
    assert first == visits[6]  # every field round-trips
    assert first.at.utcoffset() == timedelta(0)
    window = await store.list_visits(link_id, start=T0 + timedelta(minutes=1), end=T0 + timedelta(minutes=4))
    assert [v.event_id for v in window.items] == ["e3", "e2", "e1"] and window.next_cursor is None
    with pytest.raises(InvalidInput):
        await store.list_visits(link_id, cursor="not a cursor!")
    with pytest.raises(InvalidInput):
        await store.list_visits(link_id, limit=0)


async def test_global_stats_total_every_link_and_rank_the_top_links(store: Store) -> None:
    ids = {slug: await new_link(store, slug) for slug in ("few", "many", "mid", "tie", "gone")}
    counts = {"few": 1, "many": 9, "mid": 4, "tie": 4, "gone": 20}
    batch = [visit(f"{slug}{i}", ids[slug], T0, bot=i == 0, visitor=f"v{i}")
             for slug, n in counts.items() for i in range(n)]  # fmt: skip
    await store.record_clicks(batch)
    await store.delete_link("gone")
    stats = await store.global_stats(DAY0, DAY0 + timedelta(days=1), top=3)
    # Totals are the ALL_LINKS counters: a deleted link's past clicks still count there.
    assert (stats.total, stats.humans, stats.bots, stats.visitors, stats.links) == (38, 33, 5, 20, 4)
    assert [(t.slug, t.total, t.humans, t.bots) for t in stats.top_links] == [
        ("many", 9, 8, 1), ("mid", 4, 3, 1), ("tie", 4, 3, 1)
    ]  # fmt: skip
    assert [t.link_id for t in stats.top_links] == [ids["many"], ids["mid"], ids["tie"]]
    elsewhen = await store.global_stats(DAY0 + timedelta(days=1), DAY0 + timedelta(days=2))
    assert (elsewhen.total, elsewhen.top_links, elsewhen.links) == (0, [], 4)
    rolled = await store.rollup_daily(DAY0 + timedelta(days=1))
    assert rolled == 1 and await store.global_stats(DAY0, DAY0 + timedelta(days=1), top=3) == stats


async def test_deleting_a_link_deletes_its_visits_and_counters(store: Store) -> None:
    link_id = await new_link(store, "a")
    await store.record_clicks(mixed_visits(link_id, 50))
    await store.rollup_daily(DAY0 + timedelta(days=1))
    assert await store.delete_link("a")
    assert await stats_tuple(store, link_id, DAY0, DAY0 + timedelta(days=4)) == (0, 0, 0, 0)
    assert (await store.list_visits(link_id)).items == []
    assert (await store.global_stats(DAY0, DAY0 + timedelta(days=4))).total == 50


# do-not-track -------------------------------------------------------------------------------------


async def test_do_not_track_round_trips_and_can_be_changed(store: Store) -> None:
    quiet = await store.create_link(NewLink(slug="quiet", url="https://example.com/", do_not_track=True))
    loud = await store.create_link(NewLink(slug="loud", url="https://example.com/"))
    assert (quiet.do_not_track, loud.do_not_track) == (True, False)
    assert (await store.get_link("quiet")) == quiet
    updated = await store.update_link("loud", {"do_not_track": True})
    assert updated is not None and updated.do_not_track and updated == await store.get_link("loud")
    updated = await store.update_link("loud", {"do_not_track": 0})
    assert updated is not None and updated.do_not_track is False
    listed = await store.list_links(LinkQuery(sort="slug"))
    assert [(item.slug, item.do_not_track) for item in listed.items] == [("loud", False), ("quiet", True)]


# several processes --------------------------------------------------------------------------------

_RECORDER = """
import asyncio, json, sys, time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from boltlink.store.clicks import Visit
from boltlink.store.postgres import PostgresStore
from boltlink.store.sqlite import SqliteStore

kind, target, start_at, first, last, links = sys.argv[1:]
links = json.loads(links)
t0 = datetime(2025, 3, 10, 9, 0, tzinfo=timezone.utc)

def visit(i):
    return Visit(event_id=f"ev{i:06d}", link_id=links[i % len(links)], at=t0 + timedelta(seconds=17 * i),
                 referrer=None, referrer_host=None, user_agent="ua", browser="Firefox", os="Linux", device="Other",
                 bot=i % 5 == 0, ip=None, country=None, visitor=f"v{i % 300}")

async def main():
    store = SqliteStore(Path(target)) if kind == "sqlite" else PostgresStore(target)
    await store.open()
    visits = [visit(i) for i in range(int(first), int(last))]
    await asyncio.sleep(max(0.0, float(start_at) - time.time()))  # both start at the same instant
    recorded = 0
    for i in range(0, len(visits), 200):
        recorded += await store.record_clicks(visits[i : i + 200])
    await store.close()
    print(json.dumps({"recorded": recorded}))

asyncio.run(main())
"""


async def test_two_processes_recording_at_once_count_every_visit_exactly_once(store: Store, backend: Backend) -> None:
    if backend.name == "memory":
        pytest.skip("a MemoryStore is not shared between processes")
    links = [await new_link(store, f"l{i}") for i in range(7)]
    ranges = [(0, 3000), (2000, 5000)]  # 1,000 event ids recorded by both
    start_at = str(time.time() + 2.0)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _RECORDER, backend.dialect, backend.target, start_at, str(a), str(b),
            json.dumps(links), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        for a, b in ranges
    ]
    try:
        outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 120)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    recorded = [json.loads(out)["recorded"] for out, _ in outputs]
    assert sum(recorded) == 5000

    expected_bots = sum(1 for i in range(5000) if i % 5 == 0)
    start, end = DAY0, DAY0 + timedelta(days=2)
    everything = await store.global_stats(start, end, top=10)
    assert (everything.total, everything.bots) == (5000, expected_bots)
    assert sum(t.total for t in everything.top_links) == 5000
    for n, link_id in enumerate(links):
        mine = [i for i in range(5000) if i % len(links) == n]
        stats = await store.link_stats(link_id, start, end, "hour")
        assert (stats.total, stats.bots) == (len(mine), sum(1 for i in mine if i % 5 == 0))
        seen = {((datetime(2025, 3, 10, 9, tzinfo=UTC) + timedelta(seconds=17 * i)).date(), i % 300) for i in mine}
        assert stats.visitors == len(seen)  # unique per (day, visitor), whichever process saw it first
        link = await store.get_link(f"l{n}")
        assert link is not None and link.clicks_total == len(mine)
    assert len((await store.list_visits(links[0], limit=10_000)).items) == len(range(0, 5000, len(links)))


def test_all_links_is_link_zero() -> None:
    assert ALL_LINKS == 0  # the migrations and every backend's SQL rely on it
