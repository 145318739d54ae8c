"""API keys may expire: made with an expiry, stored with it in every backend, refused (401) once past it."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from boltlink.apikeys import new_api_key
from boltlink.cli import cli
from boltlink.config import Config
from boltlink.errors import InvalidInput
from boltlink.store import create_store
from boltlink.store.base import LinkStore
from boltlink.store.memory import MemoryStore
from boltlink.web import create_app

NOW = datetime.now(timezone.utc)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Config | None:
    """None for the in-memory store, else the config of a database (a fresh one for PostgreSQL)."""
    if request.param == "memory":
        return None
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    return Config(data_dir=str(tmp_path), database_url=url)


@pytest.fixture
async def store(backend: Config | None) -> AsyncIterator[LinkStore]:
    opened = MemoryStore() if backend is None else create_store(backend)
    await opened.open()
    yield opened
    await opened.close()


def test_an_expiry_must_be_in_the_future_and_a_naive_one_is_utc() -> None:
    with pytest.raises(InvalidInput, match="expires_at: must be in the future"):
        new_api_key("ci", ["admin"], NOW - timedelta(seconds=1))
    _, record = new_api_key("ci", ["admin"], datetime(2999, 1, 1, 12, 0))
    assert record.expires_at == datetime(2999, 1, 1, 12, 0, tzinfo=timezone.utc)
    assert new_api_key("ci", ["admin"])[1].expires_at is None


async def test_every_store_keeps_the_expiry(store: LinkStore) -> None:
    later = (NOW + timedelta(days=30)).replace(microsecond=123456)
    _, expiring = new_api_key("expiring", ["admin"], later)
    _, forever = new_api_key("forever", ["admin"])
    await store.create_api_key(expiring)
    await store.create_api_key(forever)

    assert (await store.get_api_key(expiring.id)).expires_at == later  # type: ignore[union-attr]
    assert (await store.get_api_key(forever.id)).expires_at is None  # type: ignore[union-attr]
    assert {k.name: k.expires_at for k in await store.list_api_keys()} == {"expiring": later, "forever": None}


async def test_an_expired_key_gets_401_saying_so_and_a_valid_one_works(store: LinkStore, tmp_path: Path) -> None:
    client = create_app(Config(data_dir=str(tmp_path)), store).test_client()
    valid_key, valid = new_api_key("valid", ["links:read"], NOW + timedelta(hours=1))
    old_key, old = new_api_key("old", ["links:read"])
    await store.create_api_key(valid)
    await store.create_api_key(replace(old, expires_at=NOW - timedelta(minutes=5)))  # made long ago

    assert (await client.get("/api/v1/links", headers={"X-API-Key": valid_key})).status_code == 200
    refused = await client.get("/api/v1/links", headers={"Authorization": f"Bearer {old_key}"})
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    detail = (await refused.get_json())["detail"]
    assert "expired at" in detail and (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M") in detail
    # The wrong secret for the same id learns nothing about the expiry.
    forged = "bl_" + old.id + "_" + "x" * 43
    assert "expired" not in (await (await client.get("/api/v1/links", headers={"X-API-Key": forged})).get_json())[
        "detail"]


# the CLI -----------------------------------------------------------------------------------------------


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("BOLTLINK_")]:
        monkeypatch.delenv(name)

    def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
        return CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), *args], env=env, prog_name="boltlink")

    return invoke


def listed(run: Any) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in json.loads(run("apikey", "list", "--json").stdout)}


def test_apikey_create_expires_in_days_or_at_a_moment(run: Any) -> None:
    assert run("apikey", "create", "--name", "week", "--expires-in", "7").exit_code == 0
    made = run("apikey", "create", "--name", "newyear", "--expires-at", "2999-01-01T00:00:00")
    assert made.exit_code == 0 and "expires 2999-01-01 00:00 UTC" in made.stderr
    assert run("apikey", "create", "--name", "forever").exit_code == 0

    keys = listed(run)
    week = datetime.fromisoformat(keys["week"]["expires_at"])
    assert abs(week - (datetime.now(timezone.utc) + timedelta(days=7))) < timedelta(minutes=1)
    assert keys["newyear"]["expires_at"] == "2999-01-01T00:00:00+00:00"
    assert keys["forever"]["expires_at"] is None
    table = run("apikey", "list").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "SCOPES", "CREATED", "EXPIRES", "STATUS"]
    assert "2999-01-01 00:00" in next(line for line in table if " newyear " in line)


def test_a_default_expiry_from_the_config_and_bad_expiries(run: Any) -> None:
    assert run("apikey", "create", "--name", "ci", env={"BOLTLINK_API_KEY_DEFAULT_TTL_DAYS": "30"}).exit_code == 0
    expires = datetime.fromisoformat(listed(run)["ci"]["expires_at"])
    assert abs(expires - (datetime.now(timezone.utc) + timedelta(days=30))) < timedelta(minutes=1)

    past = run("apikey", "create", "--name", "late", "--expires-at", "2001-01-01")
    assert past.exit_code == 2 and "must be in the future" in past.stderr
    both = run("apikey", "create", "--name", "both", "--expires-in", "1", "--expires-at", "2999-01-01")
    assert both.exit_code == 2 and "not both" in both.output
    assert run("apikey", "create", "--name", "zero", "--expires-in", "0").exit_code == 2


async def test_apikey_list_marks_expired_keys(run: Any, tmp_path: Path) -> None:
    store = create_store(Config(data_dir=str(tmp_path / "data")))
    await store.open()
    try:
        _, old = new_api_key("old", ["admin"])
        await store.create_api_key(replace(old, expires_at=NOW - timedelta(days=1)))
    finally:
        await store.close()

    result = await asyncio.to_thread(run, "apikey", "list")  # the command runs its own event loop
    row = next(line for line in result.stdout.splitlines() if " old " in line)
    assert row.split()[-1] == "expired"
