"""What a redirect records: the client address behind trusted proxies, anonymized, and one event per click."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from werkzeug.datastructures import Headers

from boltlink.config import Config
from boltlink.events.model import ClickEvent
from boltlink.events.spool import spool_files
from boltlink.store.base import NewLink
from boltlink.store.memory import MemoryStore
from boltlink.web import clicks, create_app
from boltlink.web.clicks import anonymize, trusted_networks

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def request(peer: str | None, **headers: str) -> Any:
    """What client_address and country_of read from a Quart request."""
    return SimpleNamespace(remote_addr=peer, headers=Headers([(k.replace("_", "-"), v) for k, v in headers.items()]))


def client_address(req: Any, trusted: Any) -> str | None:
    return clicks.client_address(req.remote_addr, req.headers.get("X-Forwarded-For"), trusted)


def country_of(req: Any, config: Config) -> str | None:
    """As click_event reads it: only from the configured header."""
    header = config.trusted_country_header
    return clicks.country_of(req.headers.get(header)) if header else None


def trusting(*proxies: str):
    return trusted_networks(Config(trusted_proxies=list(proxies)))


# client_address -------------------------------------------------------------


def test_forwarded_for_from_an_untrusted_peer_is_ignored():
    forged = request("198.51.100.23", X_Forwarded_For="1.2.3.4")
    assert client_address(forged, trusting("10.0.0.0/8")) == "198.51.100.23"
    assert client_address(forged, ()) == "198.51.100.23"  # no trusted proxies configured


@pytest.mark.parametrize("proxies", [("10.0.0.1",), ("10.0.0.0/8",), ("192.0.2.0/24", "10.0.0.0/30")])
def test_forwarded_for_from_a_trusted_proxy_names_the_client(proxies):
    assert client_address(request("10.0.0.1", X_Forwarded_For="203.0.113.77"), trusting(*proxies)) == "203.0.113.77"


def test_a_trusted_proxy_without_forwarded_for_is_the_client():
    assert client_address(request("10.0.0.1"), trusting("10.0.0.1")) == "10.0.0.1"


def test_the_walk_passes_trusted_hops_and_stops_at_the_first_untrusted():
    trusted = trusting("10.0.0.0/8", "192.0.2.10")
    # The visitor forged the first entry; the CDN (192.0.2.10) and the ingress (10.0.0.9) are ours.
    chain = request("10.0.0.1", X_Forwarded_For="6.6.6.6, 203.0.113.77, 192.0.2.10, 10.0.0.9")
    assert client_address(chain, trusted) == "203.0.113.77"
    ipv6 = request("2001:db8::5", X_Forwarded_For="2001:db8:aaaa::1, 2001:db8::7")
    assert client_address(ipv6, trusting("2001:db8::/64")) == "2001:db8:aaaa::1"


def test_garbage_entries_are_never_taken_for_the_client():
    trusted = trusting("10.0.0.0/8")
    # Left of the client's real address: never reached.
    assert client_address(request("10.0.0.1", X_Forwarded_For="<script>, , 203.0.113.77"), trusted) == "203.0.113.77"
    # Where a proxy wrote something that is no address, the client is unknown, and the (forgeable)
    # entries left of it are not believed either.
    assert client_address(request("10.0.0.1", X_Forwarded_For="6.6.6.6, unknown"), trusted) is None
    assert client_address(request("10.0.0.1", X_Forwarded_For="6.6.6.6, 10.0.0.7, nonsense"), trusted) is None
    assert client_address(request("10.0.0.1", X_Forwarded_For=" , ,"), trusted) == "10.0.0.1"


# anonymize and country ---------------------------------------------------------


@pytest.mark.parametrize(("address", "mode", "stored"), [
    ("203.0.113.77", "anonymize", "203.0.113.0"),
    ("2001:db8:abcd:1234:5678::1", "anonymize", "2001:db8:abcd::"),
    ("203.0.113.77", "full", "203.0.113.77"),
    ("2001:DB8:0:0::1", "full", "2001:db8::1"),
    ("203.0.113.77", "drop", None),
    ("2001:db8::1", "drop", None),
    ("not-an-ip", "anonymize", None),
    ("not-an-ip", "full", None),
    (None, "anonymize", None),
])
def test_anonymize(address, mode, stored):
    assert anonymize(address, mode) == stored


@pytest.mark.parametrize(("value", "country"), [
    ("DE", "DE"), ("fr", "FR"), (" us ", "US"),
    ("XX", None), ("ZZ", None), ("T1", None), ("DEU", None), ("D", None), ("", None), ("ÄÖ", None), ("1.", None),
])
def test_country_from_the_trusted_header(value, country):
    config = Config(trusted_country_header="CF-IPCountry")
    assert country_of(request("10.0.0.1", CF_IPCountry=value), config) == country


def test_no_country_unless_a_header_is_configured():
    assert country_of(request("10.0.0.1", CF_IPCountry="DE"), Config()) is None


# through the app ----------------------------------------------------------------

App = Callable[..., Awaitable[Any]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[App]:
    """serve(**config) -> (test client, store) of a running app on a MemoryStore; stopped after the test."""
    running: list[Any] = []

    async def start(**settings: Any) -> Any:
        store = MemoryStore()
        await store.open()
        app = create_app(Config(data_dir=str(tmp_path), **settings), store)
        test_app = app.test_app()
        await test_app.startup()  # opens the event sink, as serving does
        running.append(test_app)
        return test_app.test_client(), store

    yield start
    for test_app in running:
        await test_app.shutdown()


def spooled(data_dir: Path) -> list[ClickEvent]:
    return [ClickEvent.decode(line) for path in spool_files(data_dir / "spool")
            for line in path.read_bytes().splitlines()]


PROXY = {"client": ("10.0.0.1", 40000)}  # the ASGI peer: the app's trusted reverse proxy


async def test_a_redirect_writes_one_event_before_answering(serve, tmp_path):
    client, store = await serve(trusted_proxies=["10.0.0.0/8"])
    link = await store.create_link(NewLink(slug="go", url="https://example.com/"))
    response = await client.get("/go", scope_base=PROXY, headers={
        "User-Agent": CHROME, "Referer": "https://news.example/story", "X-Forwarded-For": "203.0.113.77"})
    assert response.status_code == 302
    [event] = spooled(tmp_path)
    assert (event.link_id, event.bot, event.ip, event.referrer, event.user_agent, event.country) == (
        link.id, False, "203.0.113.0", "https://news.example/story", CHROME, None)


async def test_ip_modes_and_country_reach_the_event(serve, tmp_path):
    client, store = await serve(ip_anonymization="drop", trusted_country_header="CF-IPCountry")
    await store.create_link(NewLink(slug="go", url="https://example.com/"))
    await client.get("/go", scope_base={"client": ("203.0.113.77", 1)},
                     headers={"User-Agent": CHROME, "CF-IPCountry": "nz"})
    [event] = spooled(tmp_path)
    assert (event.ip, event.country) == (None, "NZ")


async def test_a_head_request_is_not_a_click(serve, tmp_path):
    client, store = await serve()
    await store.create_link(NewLink(slug="go", url="https://example.com/"))
    response = await client.head("/go", headers={"User-Agent": CHROME})
    assert response.status_code == 302
    assert spooled(tmp_path) == []
    await client.get("/go", headers={"User-Agent": CHROME})
    assert len(spooled(tmp_path)) == 1


async def test_a_do_not_track_link_writes_no_event(serve, tmp_path):
    client, store = await serve()
    await store.create_link(NewLink(slug="private", url="https://example.com/", do_not_track=True))
    tracked = await store.create_link(NewLink(slug="public", url="https://example.com/"))
    assert (await client.get("/private", headers={"User-Agent": CHROME})).status_code == 302
    assert spooled(tmp_path) == []
    await client.get("/public", headers={"User-Agent": CHROME})
    assert [e.link_id for e in spooled(tmp_path)] == [tracked.id]


async def test_do_not_track_in_the_config_writes_no_event(serve, tmp_path):
    client, store = await serve(do_not_track=True)
    await store.create_link(NewLink(slug="go", url="https://example.com/"))
    assert (await client.get("/go", headers={"User-Agent": CHROME})).status_code == 302
    assert spooled(tmp_path) == []


@pytest.mark.parametrize("user_agent", [GOOGLEBOT, "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", ""])
async def test_a_bot_click_is_recorded_as_a_bot(serve, tmp_path, user_agent):
    client, store = await serve()
    await store.create_link(NewLink(slug="go", url="https://example.com/"))
    await client.get("/go", headers={"User-Agent": user_agent})
    [event] = spooled(tmp_path)
    assert event.bot is True


async def test_a_click_that_cannot_be_queued_gets_a_503_problem_not_a_lost_redirect(serve, tmp_path):
    client, store = await serve(spool_file_size=1)  # every event finishes its file: each write opens a new one
    await store.create_link(NewLink(slug="go", url="https://example.com/"))
    spool = tmp_path / "spool"
    spool.mkdir(exist_ok=True)
    spool.rmdir()
    spool.write_text("the spool directory was replaced by a file")

    refused = await client.get("/go", headers={"User-Agent": CHROME, "Accept": "application/json"})
    assert refused.status_code == 503
    assert refused.headers["Content-Type"] == "application/problem+json"
    problem = await refused.get_json()
    assert problem["type"] == "urn:boltlink:problem:event-queue" and "cannot write click events" in problem["detail"]
    ready = await client.get("/ready")
    assert ready.status_code == 503
    assert "cannot write click events" in (await ready.get_json())["events"]

    spool.unlink()  # fixed: /ready says so before any redirect came through (it keeps traffic away until then)
    assert (await client.get("/ready")).status_code == 200
    assert (await client.get("/go", headers={"User-Agent": CHROME})).status_code == 302
    assert len(spooled(tmp_path)) == 1  # the click that got its redirect; none for the refused one


async def test_a_flood_of_refused_clicks_logs_one_error_line_not_one_per_request(serve, tmp_path, caplog):
    client, store = await serve(spool_file_size=1)
    await store.create_link(NewLink(slug="go", url="https://example.com/"))
    (tmp_path / "spool").rmdir()
    (tmp_path / "spool").write_text("not a directory")
    caplog.set_level(logging.ERROR, logger="boltlink.web")
    for _ in range(50):
        assert (await client.get("/go", headers={"User-Agent": CHROME})).status_code == 503
    refused = [r for r in caplog.records if r.name == "boltlink.web" and "cannot write click events" in r.getMessage()]
    assert len(refused) == 1, [r.getMessage() for r in refused]  # the rest are summed up every 10 s


async def test_a_head_needs_no_queue_and_still_answers_while_clicks_cannot_be_queued(serve, tmp_path):
    client, store = await serve(spool_file_size=1)
    await store.create_link(NewLink(slug="go", url="https://example.com/"))
    (tmp_path / "spool").rmdir()
    (tmp_path / "spool").write_text("not a directory")
    assert (await client.head("/go", headers={"User-Agent": CHROME})).status_code == 302
