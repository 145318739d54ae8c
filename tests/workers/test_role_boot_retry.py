"""A background role (aggregator, analytics) started while its database or Redis is down waits for it."""

from __future__ import annotations

import asyncio

import pytest

from boltlink.config import Config
from boltlink.errors import ConfigError, RedisUnavailable, StoreUnavailable
from boltlink.workers import runtime
from boltlink.workers.runtime import Telemetry, start_when_reachable


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "BOOT_RETRY_SECONDS", 0.01)


def failing_first(*errors: Exception):
    """A role main that raises each error in turn at boot, then becomes ready and returns."""
    attempts: list[int] = []

    async def main(config: Config, stop: asyncio.Event, telemetry: Telemetry) -> None:
        attempts.append(len(attempts))
        if len(attempts) <= len(errors):
            raise errors[len(attempts) - 1]
        telemetry.ready()

    return main, attempts


async def test_a_role_that_cannot_reach_its_store_or_redis_at_boot_tries_again_until_it_can() -> None:
    main, attempts = failing_first(StoreUnavailable("PostgreSQL is down"), RedisUnavailable("Redis is down"))
    telemetry = Telemetry()
    await asyncio.wait_for(start_when_reachable(main, Config(), asyncio.Event(), telemetry), 5)
    assert len(attempts) == 3 and telemetry.is_ready


async def test_other_boot_errors_still_end_the_role() -> None:
    main, attempts = failing_first(ConfigError("bad setting"))
    with pytest.raises(ConfigError):
        await start_when_reachable(main, Config(), asyncio.Event(), Telemetry())
    assert len(attempts) == 1


async def test_a_store_lost_after_the_role_was_ready_is_not_retried_here() -> None:
    async def main(config: Config, stop: asyncio.Event, telemetry: Telemetry) -> None:
        telemetry.ready()
        raise StoreUnavailable("lost later")  # the role's own loop decides what to do with that

    with pytest.raises(StoreUnavailable):
        await start_when_reachable(main, Config(), asyncio.Event(), Telemetry())


async def test_a_stop_while_waiting_for_the_store_ends_the_role_at_once() -> None:
    stop = asyncio.Event()

    async def main(config: Config, stop_: asyncio.Event, telemetry: Telemetry) -> None:
        stop.set()  # SIGTERM arrives during the first attempt
        raise StoreUnavailable("down")

    await asyncio.wait_for(start_when_reachable(main, Config(), stop, Telemetry()), 5)
