"""The redirect hot path, answered before Quart: GET/HEAD /<slug> of a cached, plain link.

Quart's request and response objects, routing and hooks cost more than the
rest of a redirect together (scripts/bench.py has the figures). For the common
case — a link the cache holds, with no click allowance, not expired — this
middleware answers straight from the ASGI scope with exactly what
redirect.follow() would send: the same status, headers (redirect_headers) and
click event (click_event on the same scope). Everything else (unknown slugs,
expired links, max_clicks, any error) goes on to Quart, so there is one
definition of those answers. tests/web/test_fast_redirect.py compares the two.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from boltlink.errors import EventQueueError, StoreError
from boltlink.validation import RESERVED_SLUGS, SLUG_RE
from boltlink.web.clicks import click_event
from boltlink.web.redirect import redirect_headers
from boltlink.web.state import AppState
from boltlink.web.telemetry import ROUTE_KEY, ASGIApp

ROUTE = "/<slug>"  # the rule redirect.follow() is registered under, for the request counters


class FastRedirect:
    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state
        # Rate-limited redirects are all Quart's: web/throttle.py stays the one place that counts them.
        self.enabled = not state.config.rate_limit_redirects

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.enabled and scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            slug = scope["path"][1:]
            if SLUG_RE.fullmatch(slug) and slug.lower() not in RESERVED_SLUGS and await self._answer(slug, scope, send):
                return
        await self.app(scope, receive, send)

    async def _answer(self, slug: str, scope: dict[str, Any], send: Any) -> bool:
        """Redirect and return True, or return False for Quart to answer."""
        state = self.state
        try:
            link = await state.links.get(slug)
        except StoreError:
            return False  # Quart answers with the problem document
        if link is None or link.max_clicks is not None or link.is_expired(datetime.now(timezone.utc)):
            return False
        scope[ROUTE_KEY] = ROUTE
        config = state.config
        if scope["method"] == "GET" and not (link.do_not_track or config.do_not_track):
            try:
                # Awaited before the response exists: once the visitor is redirected, the click is safe.
                await state.sink.emit(click_event(scope, link, config, state.trusted))
            except EventQueueError:
                # Not queued: Quart answers (and tries once more), so the 503 problem of a click that
                # cannot be counted has one definition, redirect.follow()'s.
                return False
            state.counters.clicks_queued += 1
        headers = [(name.lower().encode("latin-1"), value.encode("latin-1"))  # lower case, as Quart sends them
                   for name, value in redirect_headers(link, scope["query_string"].decode("latin-1"))]
        await send({"type": "http.response.start", "status": link.redirect_status,
                    "headers": [*headers, *_BODYLESS]})
        await send({"type": "http.response.body", "body": b""})
        return True


# What Quart adds to the empty body of redirect.follow()'s Response.
_BODYLESS = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", b"0")]
