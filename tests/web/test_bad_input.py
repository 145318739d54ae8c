"""Input that once got a 500 (found by tests/fuzz/): each now gets a clear 4xx problem or its real answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from quart.testing.connections import WebsocketResponseError

PROBLEM = "application/problem+json"
NOT_UTF8 = b'{"url": "https://example.com/\xff\xfe"}'


@pytest.mark.parametrize(("method", "path"), [("POST", "/api/v1/links"), ("PATCH", "/api/v1/links/any"),
                                              ("POST", "/api/v1/links/bulk")])
async def test_a_json_body_that_is_not_utf8_is_a_400_problem(client, auth, method, path):
    response = await client.open(path, method=method, data=NOT_UTF8,
                                 headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.content_type == PROBLEM
    assert (await response.get_json())["detail"] == "The request body is not valid JSON."


async def _get(app: Any, path: str, query: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """GET with raw query bytes, as HTTP/2 delivers them (h11 refuses them; Quart's test client encodes them)."""
    scope = {"type": "http", "http_version": "2", "method": "GET", "scheme": "http", "path": path,
             "raw_path": path.encode(), "query_string": query, "root_path": "", "client": ("203.0.113.9", 1),
             "server": ("127.0.0.1", 5000), "asgi": {"version": "3.0"},
             "headers": [(b"host", b"sho.rt"), *((k.lower().encode(), v.encode()) for k, v in headers.items())]}
    sent: list[dict[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays: a disconnect would cancel the answer
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app.asgi_app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def test_raw_non_utf8_query_bytes_are_read_as_percent_encoded(app, auth):
    status, _ = await _get(app, "/health", b"\xff", {})
    assert status == 200
    status, body = await _get(app, "/api/v1/links", b"q=\xff\xfe", auth)
    assert status == 200 and b'"items"' in body


async def test_a_websocket_handshake_gets_a_400_problem(client):
    with pytest.raises(WebsocketResponseError) as refused:
        async with client.websocket("/health") as socket:
            await socket.receive()
    response = refused.value.response
    assert response.status_code == 400
    assert response.content_type == PROBLEM
    assert (await response.get_json())["detail"] == "The request is malformed."


@pytest.mark.parametrize("body", [{"url": "https://example.com/", "max_clicks": 2**31},
                                  {"url": "https://example.com/", "max_clicks": 10**20},
                                  {"url": "https://example.com/", "expires_at": "0001-01-01T00:00:00+14:00"}])
async def test_numbers_and_moments_beyond_what_the_store_holds_are_a_422(client, auth, body):
    response = await client.post("/api/v1/links", json=body, headers=auth)
    assert response.status_code == 422
    [error] = (await response.get_json())["errors"]
    assert error["field"] in body


async def test_the_largest_click_limit_and_the_latest_expiry_are_kept(client, auth):
    body = {"url": "https://example.com/", "max_clicks": 2**31 - 1, "expires_at": "9999-12-31T23:59:59-14:00"}
    response = await client.post("/api/v1/links", json=body, headers=auth)
    assert response.status_code == 201, await response.get_data()
    link = await response.get_json()
    assert link["max_clicks"] == 2**31 - 1 and link["expires_at"].startswith("9999-12-31T23:59:59")


async def test_a_page_past_any_list_is_a_422_not_an_offset_overflow(client, auth):
    response = await client.get("/api/v1/links?page=4803259260735604129792&limit=91", headers=auth)
    assert response.status_code == 422
    assert (await response.get_json())["errors"][0]["field"] == "page"


@pytest.mark.parametrize("query", ["to=0001-01-02T00:00:00Z", "from=0001-01-01T00:00:00%2B14:00",
                                   "from=9999-12-31T00:00:00Z&to=9999-12-31T23:59:59Z", "to=9999-12-31T23:59:59-14:00"])
async def test_stats_for_moments_at_the_ends_of_the_calendar_are_a_422(client, auth, query):
    await client.post("/api/v1/links", json={"url": "https://example.com/", "slug": "edge"}, headers=auth)
    for path in ("/api/v1/stats", "/api/v1/links/edge/stats", "/api/v1/links/edge/stats?granularity=hour"):
        response = await client.get(f"{path}{'&' if '?' in path else '?'}{query}", headers=auth)
        assert response.status_code == 422, (path, await response.get_data())
