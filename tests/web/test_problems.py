"""Every error is an RFC 9457 problem; nothing leaks a stack trace."""

from __future__ import annotations

PROBLEM = "application/problem+json"


async def test_unknown_api_route_is_404_problem(client, auth):
    response = await client.get("/api/v1/nothing", headers=auth)
    assert response.status_code == 404
    assert response.content_type == PROBLEM
    body = await response.get_json()
    assert set(body) >= {"type", "title", "status", "detail"}


async def test_wrong_method_is_405_problem_with_allow(client, auth):
    response = await client.put("/api/v1/links", headers=auth, json={})
    assert response.status_code == 405
    assert response.content_type == PROBLEM
    assert "POST" in response.headers["Allow"]


async def test_body_over_the_limit_is_413_problem(client, store, make_key):
    admin = {"X-API-Key": await make_key(store, "admin"), "Content-Type": "application/json"}
    response = await client.post("/api/v1/links", data=b'{"url": "' + b"a" * 2_000_000 + b'"}', headers=admin)
    assert response.status_code == 413
    assert response.content_type == PROBLEM


async def test_unexpected_error_is_500_problem_without_traceback(app, client):
    @app.get("/api/v1/boom")
    async def boom():
        raise RuntimeError("secret internals")

    response = await client.get("/api/v1/boom")
    assert response.status_code == 500
    assert response.content_type == PROBLEM
    text = await response.get_data(as_text=True)
    assert "secret internals" not in text and "Traceback" not in text
