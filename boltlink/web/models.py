"""Request and response bodies of the HTTP API; they also generate /openapi.json."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from boltlink.store.base import SORT_KEYS, Link
from boltlink.validation import MAX_CLICKS_LIMIT, MAX_PAGE, MAX_TAGS, SLUG_MAX_LENGTH, TITLE_MAX_LENGTH

RedirectStatus = Literal[301, 302, 307, 308]
SortKey = Literal[SORT_KEYS]  # type: ignore[valid-type]


class Strict(BaseModel):
    """Unknown fields are refused, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid")


class LinkIn(Strict):
    url: str = Field(description="Target: an http or https URL with a host.", examples=["https://example.com/a"])
    slug: str | None = Field(
        None,
        max_length=SLUG_MAX_LENGTH,
        description="Custom slug: letters, digits, '-' and '_'; case-sensitive. Generated when absent.",
    )
    title: str | None = Field(None, max_length=TITLE_MAX_LENGTH)
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
    expires_at: datetime | None = Field(
        None, description="After this moment the link answers 410. Without a zone, UTC."
    )
    max_clicks: int | None = Field(None, ge=1, le=MAX_CLICKS_LIMIT,
                                   description="At most this many human redirects, then 410.")
    redirect_status: RedirectStatus = 302
    forward_query: bool = Field(False, description="Append the short link's query string to the target.")
    do_not_track: bool = Field(False, description="Record no click events (and so no statistics) for this link.")


class LinkPatch(Strict):
    """Any subset of a link's fields; null clears title, expires_at and max_clicks."""

    url: str | None = None
    title: str | None = Field(None, max_length=TITLE_MAX_LENGTH)
    tags: list[str] | None = Field(None, max_length=MAX_TAGS)
    expires_at: datetime | None = None
    max_clicks: int | None = Field(None, ge=1, le=MAX_CLICKS_LIMIT)
    redirect_status: RedirectStatus | None = None
    forward_query: bool | None = None
    do_not_track: bool | None = None


class Clicks(BaseModel):
    total: int
    humans: int
    bots: int


class LinkOut(BaseModel):
    slug: str
    short_url: str
    url: str
    title: str | None
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    max_clicks: int | None
    redirect_status: int
    forward_query: bool
    do_not_track: bool
    clicks: Clicks

    @classmethod
    def of(cls, link: Link, short_base: str) -> LinkOut:
        return cls(
            slug=link.slug,
            short_url=short_base + link.slug,
            url=link.url,
            title=link.title,
            tags=list(link.tags),
            created_at=link.created_at,
            updated_at=link.updated_at,
            expires_at=link.expires_at,
            max_clicks=link.max_clicks,
            redirect_status=link.redirect_status,
            forward_query=link.forward_query,
            do_not_track=link.do_not_track,
            clicks=Clicks(total=link.clicks_total, humans=link.clicks_humans, bots=link.clicks_bots),
        )


class LinkListQuery(Strict):
    q: str | None = Field(None, max_length=256, description="Substring of url, slug or title (any case).")
    tag: str | None = None
    sort: SortKey = "-created_at"  # type: ignore[valid-type]
    page: int = Field(1, ge=1, le=MAX_PAGE)
    limit: int = Field(20, ge=1, le=100)


class DeleteQuery(Strict):
    force: bool = Field(
        False, description="Delete even a link with more clicks than the server's delete_protection_clicks."
    )


class Pagination(BaseModel):
    page: int
    limit: int
    total: int
    pages: int


class LinkList(BaseModel):
    items: list[LinkOut]
    pagination: Pagination


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, served as application/problem+json."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None


class BulkRowResult(BaseModel):
    row: int = Field(description="1-based position of the row in the upload (CSV: data rows, header excluded).")
    status: Literal["created", "error"]
    link: LinkOut | None = None
    error: Problem | None = None


class BulkResult(BaseModel):
    created: int
    failed: int
    results: list[BulkRowResult]


class Health(BaseModel):
    status: str
    version: str


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "draining", "unavailable"]
    store: str
    events: str
