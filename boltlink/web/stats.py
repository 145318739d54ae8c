"""Statistics (scope stats:read): per link, its raw visits (JSON or CSV), and across all links.

Everything here reads counter tables kept by the aggregator (store/clicks.py):
no request scans raw visits for a total, so the answers stay fast at any size.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, Response
from quart_schema import (
    document_response,
    security_scheme_blueprint,
    tag_blueprint,
    validate_querystring,
    validate_response,
)

from boltlink.errors import InvalidInput, LinkNotFound
from boltlink.store.base import Link
from boltlink.store.clicks import DIMENSIONS, ClickStore, Visit
from boltlink.validation import as_utc
from boltlink.web.auth import require_scope
from boltlink.web.models import Problem, Strict
from boltlink.web.openapi import document_media
from boltlink.web.state import app_state

blueprint = Blueprint("stats", __name__, url_prefix="/api/v1")
tag_blueprint(blueprint, ["stats"])
security_scheme_blueprint(blueprint, [{"apiKey": []}, {"bearer": []}])

MAX_POINTS = {"hour": 24 * 31, "day": 366 * 10}
DEFAULT_SPAN = {"hour": timedelta(hours=48), "day": timedelta(days=30)}
CSV_PAGE = 1000


class RangeQuery(Strict):
    from_: datetime | None = Field(None, alias="from", description="Start (inclusive), ISO-8601; without a zone, UTC.")
    to: datetime | None = Field(None, description="End (exclusive); default now.")
    top: int = Field(10, ge=1, le=100, description="How many top values per breakdown.")


class StatsQuery(RangeQuery):
    granularity: Literal["hour", "day"] = "day"


class VisitsQuery(Strict):
    from_: datetime | None = Field(None, alias="from")
    to: datetime | None = None
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = None
    format: Literal["json", "csv"] = "json"


class Counts(BaseModel):
    total: int
    humans: int
    bots: int
    visitors: int = Field(description="Unique visitors (anonymized IP + user agent), counted per day and summed.")


class Point(Counts):
    start: datetime


class TopValue(BaseModel):
    value: str
    count: int


class LinkStatsOut(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)  # "from" is a Python keyword, not a JSON one

    slug: str
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    granularity: Literal["hour", "day"]
    totals: Counts
    series: list[Point]
    top: dict[str, list[TopValue]]


class VisitOut(BaseModel):
    event_id: str
    at: datetime
    referrer: str | None
    referrer_host: str | None
    user_agent: str | None
    browser: str | None
    os: str | None
    device: str | None
    bot: bool
    ip: str | None
    country: str | None


class VisitList(BaseModel):
    items: list[VisitOut]
    next_cursor: str | None


class TopLink(BaseModel):
    slug: str
    total: int
    humans: int
    bots: int


class GlobalStatsOut(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    from_: datetime = Field(serialization_alias="from")
    to: datetime
    totals: Counts
    links: int
    top_links: list[TopLink]


# Clicks happen after the epoch; the series steps whole days past `to`, which year 9999 has no room for.
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9999, 1, 1, tzinfo=timezone.utc)


def resolve_range(start: datetime | None, end: datetime | None, granularity: str) -> tuple[datetime, datetime]:
    start, end = as_utc(start), as_utc(end)
    for field, moment in (("from", start), ("to", end)):
        if moment is not None and not EARLIEST <= moment <= LATEST:
            raise InvalidInput.field(field, f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    end = end or datetime.now(timezone.utc)
    start = start or end - DEFAULT_SPAN[granularity]
    if start >= end:
        raise InvalidInput.field("from", "must be before 'to'")
    step = timedelta(hours=1) if granularity == "hour" else timedelta(days=1)
    if (end - start) / step > MAX_POINTS[granularity]:
        raise InvalidInput.field("from", f"at most {MAX_POINTS[granularity]} {granularity}s per request")
    return start, end


async def link_of(slug: str) -> Link:
    link = await app_state().store.get_link(slug)
    if link is None:
        raise LinkNotFound(slug)
    return link


def clicks_store() -> ClickStore:
    return app_state().store  # type: ignore[return-value]  # every LinkStore backend is a ClickStore too


@blueprint.get("/links/<slug>/stats")
@require_scope("stats:read")
@validate_querystring(StatsQuery)
@validate_response(LinkStatsOut)
@document_response(Problem, 404)
@document_response(Problem, 422)
async def link_stats(slug: str, query_args: StatsQuery) -> LinkStatsOut:
    """Clicks of one link over time: totals, a series, and top referrers, browsers, OS, devices, countries."""
    link = await link_of(slug)
    start, end = resolve_range(query_args.from_, query_args.to, query_args.granularity)
    stats = await clicks_store().link_stats(link.id, start, end, query_args.granularity, top=query_args.top)
    return LinkStatsOut(
        slug=slug, from_=start, to=end, granularity=query_args.granularity,
        totals=Counts(total=stats.total, humans=stats.humans, bots=stats.bots, visitors=stats.visitors),
        series=[Point(start=p.start, total=p.total, humans=p.humans, bots=p.bots, visitors=p.visitors)
                for p in stats.series],
        top={dim: [TopValue(value=v, count=c) for v, c in stats.top.get(dim, [])] for dim in DIMENSIONS},
    )


@blueprint.get("/links/<slug>/visits")
@require_scope("stats:read")
@validate_querystring(VisitsQuery)
@document_response(VisitList)  # documented, not validated: the CSV answer is a plain Response
@document_media(200, "The visits as JSON, or with format=csv as a CSV file.", "text/csv")
@document_response(Problem, 404)
@document_response(Problem, 422)
async def link_visits(slug: str, query_args: VisitsQuery) -> VisitList | Response:
    """Raw visits of one link, newest first (kept visit_retention_days); ?format=csv exports them all."""
    link = await link_of(slug)
    start, end = as_utc(query_args.from_), as_utc(query_args.to)
    if query_args.format == "csv":
        # The store is looked up now: the rows are produced after this handler returns, outside its context.
        response = Response(_csv_rows(clicks_store(), link.id, start, end), content_type="text/csv; charset=utf-8")
        response.headers["Content-Disposition"] = f'attachment; filename="{slug}-visits.csv"'
        return response
    page = await clicks_store().list_visits(link.id, limit=query_args.limit, cursor=query_args.cursor,
                                            start=start, end=end)
    return VisitList(items=[_visit_out(v) for v in page.items], next_cursor=page.next_cursor)


CSV_COLUMNS = ("at", "referrer", "referrer_host", "browser", "os", "device", "bot", "country", "ip", "user_agent")


async def _csv_rows(store: ClickStore, link_id: int, start: datetime | None,
                    end: datetime | None) -> AsyncIterator[bytes]:
    """Stream every visit a page at a time, so an export of millions never sits in memory."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    cursor: str | None = None
    while True:
        page = await store.list_visits(link_id, limit=CSV_PAGE, cursor=cursor, start=start, end=end)
        for visit in page.items:
            writer.writerow([_csv_safe(getattr(visit, c)) if c != "at" else visit.at.isoformat()
                             for c in CSV_COLUMNS])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        cursor = page.next_cursor
        if cursor is None:
            return


def _csv_safe(value: object) -> object:
    """Spreadsheets run cells starting with = + - @ as formulas: a referrer must not become one."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _visit_out(visit: Visit) -> VisitOut:
    return VisitOut(event_id=visit.event_id, at=visit.at, referrer=visit.referrer,
                    referrer_host=visit.referrer_host, user_agent=visit.user_agent, browser=visit.browser,
                    os=visit.os, device=visit.device, bot=visit.bot, ip=visit.ip, country=visit.country)


@blueprint.get("/stats")
@require_scope("stats:read")
@validate_querystring(RangeQuery)
@validate_response(GlobalStatsOut)
@document_response(Problem, 422)
async def global_stats(query_args: RangeQuery) -> GlobalStatsOut:
    """Clicks across all links for a period, and the links clicked most."""
    start, end = resolve_range(query_args.from_, query_args.to, "day")
    stats = await clicks_store().global_stats(start, end, top=query_args.top)
    return GlobalStatsOut(
        from_=start, to=end,
        totals=Counts(total=stats.total, humans=stats.humans, bots=stats.bots, visitors=stats.visitors),
        links=stats.links,
        top_links=[TopLink(slug=t.slug, total=t.total, humans=t.humans, bots=t.bots) for t in stats.top_links],
    )
