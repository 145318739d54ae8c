"""The ClickStore interface: recording clicks exactly once, and reading statistics fast.

The aggregator is the only writer. It hands record_clicks() a batch of
Visits and, for the embedded spool, the byte offsets it has consumed; both
go into ONE transaction, so a batch replayed after a crash changes nothing
(event ids are unique in storage) and the offsets never run ahead of the
counters.

Tables (both backends):
    visits            one row per recorded click (event_id unique); pruned by retention
    clicks_hourly     (link_id, hour) -> total, humans, bots, visitors; link_id 0 = all links
    clicks_daily      the same per day, filled by rollup_daily() for complete days
    breakdown_hourly  (link_id, hour, dimension, value) -> count
    breakdown_daily   the same per day, filled by rollup_daily()
    visitors_daily    (link_id, day, visitor) seen: a new row adds 1 to visitors
    consumer_offsets  (source, name) -> offset: how far the aggregator has read
    rollup_state      the watermark: days before it are in the *_daily tables

Statistics never scan visits: they read the counter tables, daily rows
before the rollup watermark and hourly rows from it on, so reads are exact
whether or not the analytics worker has caught up.

Shared code and the rules every backend follows in the details (range
alignment, late visits, deleted links, retention): clicks_common.py.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

# What a click is broken down by, and the value used when it is unknown.
DIMENSIONS: tuple[str, ...] = ("referrer", "browser", "os", "device", "country")
UNKNOWN = "(unknown)"
DIRECT = "(direct)"  # referrer dimension of a click with no Referer header
ALL_LINKS = 0  # link_id of the rows that count every link together

Granularity = Literal["hour", "day"]


# Not frozen: the aggregator builds one per click, and a frozen dataclass sets each field through
# object.__setattr__ (3.2 us a visit against 0.6 us). Nothing changes a Visit after it is made.
@dataclass(slots=True)
class Visit:
    """One click as stored: the ClickEvent plus what the aggregator derived from it."""

    event_id: str
    link_id: int
    at: datetime  # timezone-aware UTC
    referrer: str | None  # at most 1,024 characters
    referrer_host: str | None
    user_agent: str | None
    browser: str | None
    os: str | None
    device: str | None
    bot: bool
    ip: str | None  # already anonymized (or None when IPs are dropped)
    country: str | None
    visitor: str  # hash of anonymized IP + user agent + day: counts unique visitors per day

    def dimension(self, name: str) -> str:
        if name == "referrer":
            return self.referrer_host or DIRECT
        value = getattr(self, name)
        return value or UNKNOWN


@dataclass(frozen=True)
class SeriesPoint:
    start: datetime
    total: int
    humans: int
    bots: int
    visitors: int


@dataclass(frozen=True)
class LinkStats:
    total: int
    humans: int
    bots: int
    visitors: int  # sum over the days of each day's unique visitors
    series: list[SeriesPoint]  # every hour/day of the range, zeros included
    top: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # dimension -> [(value, count)]


@dataclass(frozen=True)
class LinkTotal:
    link_id: int
    slug: str
    total: int
    humans: int
    bots: int


@dataclass(frozen=True)
class GlobalStats:
    total: int
    humans: int
    bots: int
    visitors: int
    links: int  # links that exist now
    top_links: list[LinkTotal]


@dataclass(frozen=True)
class VisitPage:
    items: list[Visit]
    next_cursor: str | None  # opaque; pass back to get the next (older) page


class ClickStore(abc.ABC):
    """Implemented by every LinkStore backend, on the same database."""

    @abc.abstractmethod
    async def record_clicks(self, visits: Sequence[Visit], *, source: str | None = None,
                            offsets: Mapping[str, int] | None = None, staged: asyncio.Event | None = None) -> int:
        """Record a batch in ONE transaction; return how many visits were new.

        A visit whose event_id is already stored, or whose link no longer
        exists, changes nothing. For each new visit: a visits row; +1 to
        total and to humans or bots in clicks_hourly for its link and for
        ALL_LINKS; +1 per dimension in breakdown_hourly; +1 visitors when
        (link, day, visitor) is new; and links.clicks_* updated. offsets
        (name -> position) are stored for source in the same transaction.

        staged, when given, is set once the rest of the work needs no CPU of
        this process (SQLite: the visits are written and the counters are
        single statements that run without the GIL; the other stores: at
        once). The aggregator enriches its next batch only then, so the two
        overlap instead of slowing each other.
        """

    @abc.abstractmethod
    async def consumer_offsets(self, source: str) -> dict[str, int]:
        """The offsets last stored for source (empty when none)."""

    @abc.abstractmethod
    async def forget_offsets(self, source: str, names: Sequence[str]) -> None:
        """Drop stored offsets (of spool files that are consumed and deleted)."""

    @abc.abstractmethod
    async def link_stats(self, link_id: int, start: datetime, end: datetime, granularity: Granularity,
                         top: int = 10) -> LinkStats:
        """Counts for one link in [start, end): totals, a series, and the top values per dimension."""

    @abc.abstractmethod
    async def list_visits(self, link_id: int, *, limit: int = 50, cursor: str | None = None,
                          start: datetime | None = None, end: datetime | None = None) -> VisitPage:
        """Raw visits of one link, newest first, paginated by an opaque cursor."""

    @abc.abstractmethod
    async def global_stats(self, start: datetime, end: datetime, top: int = 10) -> GlobalStats:
        """Totals across every link in [start, end), and the links with the most clicks then."""

    @abc.abstractmethod
    async def rollup_daily(self, before: datetime) -> int:
        """Sum complete days before `before` (a UTC midnight) from the hourly tables into the daily ones.

        Idempotent: moves the watermark forward only, and a day is rolled up once.
        Returns the number of days rolled up now.
        """

    @abc.abstractmethod
    async def prune(self, *, visits_before: datetime, hourly_before: datetime) -> tuple[int, int]:
        """Delete raw visits and visitors_daily rows before visits_before, and hourly rows before
        hourly_before (only hours already rolled up; counters in daily tables are kept).
        Returns (visits deleted, hourly rows deleted)."""
