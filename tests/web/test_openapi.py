"""/openapi.json describes the real API; /docs renders it from bundled files."""

from __future__ import annotations

from boltlink.validation import RESERVED_SLUGS


async def test_openapi_lists_every_operation_with_security(client):
    spec = await (await client.get("/openapi.json")).get_json()
    paths = spec["paths"]
    assert set(paths["/api/v1/links"]) >= {"get", "post"}
    assert set(paths["/api/v1/links/{slug}"]) >= {"get", "patch", "delete"}
    assert "post" in paths["/api/v1/links/bulk"]
    assert set(paths["/{slug}"]["get"]["responses"]) >= {"404", "410"}
    assert "/docs" not in paths
    assert {"apiKey", "bearer"} <= set(spec["components"]["securitySchemes"])
    create = paths["/api/v1/links"]["post"]
    assert "201" in create["responses"] and "422" in create["responses"]
    link_schema = spec["components"]["schemas"]["LinkIn"]
    assert link_schema["required"] == ["url"]


async def test_docs_page_loads_its_assets_from_this_server(client):
    page = await (await client.get("/docs")).get_data(as_text=True)
    assert "https://" not in page  # nothing from a CDN: the pyz must work offline
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "init.js"):
        assert f"/docs/assets/{asset}" in page
        response = await client.get(f"/docs/assets/{asset}")
        assert response.status_code == 200, asset
        assert len(await response.get_data()) > 10


def test_every_route_the_app_owns_is_a_reserved_slug(app):
    first_segments = {
        rule.rule.split("/")[1] for rule in app.url_map.iter_rules()
        if not rule.rule.startswith("/<") and rule.rule != "/"  # "/" (the web UI): no slug is empty
    }
    assert first_segments <= RESERVED_SLUGS
