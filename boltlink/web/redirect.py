"""GET and HEAD /<slug>: the hot path that sends a visitor on to the target."""

from __future__ import annotations

from datetime import datetime, timezone

from quart import Blueprint, Response, request
from quart_schema import document_response, tag

from boltlink.errors import ClickLimitReached, LinkExpired, LinkNotFound
from boltlink.store.base import Link
from boltlink.useragent import is_bot
from boltlink.validation import SLUG_RE
from boltlink.web.models import Problem
from boltlink.web.state import app_state

blueprint = Blueprint("redirect", __name__)


@blueprint.get("/<slug>")
@tag(["redirect"])
@document_response(Problem, 404)
@document_response(Problem, 410)
async def follow(slug: str) -> Response:
    """Follow a short link: its redirect status and Location (HEAD too).

    410 once expired or out of clicks. Browsers get an HTML error page, other clients problem JSON.
    """
    if not SLUG_RE.fullmatch(slug):
        raise LinkNotFound(slug)
    store = app_state().store
    link = await store.get_link(slug)
    if link is None:
        raise LinkNotFound(slug)
    if link.is_expired(datetime.now(timezone.utc)):
        raise LinkExpired(slug)
    if link.max_clicks is not None:
        # Only a person's GET spends the allowance; HEAD and bots may look without using it up.
        if request.method == "GET" and not is_bot(request.headers.get("User-Agent")):
            if not await store.consume_click(slug):
                raise ClickLimitReached(slug)
        elif link.is_exhausted():
            raise ClickLimitReached(slug)
    return Response(
        "",
        status=link.redirect_status,
        # no-store: a cached redirect would hide clicks and outlive edits of the target.
        headers={"Location": target_of(link, request.query_string.decode("latin-1")),
                 "Cache-Control": "private, no-store"},
    )


def target_of(link: Link, query: str) -> str:
    """The link's URL, with the visitor's query string appended when forward_query is on."""
    if not link.forward_query or not query:
        return link.url
    url, hash_, fragment = link.url.partition("#")
    joiner = "&" if "?" in url else "?"
    if url.endswith(("?", "&")):
        joiner = ""
    return f"{url}{joiner}{query}{hash_}{fragment}"
