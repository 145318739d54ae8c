"""The redirect fast path answers exactly as the full Quart path would, click events included."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boltlink.config import Config
from boltlink.errors import EventQueueError
from boltlink.events.base import EventSink
from boltlink.shortener import LinkDraft, LinkRules, create_link
from boltlink.store.memory import MemoryStore
from boltlink.web import create_app
from boltlink.web.fast_redirect import FastRedirect

CHROME = b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"


class RefusingSink(EventSink):
    """A sink whose disk is full."""

    def __init__(self) -> None:
        self.attempts = 0

    async def emit(self, event: Any) -> None:
        self.attempts += 1
        raise EventQueueError("cannot write click events to /data/spool: No space left on device")


class RecordingSink(EventSink):
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def emit(self, event: Any) -> None:
        self.events.append(event)


def scope(path: str, method: str = "GET", query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None,
          client: str = "203.0.113.9") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": query,
            "headers": [(b"host", b"sho.rt"), *(headers or [])], "http_version": "1.1", "scheme": "http",
            "server": ("127.0.0.1", 5000), "client": (client, 40000), "root_path": "", "asgi": {"version": "3.0"}}


async def call(app: Any, request_scope: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    messages: list[dict[str, Any]] = []
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(dict(request_scope), receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], sorted(start["headers"]), body


class Pair:
    """One app; `fast` is its FastRedirect layer, `full` the Quart app behind it."""

    def __init__(self, config: Config) -> None:
        self.store = MemoryStore()
        self.sink = RecordingSink()
        self.config = config
        self.app = create_app(config, self.store, self.sink)
        layer = self.app.asgi_app
        while not isinstance(layer, FastRedirect):
            layer = layer.app
        self.fast, self.full = layer, layer.app

    async def start(self) -> Pair:
        await self.store.open()
        await self.app.startup()
        return self

    async def add(self, **fields: Any) -> None:
        await create_link(self.store, LinkDraft(**fields), LinkRules.for_config(self.config))

    async def both(self, request_scope: dict[str, Any]) -> tuple[Any, Any]:
        """(answer, click events) from the fast path, then the same from the full path."""
        results = []
        for app in (self.fast, self.full):
            self.sink.events.clear()
            answer = await call(app, request_scope)
            events = [dataclasses.replace(e, id="-", at=0.0) for e in self.sink.events]
            results.append((answer, events))
        return results[0], results[1]


@pytest.fixture
async def pair(tmp_path) -> Pair:
    return await Pair(Config(data_dir=str(tmp_path))).start()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_each_redirect_status_matches(pair, status):
    await pair.add(url="https://example.com/landing", slug=f"s{status}", redirect_status=status)
    fast, full = await pair.both(scope(f"/s{status}", headers=[(b"user-agent", CHROME)]))
    assert fast == full
    (answer_status, headers, body), events = fast
    assert answer_status == status and (b"location", b"https://example.com/landing") in headers and body == b""
    assert len(events) == 1 and not events[0].bot


async def test_what_the_fast_path_leaves_to_quart_is_answered_the_same(pair):
    soon = datetime.now(timezone.utc) + timedelta(milliseconds=300)
    await pair.add(url="https://example.com", slug="expired", expires_at=soon)
    await asyncio.sleep(0.4)
    await pair.add(url="https://example.com", slug="limited", max_clicks=5)
    await pair.add(url="https://example.com", slug="private", do_not_track=True)
    for path in ("/expired", "/limited", "/private", "/unknown", "/health", "/api", "/a%20b", "/", "/x/y"):
        for method in ("GET", "HEAD"):
            fast, full = await pair.both(scope(path, method))
            if path != "/limited":  # each GET of a limited link spends one click: compare the shapes only
                assert fast == full, (path, method)
            else:
                assert fast[0][0] == full[0][0] == 302


async def test_head_is_not_a_click_on_either_path(pair):
    await pair.add(url="https://example.com", slug="go")
    fast, full = await pair.both(scope("/go", "HEAD"))
    assert fast == full and fast[1] == []


@pytest.mark.parametrize("query", [b"", b"utm=1", b"a=1&b=%20x"])
@pytest.mark.parametrize("url", ["https://example.com/p", "https://example.com/p?x=1", "https://example.com/p#frag"])
async def test_forwarded_queries_match(pair, query, url):
    slug = f"q{abs(hash((query, url))) % 10**6}"
    await pair.add(url=url, slug=slug, forward_query=True)
    fast, full = await pair.both(scope(f"/{slug}", query=query))
    assert fast == full


async def test_click_events_match_behind_trusted_proxies(tmp_path):
    config = Config(data_dir=str(tmp_path), trusted_proxies=["10.0.0.0/8"], trusted_country_header="CF-IPCountry",
                    ip_anonymization="full")
    pair = await Pair(config).start()
    await pair.add(url="https://example.com", slug="go")
    headers = [(b"user-agent", b"Googlebot/2.1"), (b"referer", b"https://news.example/item?id=1"),
               (b"x-forwarded-for", b"198.51.100.7, 10.1.1.1"), (b"cf-ipcountry", b"de")]
    fast, full = await pair.both(scope("/go", headers=headers, client="10.0.0.2"))
    assert fast == full
    [event] = fast[1]
    assert (event.ip, event.country, event.bot) == ("198.51.100.7", "DE", True)


async def test_global_do_not_track_holds_on_the_fast_path(tmp_path):
    pair = await Pair(Config(data_dir=str(tmp_path), do_not_track=True)).start()
    await pair.add(url="https://example.com", slug="go")
    fast, full = await pair.both(scope("/go"))
    assert fast == full and fast[1] == []


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.encode)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    slug=st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
    method=st.sampled_from(["GET", "HEAD"]),
    query=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20).map(str.encode),
    user_agent=header_text, referrer=header_text,
)
async def test_any_request_gets_the_same_answer_and_click_from_both_paths(pair, slug, method, query, user_agent,
                                                                           referrer):
    if await pair.store.get_link("known") is None:
        await pair.add(url="https://example.com/known", slug="known", forward_query=True)
    for path in (f"/{slug}", "/known"):
        request_scope = scope(path, method, query, [(b"user-agent", user_agent), (b"referer", referrer)])
        fast, full = await pair.both(request_scope)
        assert fast == full


# Targets beyond ASCII (IDN hosts, UTF-8 paths) and raw UTF-8 query bytes (HTTP/2 lets them through; h11
# answers 400): the fast path encoded Location as latin-1, so "€" raised there while Quart sent UTF-8
# bytes. Both must send the same ASCII URI.
iri_targets = st.builds(
    lambda host, path, query: f"https://{host}/{path}{query}",
    st.sampled_from(["example.com", "bücher.de", "例え.jp", "xn--bcher-kva.de", "[2001:db8::1]"]),
    st.text(st.characters(min_codepoint=0x21, exclude_categories=["Cc", "Cf", "Cs", "Zs", "Zl", "Zp"],
                          exclude_characters="\\#?"), max_size=12),
    st.sampled_from(["", "?q=日本", "?a=1&b=%C3%A9", "#frag-ü"]),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(url=iri_targets, forward_query=st.booleans(), query=st.text(
    st.characters(min_codepoint=0x21, exclude_categories=["Cc", "Cs", "Zs", "Zl", "Zp"]), max_size=8).map(str.encode))
async def test_any_target_and_query_bytes_give_the_same_ascii_location_on_both_paths(pair, url, forward_query,
                                                                                     query):
    slug = f"t{abs(hash((url, forward_query))) % 10**9}"
    if await pair.store.get_link(slug) is None:
        await pair.add(url=url, slug=slug, forward_query=forward_query)
    fast, full = await pair.both(scope(f"/{slug}", query=query))
    assert fast == full
    (status, headers, _), _events = fast
    location = dict(headers)[b"location"]
    assert status == 302 and location.isascii()
    if url.isascii() and not (forward_query and query):
        assert location == url.encode()  # a plain URL goes out exactly as it was stored


async def test_a_click_that_cannot_be_queued_gets_the_same_503_problem_from_both_paths(tmp_path):
    pair = await Pair(Config(data_dir=str(tmp_path))).start()
    await pair.add(url="https://example.com/landing", slug="full")
    refusing = RefusingSink()
    pair.fast.state.sink = refusing  # the app state both paths share
    request_scope = scope("/full", headers=[(b"user-agent", CHROME), (b"accept", b"application/json")])
    fast = await call(pair.fast, request_scope)
    full = await call(pair.full, request_scope)
    assert fast == full
    status, headers, body = fast
    assert status == 503 and (b"content-type", b"application/problem+json") in headers
    assert b"event-queue" in body and not any(name == b"location" for name, _ in headers)
    assert refusing.attempts == 3  # the fast path's, Quart's behind it, the full path's: none got a 302
