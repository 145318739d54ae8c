"""GET and HEAD /<slug>: the hot path that sends a visitor on to the target."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import quote

from quart import Blueprint, Response, request
from quart_schema import document_response, tag
from werkzeug.urls import iri_to_uri

from boltlink.errors import ClickLimitReached, EventQueueError, LinkExpired, LinkNotFound
from boltlink.store.base import Link
from boltlink.useragent import is_bot
from boltlink.validation import SLUG_RE
from boltlink.web.clicks import click_event
from boltlink.web.models import Problem
from boltlink.web.openapi import document_media
from boltlink.web.problems import QUERY_SAFE
from boltlink.web.state import app_state
from boltlink.web.throttle import limit_redirect

blueprint = Blueprint("redirect", __name__)


@blueprint.get("/<slug>")
@tag(["redirect"])
@document_media(301, "Moved permanently to the link's target (Location).")
@document_media(302, "Found: the link's target is in Location (the default).")
@document_media(307, "Temporary redirect to Location, keeping the method.")
@document_media(308, "Permanent redirect to Location, keeping the method.")
@document_response(Problem, 404)
@document_response(Problem, 410)
@document_response(Problem, 429)
@document_response(Problem, 503)
async def follow(slug: str) -> Response:
    """Follow a short link: its redirect status and Location (HEAD too).

    410 once expired or out of clicks; 429 past rate_limit_redirects; 503 while the click cannot be
    queued (disk full, read-only data directory). Browsers get an HTML error page, other clients problem JSON.
    """
    await limit_redirect()  # before the lookup: guessing slugs is what a redirect limit slows down
    if not SLUG_RE.fullmatch(slug):
        raise LinkNotFound(slug)
    state = app_state()
    store = state.store
    link = await state.links.get(slug)
    if link is None:
        raise LinkNotFound(slug)
    if link.is_expired(datetime.now(timezone.utc)):
        raise LinkExpired(slug)
    counts = request.method == "GET"  # HEAD is a look, not a click (link previews send it)
    if link.max_clicks is not None:
        # Only a person's GET spends the allowance; HEAD and bots may look without using it up.
        if counts and not is_bot(request.headers.get("User-Agent")):
            if not await store.consume_click(slug):
                raise ClickLimitReached(slug)
        elif link.is_exhausted():
            raise ClickLimitReached(slug)
    if counts and not (link.do_not_track or state.config.do_not_track):
        try:
            # Awaited before the response exists: once the visitor is redirected, the click is safe.
            await state.sink.emit(click_event(request.scope, link, state.config, state.trusted))
        except EventQueueError:
            # A click that cannot be queued (disk full, read-only data dir) gets a 503 problem (logged by
            # the error handler), not a redirect whose click would be lost without a word: every 302 is a
            # counted click. /ready fails too, so a load balancer sends visitors where they are counted.
            raise
        state.counters.clicks_queued += 1
    return Response("", status=link.redirect_status,
                    headers=redirect_headers(link, request.query_string.decode("latin-1")))


def redirect_headers(link: Link, query: str) -> list[tuple[str, str]]:
    """What a redirect says besides its status; fast_redirect.py sends the same."""
    # no-store: a cached redirect would hide clicks and outlive edits of the target.
    return [("Location", target_of(link, query)), ("Cache-Control", "private, no-store")]


def target_of(link: Link, query: str) -> str:
    """The link's URL, with the visitor's query string appended when forward_query is on.

    Location is sent as ASCII, whatever the target: a URL with an IDN host or UTF-8 in its path
    (an IRI) goes out in punycode and percent-encoding, and raw bytes of the visitor's query
    (decoded as latin-1) percent-encoded as they came; headers are bytes, and the fast path
    could not encode "€" at all.
    """
    target = link.url if link.url.isascii() else iri_to_uri(link.url)
    if not link.forward_query or not query:
        return target
    if not query.isascii():
        query = quote(query.encode("latin-1"), safe=QUERY_SAFE)  # as TolerantRequest does for Quart
    url, hash_, fragment = target.partition("#")
    joiner = "&" if "?" in url else "?"
    if url.endswith(("?", "&")):
        joiner = ""
    return f"{url}{joiner}{query}{hash_}{fragment}"
