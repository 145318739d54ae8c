"""What every ClickStore backend shares: time buckets, grouping a batch, assembling statistics, cursors.

The backends only move rows; the arithmetic lives here, once, so memory,
SQLite and PostgreSQL cannot count differently. The rules they share
(tests/store/test_click_store.py holds every backend to them):

Ranges. Buckets are identified by their start in whole unix seconds (UTC):
an hour is a multiple of 3600, a day of 86400. A range [start, end) covers
every bucket it overlaps: start is aligned down and end *up*, so "until
now" includes the current hour or day (aligning end down would hide the
clicks of the last minutes); an empty range (end <= start) has no bucket.
Counts are per bucket, so a point counts its whole hour or day.

Where reads come from. Granularity "day": clicks_daily/breakdown_daily for
days before the rollup watermark, the hourly tables from it on. Granularity
"hour": the hourly tables, series and top values alike, so hours that
prune() removed (only ones before the watermark) read as zero: hourly detail
lasts as long as hourly retention. global_stats works like "day". The SQL
stores read the top values of rolled-up days mostly inside an hourly range
from breakdown_daily (see breakdown_parts): the same sums, and a day has about
as many daily rows as one hour has hourly ones.

Late visits. A visit for a day already rolled up is added to the daily
tables as well as to the hourly ones, so reads stay exact whenever it comes.

Visitors. A (link, day, visitor) key counts once, in the hour of its
earliest visit in the batch that first saw it; summed over a day that is
the day's unique visitors. ALL_LINKS counts a visitor once per day however
many links they clicked. prune() forgets the keys of days before
visits_before, so a visit arriving later than the visit retention for such
a day would count its visitor again.

Deleted links. delete_link removes the link's visits and counter rows in
its own transaction (no foreign keys: see the 0002 migrations); the
ALL_LINKS rows keep counting its past clicks, so global totals do not
drop, while top_links (joined with links) no longer lists it. Visits for a
link that does not exist (any more) are dropped by record_clicks.

Offsets are stored as given for their source (a negative one is refused,
failing the whole batch); offsets without a source are a ValueError.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from boltlink.errors import InvalidInput
from boltlink.store.clicks import ALL_LINKS, DIMENSIONS, Granularity, LinkStats, SeriesPoint, Visit
from boltlink.store.common import utc

HOUR = 3600
DAY = 86400
STEP = {"hour": HOUR, "day": DAY}

Counts = list[int]  # [total, humans, bots, visitors]


def epoch(value: datetime) -> int:
    """Whole unix seconds of an instant (a naive datetime is UTC), rounded down."""
    return int(utc(value).timestamp() // 1)


def floor(seconds: int, step: int) -> int:
    return seconds - seconds % step


def ceil(seconds: int, step: int) -> int:
    return -(-seconds // step) * step


def instant(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def check_granularity(granularity: str) -> int:
    step = STEP.get(granularity)
    if step is None:
        raise InvalidInput.field("granularity", "must be hour or day")
    return step


# recording ---------------------------------------------------------------------------


def unique_visits(visits: Iterable[Visit]) -> list[Visit]:
    """The batch with repeated event ids dropped (the first is kept), in order."""
    seen: dict[str, Visit] = {}
    for visit in visits:
        seen.setdefault(visit.event_id, visit)
    return list(seen.values())


def offset_rows(source: str | None, offsets: Mapping[str, int] | None) -> list[tuple[str, str, int]]:
    """(source, name, position) rows in key order; offsets without a source are a programming error."""
    if not offsets:
        return []
    if source is None:
        raise ValueError("offsets need a source")
    return sorted((source, name, position) for name, position in offsets.items())


@dataclass
class Tally:
    """The new visits of a batch, summed the way the counter tables store them."""

    hourly: dict[tuple[int, int], Counts]  # (link, hour) -> counts; ALL_LINKS rows included
    breakdown: dict[tuple[int, int, str, str], int]  # (link, hour, dimension, value) -> count
    links: dict[int, list[int]]  # link -> [total, humans, bots]
    visitors: dict[tuple[int, int, str], int]  # (link, day, visitor) -> first hour seen in this batch

    def add_new_visitors(self, new: Iterable[tuple[int, int, str]]) -> None:
        """Count the (link, day, visitor) keys storage did not know yet, in their first hour."""
        for key in new:
            self.hourly[(key[0], self.visitors[key])][3] += 1

    def daily(self, before: int | None) -> tuple[dict[tuple[int, int], Counts], dict[tuple[int, int, str, str], int]]:
        """Counts of hours before `before` (the rollup watermark), summed per day.

        Late visits for days already rolled up go to the daily tables as
        well, so reads (daily rows before the watermark) stay exact.
        """
        days: dict[tuple[int, int], Counts] = {}
        breakdown: dict[tuple[int, int, str, str], int] = {}
        if before is None:
            return days, breakdown
        for (link, hour), counts in self.hourly.items():
            if hour < before:
                into = days.setdefault((link, floor(hour, DAY)), [0, 0, 0, 0])
                for i in range(4):
                    into[i] += counts[i]
        for (link, hour, dim, value), count in self.breakdown.items():
            if hour < before:
                key = (link, floor(hour, DAY), dim, value)
                breakdown[key] = breakdown.get(key, 0) + count
        return days, breakdown


def tally(visits: Sequence[Visit]) -> Tally:
    """Sum new visits per (link, hour), per dimension value, per link; collect their visitor keys."""
    hourly: dict[tuple[int, int], Counts] = {}
    breakdown: dict[tuple[int, int, str, str], int] = {}
    links: dict[int, list[int]] = {}
    visitors: dict[tuple[int, int, str], int] = {}
    for visit in visits:
        hour = floor(epoch(visit.at), HOUR)
        link = visit.link_id
        bot = 2 if visit.bot else 1
        for key in ((link, hour), (ALL_LINKS, hour)):
            counts = hourly.get(key)
            if counts is None:
                counts = hourly[key] = [0, 0, 0, 0]
            counts[0] += 1
            counts[bot] += 1
        per_link = links.get(link)
        if per_link is None:
            per_link = links[link] = [0, 0, 0]
        per_link[0] += 1
        per_link[bot] += 1
        for dim in DIMENSIONS:
            key4 = (link, hour, dim, visit.dimension(dim))
            breakdown[key4] = breakdown.get(key4, 0) + 1
        day = floor(hour, DAY)
        for key3 in ((link, day, visit.visitor), (ALL_LINKS, day, visit.visitor)):
            first = visitors.get(key3)
            if first is None or hour < first:
                visitors[key3] = hour
    return Tally(hourly=hourly, breakdown=breakdown, links=links, visitors=visitors)


# reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Which buckets a statistics range has, and where each part of it is read from.

    Days before the rollup watermark come from the daily tables; everything
    from the watermark on (and every hour, for hourly granularity) from the
    hourly tables. Ranges are [first, stop) in unix seconds; None when empty.
    For hourly granularity, `rolled` spans the days before the watermark
    that are more than half inside the range: breakdown_parts may read
    their top values from the daily rows.
    """

    step: int
    first: int
    stop: int
    daily: tuple[int, int] | None
    hourly: tuple[int, int] | None
    rolled: tuple[int, int] | None = None

    @property
    def buckets(self) -> range:
        return range(self.first, self.stop, self.step)

    @property
    def hours_read(self) -> tuple[int, int] | None:
        """The clicks_hourly rows to read: the hourly part, widened to whole `rolled` days (breakdown_parts
        checks each such day's hourly totals against its daily total); link_stats ignores the extra hours."""
        if self.hourly is None or self.rolled is None:
            return self.hourly
        return min(self.hourly[0], self.rolled[0]), max(self.hourly[1], self.rolled[1])


def plan(start: datetime, end: datetime, granularity: Granularity | str, watermark: int | None) -> Plan:
    step = check_granularity(granularity)
    end_seconds = epoch(end) + (1 if utc(end).microsecond else 0)  # hh:00:00.5 overlaps the hh:00 bucket
    first, stop = floor(epoch(start), step), ceil(end_seconds, step)
    if stop <= first or utc(end) <= utc(start):  # an empty range covers no bucket
        return Plan(step, first, first, None, None)
    if step == HOUR:
        return Plan(step, first, stop, None, (first, stop), _rolled_days(first, stop, watermark))
    if watermark is None or watermark <= first:
        return Plan(step, first, stop, None, (first, stop))
    if watermark >= stop:
        return Plan(step, first, stop, (first, stop), None)
    return Plan(step, first, stop, (first, watermark), (watermark, stop))


def _mostly_inside(day: int, first: int, stop: int) -> bool:
    """More than half of the day's hours are in [first, stop): its daily rows minus the hours outside
    are then fewer rows to sum than the hours inside (values repeat from hour to hour, so a day has
    not many more rows than an hour: ~560 against ~500 in scripts/bench_stats.py)."""
    return min(stop, day + DAY) - max(first, day) > DAY // 2


def _rolled_days(first: int, stop: int, watermark: int | None) -> tuple[int, int] | None:
    if watermark is None:
        return None
    # Only the two edge days can be partly inside, so the chosen days are one run.
    days = [d for d in range(floor(first, DAY), min(stop, watermark), DAY) if _mostly_inside(d, first, stop)]
    return (days[0], days[-1] + DAY) if days else None


Part = tuple[str, int, int, int]  # (table "daily" | "hourly", start, stop, sign): breakdown rows to add or subtract


def breakdown_parts(plan: Plan, hourly_rows: Iterable[Sequence[int]],
                    daily_rows: Iterable[Sequence[int]]) -> list[Part]:
    """Where a range's top values are read from: the signed sums of these parts' breakdown rows.

    hourly_rows: (hour, total, ...) clicks_hourly rows over plan.hours_read; daily_rows: (day, total)
    clicks_daily rows over plan.rolled. A rolled day of an hourly range is read as its daily rows
    minus the hours outside the range, but only when its hourly rows are all there, i.e. its hourly
    totals sum to its daily total: prune deletes hourly counter and breakdown rows together, and late
    visits add to both tables alike, so equal totals mean equal breakdowns. A day prune thinned reads
    its remaining hourly rows, as it always did.
    """
    if plan.rolled is None:
        return [(table, *part, 1) for table, part in (("daily", plan.daily), ("hourly", plan.hourly)) if part]
    per_day: dict[int, int] = {}
    for row in hourly_rows:
        day = floor(row[0], DAY)
        per_day[day] = per_day.get(day, 0) + row[1]
    daily = {row[0]: row[1] for row in daily_rows}
    complete = {day for day in range(*plan.rolled, DAY) if per_day.get(day, 0) == daily.get(day, 0)}
    parts: list[Part] = []
    for day in range(floor(plan.first, DAY), plan.stop, DAY):
        low, high = max(plan.first, day), min(plan.stop, day + DAY)
        if day in complete:
            parts.append(("daily", day, day + DAY, 1))
            parts += [("hourly", a, b, -1) for a, b in ((day, low), (high, day + DAY)) if a < b]
        else:
            parts.append(("hourly", low, high, 1))
    merged: list[Part] = []
    for part in sorted(parts):
        last = merged[-1] if merged else None
        if last and (last[0], last[3], last[2]) == (part[0], part[3], part[1]):
            merged[-1] = (last[0], last[1], part[2], last[3])
        else:
            merged.append(part)
    return merged


def link_stats(plan: Plan, rows: Iterable[tuple[int, int, int, int, int]],
               values: Iterable[tuple[str, str, int]], top: int) -> LinkStats:
    """Statistics from counter rows (bucket start, total, humans, bots, visitors) and
    breakdown rows (dimension, value, count); rows may repeat a bucket or a value: they are summed.
    Counter rows of buckets outside the range are ignored."""
    buckets: dict[int, Counts] = {b: [0, 0, 0, 0] for b in plan.buckets}
    for start, total, humans, bots, visitors in rows:
        counts = buckets.get(floor(start, plan.step))
        if counts is not None:
            counts[0] += total
            counts[1] += humans
            counts[2] += bots
            counts[3] += visitors
    series = [SeriesPoint(instant(b), *counts) for b, counts in buckets.items()]
    sums = [sum(point[i] for point in buckets.values()) for i in range(4)]
    return LinkStats(total=sums[0], humans=sums[1], bots=sums[2], visitors=sums[3], series=series,
                     top=top_values(values, top))


def top_values(rows: Iterable[tuple[str, str, int]], top: int) -> dict[str, list[tuple[str, int]]]:
    """Per dimension, the `top` values by count (desc), ties by value; every dimension present.
    Values that sum to zero (a day's rows minus its hours outside the range) are left out."""
    sums: dict[str, dict[str, int]] = {dim: {} for dim in DIMENSIONS}
    for dim, value, count in rows:
        per_dim = sums.setdefault(dim, {})
        per_dim[value] = per_dim.get(value, 0) + count
    return {
        dim: sorted(((v, c) for v, c in values.items() if c > 0), key=lambda vc: (-vc[1], vc[0]))[: max(top, 0)]
        for dim, values in sums.items()
    }


def totals(rows: Iterable[Sequence[int]]) -> tuple[int, int, int, int]:
    total = humans = bots = visitors = 0
    for row in rows:
        total += row[0]
        humans += row[1]
        bots += row[2]
        visitors += row[3]
    return total, humans, bots, visitors


def rank_links(sums: Mapping[int, Sequence[int]], top: int) -> list[tuple[int, Sequence[int]]]:
    """(link, [total, humans, bots]) with the most clicks first, ties by link id; links with none left out."""
    ranked = sorted(((link, c) for link, c in sums.items() if c[0] > 0), key=lambda lc: (-lc[1][0], lc[0]))
    return ranked[: max(top, 0)]


# cursors -------------------------------------------------------------------------------


def encode_cursor(at: datetime, event_id: str) -> str:
    """Where the next page of visits starts: after (at, event_id) in (at desc, event_id asc) order."""
    text = f"{utc(at).isoformat(timespec='microseconds')}|{event_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, event_id = text.split("|", 1)
        return utc(datetime.fromisoformat(at)), event_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput.field("cursor", "is not a cursor this API returned") from None


def check_limit(limit: int) -> None:
    if limit < 1:
        raise InvalidInput.field("limit", "must be at least 1")
