"""Deleting a much-followed link through the API takes ?force=true; the operator's CLI may always delete."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from boltlink.apikeys import new_api_key
from boltlink.cli import cli
from boltlink.config import Config
from boltlink.store import create_store
from boltlink.store.base import LinkStore
from boltlink.store.clicks import Visit
from boltlink.web import create_app

PROBLEM = "application/problem+json"


async def link_with_clicks(store: LinkStore, client: Any, auth: dict[str, str], slug: str, clicks: int) -> None:
    created = await client.post("/api/v1/links", json={"url": "https://example.com/", "slug": slug}, headers=auth)
    assert created.status_code == 201
    link = await store.get_link(slug)
    assert link is not None
    now = datetime.now(timezone.utc)
    await store.record_clicks([  # type: ignore[attr-defined]
        Visit(event_id=uuid.uuid4().hex, link_id=link.id, at=now, referrer=None, referrer_host=None,
              user_agent=None, browser=None, os=None, device=None, bot=n % 2 == 0, ip=None, country=None,
              visitor=str(n))
        for n in range(clicks)
    ])
    assert (await client.get(f"/api/v1/links/{slug}", headers=auth)).status_code == 200


def protected_app(config: Config, store: LinkStore, threshold: int) -> Any:
    return create_app(config.model_copy(update={"delete_protection_clicks": threshold}), store).test_client()


async def test_a_link_past_the_threshold_needs_force(config, store, auth):
    client = protected_app(config, store, threshold=3)
    await link_with_clicks(store, client, auth, "popular", clicks=4)

    refused = await client.delete("/api/v1/links/popular", headers=auth)
    assert refused.status_code == 409
    assert refused.content_type == PROBLEM
    problem = await refused.get_json()
    assert problem["type"] == "urn:boltlink:problem:delete-protected"
    assert (problem["clicks"], problem["threshold"], problem["force"]) == (4, 3, "?force=true")
    assert "force=true" in problem["detail"]
    assert (await client.get("/api/v1/links/popular", headers=auth)).status_code == 200

    forced = await client.delete("/api/v1/links/popular?force=true", headers=auth)
    assert forced.status_code == 204
    assert (await client.get("/api/v1/links/popular", headers=auth)).status_code == 404


async def test_at_the_threshold_or_with_protection_off_a_delete_just_deletes(config, store, auth):
    client = protected_app(config, store, threshold=3)
    await link_with_clicks(store, client, auth, "quiet", clicks=3)
    assert (await client.delete("/api/v1/links/quiet", headers=auth)).status_code == 204

    unprotected = protected_app(config, store, threshold=0)
    await link_with_clicks(store, unprotected, auth, "loud", clicks=5)
    assert (await unprotected.delete("/api/v1/links/loud", headers=auth)).status_code == 204


async def test_unknown_links_and_bad_force_values(config, store, auth):
    client = protected_app(config, store, threshold=3)
    assert (await client.delete("/api/v1/links/ghost", headers=auth)).status_code == 404
    assert (await client.delete("/api/v1/links/ghost?force=true", headers=auth)).status_code == 404
    await link_with_clicks(store, client, auth, "kept", clicks=4)
    response = await client.delete("/api/v1/links/kept?force=perhaps", headers=auth)
    assert response.status_code == 422
    assert [e["field"] for e in (await response.get_json())["errors"]] == ["force"]


async def test_the_openapi_document_offers_force(client):
    spec = await (await client.get("/openapi.json")).get_json()
    delete = spec["paths"]["/api/v1/links/{slug}"]["delete"]
    assert {"force"} <= {p["name"] for p in delete["parameters"] if p["in"] == "query"}
    assert {"204", "404", "409"} <= set(delete["responses"])


async def test_the_cli_deletes_regardless_and_says_what_it_overrode(tmp_path: Path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("BOLTLINK_")]:
        monkeypatch.delenv(name)
    config = Config(data_dir=str(tmp_path / "data"), delete_protection_clicks=1)
    store = create_store(config)
    await store.open()
    try:
        key, record = new_api_key("ops", ("links:write",))
        await store.create_api_key(record)
        await link_with_clicks(store, create_app(config, store).test_client(), {"X-API-Key": key}, "famous", 2)
    finally:
        await store.close()

    # The command runs its own event loop (asyncio.run): a thread of its own, then.
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["--data-dir", config.data_dir, "links", "delete", "famous"],
        env={"BOLTLINK_DELETE_PROTECTION_CLICKS": "1"}, prog_name="boltlink")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "deleted famous"
    assert "2 clicks" in result.stderr and "force=true" in result.stderr
