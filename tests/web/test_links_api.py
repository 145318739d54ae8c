"""/api/v1/links as a client sees it: create, read, list, change, delete."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from boltlink.validation import GENERATED_SLUG_ALPHABET

PROBLEM = "application/problem+json"


async def create(client, auth, **body):
    return await client.post("/api/v1/links", json=body, headers=auth)


async def test_create_returns_the_link_with_every_field(client, auth):
    response = await create(client, auth, url="https://example.com/a?b=1", slug="promo", title="Promo",
                            tags=["news", "q4"], max_clicks=3, redirect_status=301, forward_query=True)
    assert response.status_code == 201
    assert response.headers["Location"] == "/api/v1/links/promo"
    link = await response.get_json()
    assert link["slug"] == "promo"
    assert link["short_url"] == "http://localhost/promo"
    assert link["url"] == "https://example.com/a?b=1"
    assert link["title"] == "Promo"
    assert link["tags"] == ["news", "q4"]
    assert link["max_clicks"] == 3
    assert link["redirect_status"] == 301
    assert link["forward_query"] is True
    assert link["expires_at"] is None
    assert link["clicks"] == {"total": 0, "humans": 0, "bots": 0}
    datetime.fromisoformat(link["created_at"])


async def test_generated_slug_has_seven_unambiguous_characters(client, auth):
    link = await (await create(client, auth, url="https://example.com")).get_json()
    assert len(link["slug"]) == 7
    assert set(link["slug"]) <= set(GENERATED_SLUG_ALPHABET)


async def test_taken_slug_is_409_problem(client, auth):
    await create(client, auth, url="https://example.com", slug="dup")
    response = await create(client, auth, url="https://example.org", slug="dup")
    assert response.status_code == 409
    assert response.content_type == PROBLEM
    problem = await response.get_json()
    assert problem["status"] == 409 and "dup" in problem["detail"]
    assert problem["errors"] == [{"field": "slug", "message": "already taken"}]


async def test_slugs_are_case_sensitive(client, auth):
    assert (await create(client, auth, url="https://a.example", slug="Case")).status_code == 201
    assert (await create(client, auth, url="https://b.example", slug="case")).status_code == 201


async def test_invalid_fields_are_all_named_in_one_422(client, auth):
    response = await create(client, auth, url="javascript:alert(1)", slug="no spaces", max_clicks=0)
    assert response.status_code == 422
    assert response.content_type == PROBLEM
    fields = {e["field"] for e in (await response.get_json())["errors"]}
    assert "max_clicks" in fields  # type-level: caught by the model first
    response = await create(client, auth, url="javascript:alert(1)", slug="no spaces")
    fields = {e["field"] for e in (await response.get_json())["errors"]}
    assert fields == {"url", "slug"}


async def test_unknown_and_missing_fields_are_422(client, auth):
    response = await create(client, auth, link="https://example.com")
    assert response.status_code == 422
    errors = {e["field"]: e["message"] for e in (await response.get_json())["errors"]}
    assert errors == {"url": "is required", "link": "is not a known field"}


async def test_body_that_is_not_json_is_a_problem(client, auth):
    response = await client.post("/api/v1/links", data="url=https://x.example", headers={
        **auth, "Content-Type": "application/x-www-form-urlencoded"})
    assert 400 <= response.status_code < 500
    assert response.content_type == PROBLEM
    response = await client.post("/api/v1/links", data="{not json", headers={
        **auth, "Content-Type": "application/json"})
    assert response.status_code in (400, 422)
    assert response.content_type == PROBLEM


async def test_link_pointing_at_this_shortener_is_refused(client, auth):
    response = await create(client, auth, url="http://localhost/abc")
    assert response.status_code == 422
    assert (await response.get_json())["errors"][0]["field"] == "url"


async def test_reserved_slug_is_refused(client, auth):
    for slug in ("api", "health", "docs", "Ready"):
        response = await create(client, auth, url="https://example.com", slug=slug)
        assert response.status_code == 422, slug


async def test_expiry_in_the_past_is_refused_at_creation(client, auth):
    past = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    response = await create(client, auth, url="https://example.com", expires_at=past)
    assert response.status_code == 422
    assert (await response.get_json())["errors"][0]["field"] == "expires_at"


async def test_get_one_link_and_404_for_unknown(client, auth):
    await create(client, auth, url="https://example.com", slug="one")
    response = await client.get("/api/v1/links/one", headers=auth)
    assert response.status_code == 200
    assert (await response.get_json())["url"] == "https://example.com"
    response = await client.get("/api/v1/links/nope", headers=auth)
    assert response.status_code == 404
    assert response.content_type == PROBLEM


async def test_list_paginates_searches_filters_and_sorts(client, auth):
    for i in range(25):
        await create(client, auth, url=f"https://site{i}.example/path", slug=f"s{i:02d}",
                     title="Special offer" if i % 5 == 0 else None, tags=["even"] if i % 2 == 0 else [])
    page1 = await (await client.get("/api/v1/links?limit=10", headers=auth)).get_json()
    assert page1["pagination"] == {"page": 1, "limit": 10, "total": 25, "pages": 3}
    assert [link["slug"] for link in page1["items"]][:2] == ["s24", "s23"]  # newest first
    page3 = await (await client.get("/api/v1/links?limit=10&page=3", headers=auth)).get_json()
    assert len(page3["items"]) == 5

    found = await (await client.get("/api/v1/links?q=SPECIAL", headers=auth)).get_json()
    assert {link["slug"] for link in found["items"]} == {"s00", "s05", "s10", "s15", "s20"}
    found = await (await client.get("/api/v1/links?q=site1", headers=auth)).get_json()
    assert found["pagination"]["total"] == 11  # site1, site10..site19

    tagged = await (await client.get("/api/v1/links?tag=even&limit=100", headers=auth)).get_json()
    assert tagged["pagination"]["total"] == 13

    by_slug = await (await client.get("/api/v1/links?sort=slug&limit=3", headers=auth)).get_json()
    assert [link["slug"] for link in by_slug["items"]] == ["s00", "s01", "s02"]


async def test_list_rejects_bad_query_parameters(client, auth):
    for query in ("limit=0", "limit=1000", "page=0", "sort=nonsense", "page=abc"):
        response = await client.get(f"/api/v1/links?{query}", headers=auth)
        assert response.status_code == 422, query
        assert response.content_type == PROBLEM


async def test_patch_changes_only_what_is_sent(client, auth):
    await create(client, auth, url="https://example.com", slug="edit", title="Old", tags=["a"])
    response = await client.patch("/api/v1/links/edit", json={"url": "https://example.org", "tags": ["b", "c"]},
                                  headers=auth)
    assert response.status_code == 200
    link = await response.get_json()
    assert (link["url"], link["title"], link["tags"]) == ("https://example.org", "Old", ["b", "c"])
    assert link["updated_at"] >= link["created_at"]
    cleared = await (await client.patch("/api/v1/links/edit", json={"title": None}, headers=auth)).get_json()
    assert cleared["title"] is None


async def test_patch_refuses_bad_values_slug_changes_and_unknown_links(client, auth):
    await create(client, auth, url="https://example.com", slug="keep")
    response = await client.patch("/api/v1/links/keep", json={"url": "data:text/html,hi"}, headers=auth)
    assert response.status_code == 422
    response = await client.patch("/api/v1/links/keep", json={"slug": "other"}, headers=auth)
    assert response.status_code == 422
    response = await client.patch("/api/v1/links/keep", json={"url": None}, headers=auth)
    assert response.status_code == 422
    response = await client.patch("/api/v1/links/missing", json={"title": "x"}, headers=auth)
    assert response.status_code == 404
    link = await (await client.get("/api/v1/links/keep", headers=auth)).get_json()
    assert link["url"] == "https://example.com"


async def test_delete_removes_the_link_and_its_redirect(client, auth):
    await create(client, auth, url="https://example.com", slug="gone")
    response = await client.delete("/api/v1/links/gone", headers=auth)
    assert response.status_code == 204
    assert (await client.get("/gone")).status_code == 404
    assert (await client.delete("/api/v1/links/gone", headers=auth)).status_code == 404


async def test_base_url_sets_the_short_url(store, config, auth):
    from boltlink.web import create_app

    app = create_app(config.model_copy(update={"base_url": "https://s.example.com/"}), store)
    response = await app.test_client().post("/api/v1/links", json={"url": "https://example.com", "slug": "b"},
                                            headers=auth)
    assert (await response.get_json())["short_url"] == "https://s.example.com/b"
