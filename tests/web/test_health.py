"""/health says the process lives; /ready says it should get traffic."""

from __future__ import annotations

from boltlink.config import Config
from boltlink.store import create_store
from boltlink.web import create_app


async def test_health_and_ready_answer_ok(client):
    assert (await (await client.get("/health")).get_json())["status"] == "ok"
    response = await client.get("/ready")
    assert response.status_code == 200
    assert (await response.get_json())["status"] == "ready"


async def test_ready_fails_while_draining(app, client):
    app.extensions["boltlink"].draining = True
    response = await client.get("/ready")
    assert response.status_code == 503
    assert (await response.get_json())["status"] == "draining"
    assert (await client.get("/health")).status_code == 200


async def test_ready_fails_when_the_store_is_down(tmp_path):
    config = Config(data_dir=str(tmp_path), database_url="postgresql://postgres@127.0.0.1:1/none")
    app = create_app(config, create_store(config))  # never opened: the database is unreachable
    response = await app.test_client().get("/ready")
    assert response.status_code == 503
    assert (await response.get_json())["status"] == "unavailable"


async def test_a_store_lost_while_links_are_cached_is_degraded_and_cached_links_keep_redirecting(tmp_path):
    from boltlink.shortener import LinkDraft, LinkRules, create_link

    config = Config(data_dir=str(tmp_path))
    store = create_store(config)
    await store.open()
    await create_link(store, LinkDraft(url="https://example.com", slug="go"), LinkRules.for_config(config))
    app = create_app(config, store)
    client = app.test_client()
    assert (await client.get("/go")).status_code == 302  # now cached by this process
    await store.close()  # the database goes away

    response = await client.get("/ready")
    assert response.status_code == 200
    assert (await response.get_json())["status"] == "degraded"
    assert (await client.get("/go")).status_code == 302
