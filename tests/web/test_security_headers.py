"""Every response carries the security headers, the redirect fast path's too; a page's own CSP is kept."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
from typing import Any

import pytest

from boltlink.config import Config
from boltlink.shortener import LinkDraft, LinkRules, create_link
from boltlink.web import create_app
from boltlink.web.fast_redirect import FastRedirect

API_CSP = "default-src 'none'; frame-ancestors 'none'"


@pytest.fixture
def config(tmp_path: Any) -> Config:
    """SQLite only: headers do not depend on the database."""
    return Config(data_dir=str(tmp_path))


def assert_secured(response: Any, *, csp: str | None = API_CSP, referrer: str = "no-referrer") -> None:
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == referrer
    assert len(headers.get_all("Content-Security-Policy")) == 1  # added only when absent, never twice
    if csp is not None:
        assert headers["Content-Security-Policy"] == csp


async def test_api_json_and_its_problems(client, auth):
    assert_secured(await client.get("/api/v1/links", headers=auth))
    created = await client.post("/api/v1/links", json={"url": "https://example.com/"}, headers=auth)
    assert created.status_code == 201
    assert_secured(created)
    unauthorized = await client.get("/api/v1/links")
    assert unauthorized.status_code == 401
    assert_secured(unauthorized)
    assert_secured(await client.get("/api/v1/links/nope", headers=auth))


async def test_health_metrics_and_the_openapi_document(client):
    for path in ("/health", "/ready", "/openapi.json", "/metrics"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert_secured(response)


async def test_docs_keep_their_own_policy_that_lets_swagger_ui_run(client):
    response = await client.get("/docs")
    assert_secured(response, csp=None)
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert_secured(await client.get("/docs/assets/swagger-ui-bundle.js"))


@pytest.mark.skipif(importlib.util.find_spec("boltlink.web.ui") is None, reason="no web UI in this build")
async def test_the_web_ui_keeps_its_own_policy(client):
    from boltlink.web.ui import CONTENT_SECURITY_POLICY

    assert_secured(await client.get("/"), csp=CONTENT_SECURITY_POLICY)


async def test_a_browsers_error_page_allows_exactly_its_own_style(client):
    response = await client.get("/no-such-link", headers={"Accept": "text/html"})
    assert response.status_code == 404 and response.content_type.startswith("text/html")
    assert_secured(response, csp=None)
    policy = response.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'none'") and "script-src" not in policy
    [style] = re.findall(r"<style>(.*?)</style>", await response.get_data(as_text=True))
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy


class QuartSpy:
    """Stands between the fast path and Quart, to tell which of the two answered."""

    def __init__(self, app: Any) -> None:
        layer = app.asgi_app
        while not isinstance(layer, FastRedirect):
            layer = layer.app
        self.quart, self.paths = layer.app, []
        layer.app = self

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])
        await self.quart(scope, receive, send)


async def test_redirects_from_the_fast_path_and_from_quart_alike(config, store):
    app = create_app(config, store)
    spy = QuartSpy(app)
    rules = LinkRules.for_config(config)
    await create_link(store, LinkDraft(url="https://example.com/fast", slug="fast"), rules)
    await create_link(store, LinkDraft(url="https://example.com/counted", slug="counted", max_clicks=9), rules)
    client = app.test_client()

    fast = await client.get("/fast")
    assert fast.status_code == 302 and spy.paths == []  # answered before Quart
    counted = await client.get("/counted")
    assert counted.status_code == 302 and spy.paths == ["/counted"]  # a click allowance is Quart's
    for response in (fast, counted):
        # The target gets the referring page's origin at most, as with no shortener in between.
        assert_secured(response, referrer="strict-origin-when-cross-origin")


async def test_a_handler_header_is_never_overridden_or_doubled(config, store):
    app = create_app(config, store)

    @app.get("/__framed__")
    async def framed() -> Any:
        return "ok", 200, {"X-Frame-Options": "SAMEORIGIN", "Referrer-Policy": "same-origin"}

    response = await app.test_client().get("/__framed__")
    assert response.headers.get_all("X-Frame-Options") == ["SAMEORIGIN"]
    assert response.headers.get_all("Referrer-Policy") == ["same-origin"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == API_CSP
