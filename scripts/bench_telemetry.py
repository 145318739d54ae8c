#!/usr/bin/env python3
"""What the per-request telemetry costs on the redirect path.

    python scripts/bench_telemetry.py [--requests 200000]

Runs the same ASGI request (a 302 from a trivial app) through the telemetry
middleware and without it, in one process, and prints the extra time per
request, with the heartbeat's own cost (one snapshot + JSON line a second).
Compare with what a whole redirect costs (about 330 us of CPU per request at
6,000 redirects/s on 2 cores, from the cluster benchmark) to get the share.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from boltlink.config import Config
from boltlink.store.memory import MemoryStore
from boltlink.web.state import AppState
from boltlink.web.telemetry import ROUTE_KEY, RequestCounters, TelemetryMiddleware

ROUNDS = 5


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    scope[ROUTE_KEY] = "/<slug>"
    await send({"type": "http.response.start", "status": 302, "headers": [(b"location", b"https://example.com")]})
    await send({"type": "http.response.body", "body": b""})


async def sent(message: dict[str, Any]) -> None:
    return None


def receiver() -> Any:
    """An ASGI receive: the (empty) request body once, then nothing until the app gives up waiting."""
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # cancelled by the app once it has answered
        return {"type": "http.disconnect"}

    return receive


async def per_request(app: Any, requests: int) -> float:
    scope = {"type": "http", "method": "GET", "path": "/go", "raw_path": b"/go", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1")], "http_version": "1.1", "scheme": "http",
             "server": ("127.0.0.1", 5000), "client": ("127.0.0.1", 40000), "root_path": "", "asgi": {"version": "3.0"}}
    started = time.perf_counter()
    for _ in range(requests):
        await app(dict(scope), receiver(), sent)
    return (time.perf_counter() - started) / requests


async def main_async(requests: int) -> None:
    config = Config()
    state = AppState(config=config, store=MemoryStore(), sink=None)  # type: ignore[arg-type]
    counters = RequestCounters()
    wrapped = TelemetryMiddleware(bare_app, counters, state)
    bare, with_telemetry = [], []
    for _ in range(ROUNDS):  # interleaved, so a busy moment hits both alike
        bare.append(await per_request(bare_app, requests))
        with_telemetry.append(await per_request(wrapped, requests))
    extra = statistics.median(with_telemetry) - statistics.median(bare)
    started = time.perf_counter()
    for _ in range(1000):
        json.dumps({"type": "heartbeat", **counters.snapshot()}, separators=(",", ":"))
    heartbeat = (time.perf_counter() - started) / 1000
    print(f"bare ASGI call:          {statistics.median(bare) * 1e6:6.2f} us/request (median of {ROUNDS})")
    print(f"with telemetry:          {statistics.median(with_telemetry) * 1e6:6.2f} us/request")
    print(f"telemetry per request:   {extra * 1e6:6.2f} us  "
          f"({100 * extra / 330e-6:.1f}% of a redirect's ~330 us of CPU)")
    print(f"heartbeat (once a second): {heartbeat * 1e6:6.1f} us")
    assert counters.total == ROUNDS * requests
    await route_hook_cost(max(1000, requests // 20))


async def route_hook_cost(requests: int) -> None:
    """Naming the route (web.telemetry.name_routes), on a real redirect through the whole Quart app."""
    from boltlink.events.base import EventSink
    from boltlink.shortener import LinkDraft, LinkRules, create_link
    from boltlink.web import create_app

    class NoSink(EventSink):
        async def emit(self, event: Any) -> None:
            return None

    config = Config(do_not_track=True)
    store = MemoryStore()
    await store.open()
    await create_link(store, LinkDraft(url="https://example.com", slug="go"), LinkRules.for_config(config))
    app = create_app(config, store, NoSink())
    await app.startup()
    named = dict(app.view_functions)
    unwrapped = {endpoint: getattr(view, "__wrapped__", view) for endpoint, view in named.items()}
    with_hook, without = [], []
    for _ in range(ROUNDS):
        with_hook.append(await per_request(app, requests))
        app.view_functions.update(unwrapped)
        without.append(await per_request(app, requests))
        app.view_functions.update(named)
    extra = statistics.median(with_hook) - statistics.median(without)
    print(f"whole redirect in Quart: {statistics.median(with_hook) * 1e6:6.1f} us/request (no server, no socket)")
    print(f"route naming:            {extra * 1e6:6.2f} us/request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args()
    asyncio.run(main_async(args.requests))


if __name__ == "__main__":
    main()
