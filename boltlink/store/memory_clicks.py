"""The ClickStore half of MemoryStore (memory.py mixes it in): the same tables, as dicts.

Buckets are unix seconds as in SQLite. record_clicks computes everything
before it changes anything, and nothing awaits in between, so a batch is
all or nothing here too.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from boltlink.errors import StoreError
from boltlink.store.base import Link
from boltlink.store.clicks import ClickStore, GlobalStats, Granularity, LinkStats, LinkTotal, Visit, VisitPage
from boltlink.store.clicks_common import (
    DAY,
    HOUR,
    Counts,
    check_limit,
    decode_cursor,
    encode_cursor,
    epoch,
    floor,
    link_stats,
    offset_rows,
    plan,
    rank_links,
    tally,
    totals,
    unique_visits,
)
from boltlink.store.common import utc


class MemoryClickStore(ClickStore):
    """Mixed into MemoryStore, which provides _links (slug -> Link) and _check_open()."""

    _links: dict[str, Link]
    _check_open: Callable[[], None]

    def _init_clicks(self) -> None:
        self._visits: dict[str, Visit] = {}
        self._hourly: dict[tuple[int, int], Counts] = {}
        self._daily: dict[tuple[int, int], Counts] = {}
        self._values_hourly: dict[tuple[int, int, str, str], int] = {}
        self._values_daily: dict[tuple[int, int, str, str], int] = {}
        self._visitors: set[tuple[int, int, str]] = set()
        self._offsets: dict[tuple[str, str], int] = {}
        self._watermark: int | None = None

    def _forget_link(self, link_id: int) -> None:
        """A deleted link's visits and counter rows; the ALL_LINKS rows keep counting its past clicks."""
        self._visits = {k: v for k, v in self._visits.items() if v.link_id != link_id}
        for table in (self._hourly, self._daily, self._values_hourly, self._values_daily):
            for key in [k for k in table if k[0] == link_id]:
                del table[key]
        self._visitors = {k for k in self._visitors if k[0] != link_id}

    async def record_clicks(self, visits: Sequence[Visit], *, source: str | None = None,
                            offsets: Mapping[str, int] | None = None, staged: asyncio.Event | None = None) -> int:
        if staged is not None:
            staged.set()
        self._check_open()
        positions = offset_rows(source, offsets)
        if any(position < 0 for _, _, position in positions):  # the CHECK constraint of the databases
            raise StoreError("An offset must not be negative.")
        by_id = {link.id: slug for slug, link in self._links.items()}
        new = [v for v in unique_visits(visits) if v.link_id in by_id and v.event_id not in self._visits]
        counts = tally(new)
        counts.add_new_visitors(k for k in counts.visitors if k not in self._visitors)
        days, day_values = counts.daily(self._watermark)
        # Nothing can fail from here on.
        for visit in new:
            self._visits[visit.event_id] = visit
        self._visitors.update(counts.visitors)
        _add_counts(self._hourly, counts.hourly)
        _add_counts(self._daily, days)
        _add_values(self._values_hourly, counts.breakdown)
        _add_values(self._values_daily, day_values)
        for link_id, (total, humans, bots) in counts.links.items():
            slug = by_id[link_id]
            link = self._links[slug]
            self._links[slug] = dataclasses.replace(
                link, clicks_total=link.clicks_total + total, clicks_humans=link.clicks_humans + humans,
                clicks_bots=link.clicks_bots + bots,
            )  # fmt: skip
        for source_name, name, position in positions:
            self._offsets[(source_name, name)] = position
        return len(new)

    async def consumer_offsets(self, source: str) -> dict[str, int]:
        self._check_open()
        return {name: position for (src, name), position in self._offsets.items() if src == source}

    async def forget_offsets(self, source: str, names: Sequence[str]) -> None:
        self._check_open()
        for name in names:
            self._offsets.pop((source, name), None)

    async def link_stats(self, link_id: int, start: datetime, end: datetime, granularity: Granularity,
                         top: int = 10) -> LinkStats:
        self._check_open()
        span = plan(start, end, granularity, self._watermark)
        rows: list[tuple[int, int, int, int, int]] = []
        values: list[tuple[str, str, int]] = []
        for part, counts, breakdown in ((span.daily, self._daily, self._values_daily),
                                        (span.hourly, self._hourly, self._values_hourly)):  # fmt: skip
            if part is None:
                continue
            low, high = part
            rows += [(b, *c) for (link, b), c in counts.items() if link == link_id and low <= b < high]  # type: ignore[misc]
            values += [(d, v, c) for (link, b, d, v), c in breakdown.items() if link == link_id and low <= b < high]
        return link_stats(span, rows, values, top)

    async def list_visits(self, link_id: int, *, limit: int = 50, cursor: str | None = None,
                          start: datetime | None = None, end: datetime | None = None) -> VisitPage:
        self._check_open()
        check_limit(limit)
        after = decode_cursor(cursor) if cursor is not None else None
        chosen = [
            v for v in self._visits.values()
            if v.link_id == link_id and (start is None or v.at >= utc(start)) and (end is None or v.at < utc(end))
            and (after is None or v.at < after[0] or (v.at == after[0] and v.event_id > after[1]))
        ]  # fmt: skip
        chosen.sort(key=lambda v: v.event_id)
        chosen.sort(key=lambda v: v.at, reverse=True)  # stable: at desc, then event_id asc
        items = chosen[:limit]
        more = len(chosen) > limit
        return VisitPage(items, encode_cursor(items[-1].at, items[-1].event_id) if more else None)

    async def global_stats(self, start: datetime, end: datetime, top: int = 10) -> GlobalStats:
        self._check_open()
        span = plan(start, end, "day", self._watermark)
        everything: list[Counts] = []
        sums: dict[int, list[int]] = {}
        by_id = {link.id: link.slug for link in self._links.values()}
        for part, counts in ((span.daily, self._daily), (span.hourly, self._hourly)):
            if part is None:
                continue
            for (link, bucket), c in counts.items():
                if not part[0] <= bucket < part[1]:
                    continue
                if link == 0:
                    everything.append(c)
                elif link in by_id:
                    into = sums.setdefault(link, [0, 0, 0])
                    for i in range(3):
                        into[i] += c[i]
        total, humans, bots, visitors = totals(everything)
        ranked = [LinkTotal(link, by_id[link], *c) for link, c in rank_links(sums, top)]
        return GlobalStats(total=total, humans=humans, bots=bots, visitors=visitors, links=len(self._links),
                           top_links=ranked)  # fmt: skip

    async def rollup_daily(self, before: datetime) -> int:
        self._check_open()
        target = floor(epoch(before), DAY)
        if self._watermark is None:
            first = min((hour for link, hour in self._hourly if link == 0), default=None)
            self._watermark = target if first is None else min(floor(first, DAY), target)
        rolled = 0
        while self._watermark < target:
            day = self._watermark
            for (link, hour), c in self._hourly.items():
                if day <= hour < day + DAY:
                    _add_counts(self._daily, {(link, day): c})
            for (link, hour, dim, value), c in self._values_hourly.items():
                if day <= hour < day + DAY:
                    _add_values(self._values_daily, {(link, day, dim, value): c})
            self._watermark = day + DAY
            rolled += 1
        return rolled

    async def prune(self, *, visits_before: datetime, hourly_before: datetime) -> tuple[int, int]:
        self._check_open()
        cut = utc(visits_before)
        old = [k for k, v in self._visits.items() if v.at < cut]
        for key in old:
            del self._visits[key]
        visitors_cut = floor(epoch(visits_before), DAY)
        self._visitors = {k for k in self._visitors if k[1] >= visitors_cut}
        hourly = 0
        if self._watermark is not None:
            hourly_cut = min(floor(epoch(hourly_before), HOUR), self._watermark)
            for table in (self._hourly, self._values_hourly):
                gone = [k for k in table if k[1] < hourly_cut]
                for key in gone:
                    del table[key]
                hourly += len(gone)
        return len(old), hourly


def _add_counts(table: dict[tuple[int, int], Counts], rows: Mapping[tuple[int, int], Counts]) -> None:
    for key, counts in rows.items():
        into = table.setdefault(key, [0, 0, 0, 0])
        for i in range(4):
            into[i] += counts[i]


def _add_values(table: dict[tuple[int, int, str, str], int], rows: Mapping[tuple[int, int, str, str], int]) -> None:
    for key, count in rows.items():
        table[key] = table.get(key, 0) + count
