"""GET/HEAD /<slug>: where a visitor is sent, and what they see when they can't be."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest

from boltlink.shortener import LinkDraft, LinkRules, create_link

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
HUMAN = {"User-Agent": CHROME}
BROWSER = {"User-Agent": CHROME, "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


async def add(store, config, **fields):
    return await create_link(store, LinkDraft(**fields), LinkRules.for_config(config))


async def test_redirects_with_302_and_location(client, store, config):
    await add(store, config, url="https://example.com/landing", slug="go")
    response = await client.get("/go", headers=HUMAN)
    assert response.status_code == 302
    assert response.headers["Location"] == "https://example.com/landing"
    assert "no-store" in response.headers["Cache-Control"]


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_uses_the_links_status_code(client, store, config, status):
    await add(store, config, url="https://example.com", slug="s", redirect_status=status)
    assert (await client.get("/s", headers=HUMAN)).status_code == status


async def test_head_redirects_like_get(client, store, config):
    await add(store, config, url="https://example.com", slug="h")
    response = await client.head("/h", headers=HUMAN)
    assert response.status_code == 302
    assert response.headers["Location"] == "https://example.com"


async def test_forward_query_appends_the_visitors_query(client, store, config):
    await add(store, config, url="https://example.com/p?ref=a#top", slug="fq", forward_query=True)
    await add(store, config, url="https://example.com/p", slug="plain")
    response = await client.get("/fq?utm_source=mail&x=1", headers=HUMAN)
    assert response.headers["Location"] == "https://example.com/p?ref=a&utm_source=mail&x=1#top"
    response = await client.get("/plain?utm_source=mail", headers=HUMAN)
    assert response.headers["Location"] == "https://example.com/p"


async def test_unknown_slug_is_404_problem_for_clients_and_a_page_for_browsers(client):
    response = await client.get("/nothing-here", headers=HUMAN)
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    assert (await response.get_json())["status"] == 404
    response = await client.get("/nothing-here", headers=BROWSER)
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "404" in (await response.get_data(as_text=True))


async def test_slugs_are_case_sensitive_on_redirect(client, store, config):
    await add(store, config, url="https://example.com/upper", slug="AbC")
    assert (await client.get("/AbC", headers=HUMAN)).status_code == 302
    assert (await client.get("/abc", headers=HUMAN)).status_code == 404


async def test_expired_link_is_410(client, store, config):
    link = await add(store, config, url="https://example.com", slug="old",
                     expires_at=datetime.now(timezone.utc) + timedelta(hours=1))
    assert (await client.get("/old", headers=HUMAN)).status_code == 302
    # Changed behind this app's back (another worker, the CLI): its link cache notices within a second.
    await store.update_link(link.slug, {"expires_at": datetime.now(timezone.utc) - timedelta(seconds=1)})
    deadline = time.monotonic() + 2
    response = await client.get("/old", headers=HUMAN)
    while response.status_code == 302 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        response = await client.get("/old", headers=HUMAN)
    assert response.status_code == 410
    assert (await response.get_json())["type"].endswith("link-expired")


async def test_max_clicks_counts_human_gets_only(client, store, config):
    await add(store, config, url="https://example.com", slug="lim", max_clicks=2)
    bot = {"User-Agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"}
    for _ in range(3):
        assert (await client.get("/lim", headers=bot)).status_code == 302  # previews don't spend it
        assert (await client.head("/lim", headers=HUMAN)).status_code == 302  # nor do HEADs
    assert (await client.get("/lim", headers=HUMAN)).status_code == 302
    assert (await client.get("/lim", headers=HUMAN)).status_code == 302
    response = await client.get("/lim", headers=HUMAN)
    assert response.status_code == 410
    assert (await response.get_json())["type"].endswith("click-limit-reached")
    # Once spent, bots and HEAD see it gone too.
    assert (await client.get("/lim", headers=bot)).status_code == 410
    assert (await client.head("/lim", headers=HUMAN)).status_code == 410


async def test_max_clicks_holds_under_concurrent_visitors(client, store, config):
    await add(store, config, url="https://example.com", slug="rush", max_clicks=5)
    responses = await asyncio.gather(*(client.get("/rush", headers=HUMAN) for _ in range(30)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(302) == 5
    assert codes.count(410) == 25


async def test_paths_that_are_not_slugs_are_404(client):
    for path in ("/a.b", "/" + "x" * 65, "/%00"):
        assert (await client.get(path, headers=HUMAN)).status_code == 404, path
