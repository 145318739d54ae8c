"""API keys guard every /api/v1 endpoint; redirects and health stay public."""

from __future__ import annotations


async def test_no_key_is_401_with_a_challenge(client):
    response = await client.get("/api/v1/links")
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"
    assert "Bearer" in response.headers["WWW-Authenticate"]


async def test_wrong_or_malformed_keys_are_401(client, key):
    for bad in ("nonsense", "bl_abcdefgh_wrongsecret", key[:-1] + ("A" if key[-1] != "A" else "B")):
        response = await client.get("/api/v1/links", headers={"X-API-Key": bad})
        assert response.status_code == 401, bad


async def test_bearer_header_works_like_x_api_key(client, key):
    response = await client.get("/api/v1/links", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200


async def test_scope_is_enforced_with_403(client, store, make_key):
    reader = await make_key(store, "links:read")
    headers = {"X-API-Key": reader}
    assert (await client.get("/api/v1/links", headers=headers)).status_code == 200
    response = await client.post("/api/v1/links", json={"url": "https://example.com"}, headers=headers)
    assert response.status_code == 403
    assert "links:write" in (await response.get_json())["detail"]
    stats_only = {"X-API-Key": await make_key(store, "stats:read")}
    assert (await client.get("/api/v1/links", headers=stats_only)).status_code == 403


async def test_admin_key_may_do_everything(client, store, make_key):
    admin = {"X-API-Key": await make_key(store, "admin")}
    assert (await client.post("/api/v1/links", json={"url": "https://example.com", "slug": "adm"},
                              headers=admin)).status_code == 201
    assert (await client.delete("/api/v1/links/adm", headers=admin)).status_code == 204


async def test_revoked_key_stops_working_at_once(client, store, key):
    headers = {"X-API-Key": key}
    assert (await client.get("/api/v1/links", headers=headers)).status_code == 200
    await store.revoke_api_key("default")
    assert (await client.get("/api/v1/links", headers=headers)).status_code == 401


async def test_public_endpoints_need_no_key(client):
    for path in ("/health", "/ready", "/openapi.json", "/docs"):
        assert (await client.get(path)).status_code == 200, path
