"""An app on a real store (SQLite and PostgreSQL both), a test client, and API keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from quart import Quart

from boltlink.apikeys import new_api_key
from boltlink.config import Config
from boltlink.store import create_store
from boltlink.store.base import LinkStore
from boltlink.web import create_app


@pytest.fixture(params=["sqlite", "postgres"])
def config(request: pytest.FixtureRequest, tmp_path: Any) -> Config:
    if request.param == "postgres":
        return Config(data_dir=str(tmp_path), database_url=request.getfixturevalue("postgres_url"))
    return Config(data_dir=str(tmp_path))


@pytest.fixture
async def store(config: Config) -> AsyncIterator[LinkStore]:
    store = create_store(config)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def app(config: Config, store: LinkStore) -> Quart:
    return create_app(config, store)


@pytest.fixture
def client(app: Quart) -> Any:
    return app.test_client()


async def _make_key(store: LinkStore, *scopes: str) -> str:
    key, record = new_api_key(f"test-{uuid.uuid4().hex[:8]}", scopes)
    await store.create_api_key(record)
    return key


@pytest.fixture
def make_key() -> Any:
    """make_key(store, *scopes) -> a new key with exactly those scopes."""
    return _make_key


@pytest.fixture
async def key(store: LinkStore) -> str:
    """A key with the default scopes: links read/write and stats."""
    key, record = new_api_key("default", ())
    await store.create_api_key(record)
    return key


@pytest.fixture
def auth(key: str) -> dict[str, str]:
    return {"X-API-Key": key}
