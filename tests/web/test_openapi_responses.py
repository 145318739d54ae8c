"""/openapi.json documents what the API really answers (tests/fuzz/ checks the server against it)."""

from __future__ import annotations

PROBLEM = "application/problem+json"


async def spec(client) -> dict:
    return await (await client.get("/openapi.json")).get_json()


async def test_every_problem_is_documented_as_problem_json_and_nothing_else_is(client):
    document = await spec(client)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                media = set(response.get("content", {}))
                if (path, status) == ("/ready", "503"):  # a readiness report, as with 200, not an error
                    assert media == {"application/json"}
                elif int(status) >= 400:
                    assert media == {PROBLEM}, (method, path, status)
                else:
                    assert PROBLEM not in media, (method, path, status)


async def test_answers_without_a_json_body_are_documented(client):
    paths = (await spec(client))["paths"]
    assert set(paths["/{slug}"]["get"]["responses"]) >= {"301", "302", "307", "308"}
    assert "content" not in paths["/{slug}"]["get"]["responses"]["302"]
    assert "content" not in paths["/api/v1/links/{slug}"]["delete"]["responses"]["204"]
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    assert set(paths["/{slug}/qr"]["get"]["responses"]["200"]["content"]) == {"image/svg+xml", "image/png"}
    visits = paths["/api/v1/links/{slug}/visits"]["get"]["responses"]["200"]["content"]
    assert set(visits) == {"application/json", "text/csv"}
    assert visits["application/json"]["schema"]  # the JSON answer keeps its model


async def test_operations_that_validate_input_document_422_and_slug_lookups_404(client):
    paths = (await spec(client))["paths"]
    for path, method in [("/api/v1/links", "get"), ("/api/v1/links", "post"), ("/api/v1/links/bulk", "post"),
                         ("/api/v1/links/{slug}/stats", "get"), ("/api/v1/links/{slug}/visits", "get"),
                         ("/api/v1/stats", "get"), ("/api/v1/links/{slug}", "patch")]:
        assert "422" in paths[path][method]["responses"], (method, path)
    for path in ("/api/v1/links/{slug}/stats", "/api/v1/links/{slug}/visits"):
        assert "404" in paths[path]["get"]["responses"], path
    for path, method in [("/api/v1/links", "post"), ("/api/v1/links/{slug}", "patch"), ("/api/v1/links/bulk", "post")]:
        assert "400" in paths[path][method]["responses"], (method, path)
