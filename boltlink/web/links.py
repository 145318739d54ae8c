"""/api/v1/links: create, list, read, change and delete links."""

from __future__ import annotations

from pydantic import ValidationError
from quart import Blueprint, Response, request
from quart_schema import (
    document_request,
    document_response,
    security_scheme_blueprint,
    tag_blueprint,
    validate_querystring,
    validate_request,
    validate_response,
)

from boltlink import shortener
from boltlink.errors import BoltlinkError, DeleteProtected, LinkNotFound
from boltlink.store.base import LinkQuery
from boltlink.web.auth import require_scope
from boltlink.web.bulk import read_bulk_rows
from boltlink.web.models import (
    BulkResult,
    BulkRowResult,
    DeleteQuery,
    LinkIn,
    LinkList,
    LinkListQuery,
    LinkOut,
    LinkPatch,
    Pagination,
    Problem,
)
from boltlink.web.openapi import document_media
from boltlink.web.problems import invalid_input_from
from boltlink.web.state import app_state
from boltlink.web.throttle import limit_writes

blueprint = Blueprint("links", __name__, url_prefix="/api/v1/links")
tag_blueprint(blueprint, ["links"])
security_scheme_blueprint(blueprint, [{"apiKey": []}, {"bearer": []}])


def short_base() -> str:
    """Where short links live: base_url when configured, else the host this request came to."""
    base = app_state().config.base_url or request.host_url
    return base.rstrip("/") + "/"


def link_rules() -> shortener.LinkRules:
    return shortener.LinkRules.for_config(app_state().config, f"{request.scheme}://{request.host}")


def draft_of(data: LinkIn) -> shortener.LinkDraft:
    return shortener.LinkDraft(
        url=data.url,
        slug=data.slug,
        title=data.title,
        tags=tuple(data.tags),
        expires_at=data.expires_at,
        max_clicks=data.max_clicks,
        redirect_status=data.redirect_status,
        forward_query=data.forward_query,
        do_not_track=data.do_not_track,
    )


@blueprint.post("")
@require_scope("links:write")
@limit_writes
@validate_request(LinkIn)
@validate_response(LinkOut, 201)
@document_response(Problem, 400)
@document_response(Problem, 409)
@document_response(Problem, 422)
async def create_link(data: LinkIn) -> tuple[LinkOut, int, dict[str, str]]:
    """Shorten a URL.

    409 when the slug is taken; 422 names each invalid field.
    """
    link = await shortener.create_link(app_state().store, draft_of(data), link_rules())
    return LinkOut.of(link, short_base()), 201, {"Location": f"/api/v1/links/{link.slug}"}


@blueprint.get("")
@require_scope("links:read")
@validate_querystring(LinkListQuery)
@validate_response(LinkList)
@document_response(Problem, 422)
async def list_links(query_args: LinkListQuery) -> LinkList:
    """List links, newest first by default; search with q, filter by tag, page through."""
    page = await app_state().store.list_links(
        LinkQuery(q=query_args.q or None, tag=query_args.tag or None, sort=query_args.sort,
                  page=query_args.page, limit=query_args.limit)
    )
    base = short_base()
    return LinkList(
        items=[LinkOut.of(link, base) for link in page.items],
        pagination=Pagination(page=page.page, limit=page.limit, total=page.total, pages=page.pages),
    )


@blueprint.get("/<slug>")
@require_scope("links:read")
@validate_response(LinkOut)
@document_response(Problem, 404)
async def get_link(slug: str) -> LinkOut:
    """One link with its click totals."""
    link = await app_state().store.get_link(slug)
    if link is None:
        raise LinkNotFound(slug)
    return LinkOut.of(link, short_base())


@blueprint.patch("/<slug>")
@require_scope("links:write")
@limit_writes
@validate_request(LinkPatch)
@validate_response(LinkOut)
@document_response(Problem, 400)
@document_response(Problem, 404)
@document_response(Problem, 422)
async def update_link(slug: str, data: LinkPatch) -> LinkOut:
    """Change some of a link's fields. The slug itself cannot change."""
    changes = data.model_dump(exclude_unset=True)
    state = app_state()
    link = await shortener.update_link(state.store, slug, changes, link_rules())
    state.links.forget(slug)  # at once here; the other workers within a second (link_cache.py)
    if link is None:
        raise LinkNotFound(slug)
    return LinkOut.of(link, short_base())


@blueprint.delete("/<slug>")
@require_scope("links:write")
@limit_writes
@validate_querystring(DeleteQuery)
@document_media(204, "Deleted.")
@document_response(Problem, 404)
@document_response(Problem, 409)
@document_response(Problem, 422)
async def delete_link(slug: str, query_args: DeleteQuery) -> Response:
    """Delete a link; its short URL answers 404 from then on.

    409 for a link with more clicks than the server's delete_protection_clicks, unless force=true.
    """
    state = app_state()
    threshold = state.config.delete_protection_clicks
    if threshold and not query_args.force:
        # A link many people follow is rarely deleted on purpose (the same guard as Shlink's).
        link = await state.store.get_link(slug)
        if link is None:
            raise LinkNotFound(slug)
        if link.clicks_total > threshold:
            raise DeleteProtected(slug, link.clicks_total, threshold)
    deleted = await state.store.delete_link(slug)
    state.links.forget(slug)
    if not deleted:
        raise LinkNotFound(slug)
    return Response("", status=204)


@blueprint.post("/bulk")
@require_scope("links:write")
@limit_writes
@document_request(list[LinkIn])  # type: ignore[arg-type]
@validate_response(BulkResult)
@document_response(Problem, 400)
@document_response(Problem, 422)
async def bulk_create() -> BulkResult:
    """Create up to 1,000 links at once.

    Send a JSON array of link objects, or a CSV file (Content-Type text/csv, or
    a multipart upload in the field "file") whose header names the columns:
    url, slug, title, tags (separated by spaces or commas), expires_at,
    max_clicks, redirect_status, forward_query. Every row is answered; a bad
    row never stops the good ones.
    """
    rows = await read_bulk_rows()
    store, rules, base = app_state().store, link_rules(), short_base()
    results: list[BulkRowResult] = []
    for number, row in enumerate(rows, start=1):
        try:
            link = await shortener.create_link(store, draft_of(LinkIn.model_validate(row)), rules)
        except (ValidationError, BoltlinkError) as exc:  # a store outage too: each row says what happened
            error = invalid_input_from(exc) if isinstance(exc, ValidationError) else exc
            results.append(BulkRowResult(row=number, status="error", error=Problem(**error.problem_document())))
            continue
        results.append(BulkRowResult(row=number, status="created", link=LinkOut.of(link, base)))
    created = sum(1 for r in results if r.status == "created")
    return BulkResult(created=created, failed=len(results) - created, results=results)

