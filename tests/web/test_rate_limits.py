"""Rate limits: a burst, then 429 with Retry-After; per API key and per client address; shared by every
process of a machine (a file) or of a deployment (Redis); and never an outage when Redis is down."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest

from boltlink.config import Config
from boltlink.events.base import EventSink
from boltlink.store.base import LinkStore
from boltlink.web import create_app, ratelimit_redis
from boltlink.web.fast_redirect import FastRedirect
from boltlink.web.ratelimit import Limit, LocalLimiter

PROBLEM = "application/problem+json"
PROXY = "127.0.0.1"  # the test client's peer below; trusted, so X-Forwarded-For names the client
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"


class NoSink(EventSink):
    async def emit(self, event: Any) -> None:
        pass


def limited_app(config: Config, store: LinkStore, **settings: Any) -> Any:
    settings.setdefault("trusted_proxies", [PROXY])
    return create_app(config.model_copy(update=settings), store, NoSink())


async def write(client: Any, key: str, ip: str | None = None, slug: str | None = None) -> Any:
    headers = {"X-API-Key": key, **({"X-Forwarded-For": ip} if ip else {})}
    body = {"url": "https://example.com/", **({"slug": slug} if slug else {})}
    return await client.post("/api/v1/links", json=body, headers=headers, scope_base={"client": (PROXY, 40000)})


async def assert_429(response: Any, per_minute: int) -> None:
    assert response.status_code == 429
    assert response.content_type == PROBLEM
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    problem = await response.get_json()
    assert problem["type"] == "urn:boltlink:problem:rate-limited"
    assert problem["status"] == 429 and problem["retry_after"] == retry_after
    assert f"at most {per_minute} a minute" in problem["detail"]


# -- writes, on both stores ----------------------------------------------------------------------


async def test_a_burst_then_429_with_retry_after_while_reads_go_on(config, store, key):
    client = limited_app(config, store, rate_limit_writes=3).test_client()

    for _ in range(3):
        assert (await write(client, key)).status_code == 201
    await assert_429(await write(client, key), per_minute=3)
    # PATCH and DELETE spend the same allowance; reading does not.
    link = await (await client.get("/api/v1/links?limit=1", headers={"X-API-Key": key})).get_json()
    slug = link["items"][0]["slug"]
    assert (await client.patch(f"/api/v1/links/{slug}", json={"title": "x"}, headers={"X-API-Key": key})
            ).status_code == 429
    assert (await client.delete(f"/api/v1/links/{slug}", headers={"X-API-Key": key})).status_code == 429
    for _ in range(5):
        assert (await client.get(f"/api/v1/links/{slug}", headers={"X-API-Key": key})).status_code == 200


async def test_each_api_key_has_its_own_allowance(config, store, make_key):
    client = limited_app(config, store, rate_limit_writes=2).test_client()
    busy, other = await make_key(store, "links:write"), await make_key(store, "links:write")

    # From a new address each time: only the key's bucket can run dry.
    assert (await write(client, busy, "198.51.100.1")).status_code == 201
    assert (await write(client, busy, "198.51.100.2")).status_code == 201
    await assert_429(await write(client, busy, "198.51.100.3"), per_minute=2)
    assert (await write(client, other, "198.51.100.4")).status_code == 201


async def test_each_client_address_has_its_own_allowance_and_a_refusal_spends_nothing(config, store, make_key):
    client = limited_app(config, store, rate_limit_writes=2).test_client()
    keys = [await make_key(store, "links:write") for _ in range(3)]

    assert (await write(client, keys[0], "203.0.113.5")).status_code == 201
    assert (await write(client, keys[1], "203.0.113.5")).status_code == 201
    await assert_429(await write(client, keys[2], "203.0.113.5"), per_minute=2)
    # keys[2] was refused at 203.0.113.5, and its own bucket lost nothing for it: two more elsewhere.
    assert (await write(client, keys[2], "203.0.113.6")).status_code == 201
    assert (await write(client, keys[2], "203.0.113.7")).status_code == 201


async def test_an_ipv6_client_counts_by_its_64(config, store, make_key):
    client = limited_app(config, store, rate_limit_writes=1).test_client()
    first, second = await make_key(store, "links:write"), await make_key(store, "links:write")

    assert (await write(client, first, "2001:db8:1:2::1")).status_code == 201
    await assert_429(await write(client, second, "2001:db8:1:2:ffff::9"), per_minute=1)
    assert (await write(client, second, "2001:db8:1:3::1")).status_code == 201


async def test_ipv4_clients_of_a_dual_stack_socket_count_one_by_one(config, store, make_key):
    """Listening on "::", IPv4 clients arrive as ::ffff:a.b.c.d: one /64 must not hold them all."""
    client = limited_app(config, store, rate_limit_writes=1).test_client()
    keys = [await make_key(store, "links:write") for _ in range(3)]

    assert (await write(client, keys[0], "::ffff:198.51.100.40")).status_code == 201
    assert (await write(client, keys[1], "::ffff:198.51.100.41")).status_code == 201
    await assert_429(await write(client, keys[2], "198.51.100.41"), per_minute=1)  # the same client


async def test_x_forwarded_for_from_an_untrusted_peer_is_not_a_way_around(config, store, make_key):
    client = limited_app(config, store, rate_limit_writes=1, trusted_proxies=[]).test_client()
    first, second = await make_key(store, "links:write"), await make_key(store, "links:write")

    assert (await write(client, first, "192.0.2.1")).status_code == 201
    await assert_429(await write(client, second, "192.0.2.2"), per_minute=1)  # both are 127.0.0.1


async def test_zero_turns_write_limits_off(config, store, key):
    client = limited_app(config, store, rate_limit_writes=0).test_client()
    for _ in range(15):
        assert (await write(client, key)).status_code == 201


async def test_bulk_counts_as_one_write(config, store, key):
    client = limited_app(config, store, rate_limit_writes=1).test_client()
    rows = [{"url": f"https://example.com/{n}"} for n in range(5)]
    response = await client.post("/api/v1/links/bulk", json=rows, headers={"X-API-Key": key})
    assert response.status_code == 200 and (await response.get_json())["created"] == 5
    assert (await write(client, key)).status_code == 429


# -- redirects ------------------------------------------------------------------------------------


async def test_limited_redirects_bypass_the_fast_path_and_answer_429(config, store, key):
    app = limited_app(config, store, rate_limit_redirects=2)
    client = app.test_client()
    layer = app.asgi_app
    while not isinstance(layer, FastRedirect):
        layer = layer.app
    assert layer.enabled is False
    assert (await write(client, key, slug="go")).status_code == 201
    visitor = {"scope_base": {"client": (PROXY, 40000)}, "headers": {"X-Forwarded-For": "198.51.100.20"}}

    assert (await client.get("/go", **visitor)).status_code == 302
    assert (await client.get("/nope", **visitor)).status_code == 404  # guessing slugs counts too
    await assert_429(await client.get("/go", **visitor), per_minute=2)
    browser = await client.get("/go", scope_base=visitor["scope_base"],
                               headers={**visitor["headers"], "Accept": "text/html"})
    assert browser.status_code == 429 and browser.headers["Retry-After"]
    assert "Too Many Requests" in await browser.get_data(as_text=True)
    # Another visitor is not held up by this one.
    assert (await client.get("/go", scope_base=visitor["scope_base"],
                             headers={"X-Forwarded-For": "198.51.100.21"})).status_code == 302


async def test_by_default_redirects_are_not_limited_and_take_the_fast_path(config, store):
    app = create_app(config, store, NoSink())
    layer = app.asgi_app
    while not isinstance(layer, FastRedirect):
        layer = layer.app
    assert config.rate_limit_redirects == 0 and layer.enabled is True


# -- the local table ------------------------------------------------------------------------------


def test_a_bucket_refills_at_its_rate_and_says_how_long_to_wait(tmp_path):
    limiter = LocalLimiter(tmp_path / "ratelimit")
    limit = Limit("t", per_minute=60, burst=2)  # one token a second, two at once

    assert limiter.take_now(limit, ["a"], 1000.0) == 0.0
    assert limiter.take_now(limit, ["a"], 1000.0) == 0.0
    assert limiter.take_now(limit, ["a"], 1000.0) == pytest.approx(1.0)
    assert limiter.take_now(limit, ["a"], 1000.5) == pytest.approx(0.5)
    assert limiter.take_now(limit, ["a"], 1001.0) == 0.0
    assert limiter.take_now(limit, ["a"], 1100.0) == 0.0  # full again after a long pause: two, not a hundred
    assert limiter.take_now(limit, ["a"], 1100.0) == 0.0
    assert limiter.take_now(limit, ["a"], 1100.0) > 0
    assert limiter.take_now(limit, ["b"], 1100.0) == 0.0  # another client, another bucket
    assert limiter.take_now(Limit("u", 60, 2), ["a"], 1100.0) == 0.0  # another kind of limit too


def test_many_clients_each_get_their_own_bucket(tmp_path):
    limiter = LocalLimiter(tmp_path / "ratelimit")
    limit = Limit("t", per_minute=1)
    clients = [f"ip:10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" for n in range(40_000)]

    assert all(limiter.take_now(limit, [c], 50.0) == 0.0 for c in clients)
    assert all(limiter.take_now(limit, [c], 50.0) > 0 for c in clients)


_TAKER = """
import sys
from pathlib import Path
from boltlink.web.ratelimit import Limit, LocalLimiter
limiter = LocalLimiter(Path(sys.argv[1]))
print(sum(limiter.take_now(Limit("t", per_minute=30_000), ["shared"], 7.0) == 0.0 for _ in range(20_000)))
"""


def test_processes_on_one_machine_share_one_allowance(tmp_path):
    """What the cluster's API workers do: three processes at once, one bucket of 30,000 (a clock that stands
    still). Without the lock, two processes that read the same level both spend it, and more get through."""
    table = tmp_path / "run" / "ratelimit.v1"
    takers = [subprocess.Popen([sys.executable, "-c", _TAKER, str(table)], stdout=subprocess.PIPE, text=True)
              for _ in range(3)]
    allowed = [int(taker.communicate(timeout=60)[0]) for taker in takers]

    assert sum(allowed) == 30_000, allowed
    assert table.stat().st_mode & 0o777 == 0o600


# -- Redis ----------------------------------------------------------------------------------------


@pytest.fixture
def redis_prefix(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    prefix = f"boltlink-test:ratelimit:{uuid.uuid4().hex}:"
    monkeypatch.setattr(ratelimit_redis, "PREFIX", prefix)
    return prefix


async def test_two_app_instances_share_their_buckets_through_redis(config, store, key, redis_url, redis_prefix):
    pods = [limited_app(config, store, rate_limit_writes=3, redis_url=redis_url) for _ in range(2)]
    clients = [pod.test_client() for pod in pods]
    try:
        assert (await write(clients[0], key, "198.51.100.30")).status_code == 201
        assert (await write(clients[1], key, "198.51.100.31")).status_code == 201
        assert (await write(clients[0], key, "198.51.100.32")).status_code == 201
        await assert_429(await write(clients[1], key, "198.51.100.33"), per_minute=3)

        redis = pods[0].extensions["boltlink"].limiter._client
        keys = [k.decode() async for k in redis.scan_iter(match=f"{redis_prefix}*")]
        assert f"{redis_prefix}writes:key:{key.split('_')[1]}" in keys
        ttls = [await redis.pttl(k) for k in keys]
        assert all(0 < ttl <= 61_000 for ttl in ttls), ttls  # gone once they would be full again
    finally:
        for pod in pods:
            await pod.extensions["boltlink"].limiter.close()


async def test_with_redis_down_writes_go_on_under_the_local_limit(config, store, key, caplog):
    app = limited_app(config, store, rate_limit_writes=3, redis_url=CLOSED_PORT_REDIS)
    client = app.test_client()
    caplog.set_level(logging.INFO, logger="boltlink.web")
    try:
        started = time.monotonic()
        for _ in range(3):
            assert (await write(client, key)).status_code == 201
        await assert_429(await write(client, key), per_minute=3)
        assert time.monotonic() - started < 5  # Redis is asked once, not on every request
    finally:
        await app.extensions["boltlink"].limiter.close()
    warnings = [r for r in caplog.records if "Redis is unreachable" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


async def test_the_limiter_asks_redis_again_once_it_is_back(redis_url, redis_prefix, tmp_path, monkeypatch, caplog):
    limiter = ratelimit_redis.RedisLimiter(CLOSED_PORT_REDIS, fallback=LocalLimiter(tmp_path / "t"))
    caplog.set_level(logging.INFO, logger="boltlink.web")
    try:
        limit = Limit("t", per_minute=1)
        assert await limiter.take(limit, ["a"]) == 0.0  # from the local table
        await limiter._client.aclose()
        limiter._client = ratelimit_redis.connect(redis_url)  # Redis "comes back"
        limiter._script = limiter._client.register_script(ratelimit_redis.TOKEN_BUCKET)
        limiter._retry_at = time.monotonic()  # and the retry moment has come
        assert await limiter.take(limit, ["a"]) == 0.0  # Redis's bucket: a fresh one
        assert await limiter.take(limit, ["a"]) > 0
        assert await limiter._client.exists(f"{redis_prefix}t:a")
    finally:
        await limiter.close()
    assert any("Redis is back" in r.getMessage() for r in caplog.records)


async def test_the_openapi_document_names_429_where_limits_apply(client):
    paths = (await (await client.get("/openapi.json")).get_json())["paths"]
    writes = [paths["/api/v1/links"]["post"], paths["/api/v1/links/bulk"]["post"],
              paths["/api/v1/links/{slug}"]["patch"], paths["/api/v1/links/{slug}"]["delete"]]
    assert all("429" in operation["responses"] for operation in writes)
    assert "429" in paths["/{slug}"]["get"]["responses"]
    assert "429" not in paths["/api/v1/links"]["get"]["responses"]  # reading is never limited
