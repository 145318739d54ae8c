"""Per-process request counters, kept by one ASGI middleware around the whole app.

The cluster master sums them from every worker's heartbeat (boltlink.metrics
describes the figures); the middleware also answers with Connection: close
while the process drains, so keep-alive clients reconnect (to a worker that
stays) instead of hitting a closed socket.

Cost on the redirect path: two perf_counter() calls, a bisect and a few dict
increments per request (measured in the closing note of issue #5 with
scripts/bench_telemetry.py).
"""

from __future__ import annotations

import functools
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from quart import Quart, request

from boltlink.metrics import LATENCY_BUCKETS, STATUS_CLASSES

if TYPE_CHECKING:
    from boltlink.web.state import AppState

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]

ROUTE_KEY = "boltlink.route"  # set in the ASGI scope by the app once it matched a route (see create_app)
UNMATCHED = "unmatched"  # no route: 404s for unknown paths, so a scanner can't blow up the label set


@dataclass
class RequestCounters:
    """Counts since this process started; only ever go up (the master turns them into rates)."""

    total: int = 0
    in_flight: int = 0
    by_class: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUS_CLASSES, 0))
    routes: dict[str, dict[str, int]] = field(default_factory=dict)  # route -> status class -> count
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))  # last: over the top
    latency_sum: float = 0.0
    clicks_queued: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.total, "in_flight": self.in_flight, "by_class": dict(self.by_class),
            "routes": {route: dict(classes) for route, classes in self.routes.items()},
            "latency": list(self.latency), "latency_sum": round(self.latency_sum, 6),
            "clicks_queued": self.clicks_queued,
        }

    def observe(self, route: str, status_class: str, seconds: float) -> None:
        self.total += 1
        self.by_class[status_class] += 1
        classes = self.routes.get(route)
        if classes is None:
            classes = self.routes[route] = dict.fromkeys(STATUS_CLASSES, 0)
        classes[status_class] += 1
        self.latency[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds


def name_routes(app: Quart) -> None:
    """Make every view put its route's rule ("/<slug>") in the ASGI scope, for the counters' route label.

    Wrapping the views costs ~1 us a request; a before_request hook doing the
    same cost 14 us on a redirect (scripts/bench_telemetry.py). functools.wraps
    keeps the attributes quart-schema put on the views, so the OpenAPI document
    does not change.
    """
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        if view is None or getattr(view, "_boltlink_route", None) is not None:
            continue
        app.view_functions[rule.endpoint] = _named(view, rule.rule)


def _named(view: Callable[..., Any], route: str) -> Callable[..., Any]:
    @functools.wraps(view)
    async def named_view(*args: Any, **kwargs: Any) -> Any:
        request.scope[ROUTE_KEY] = route
        return await view(*args, **kwargs)

    named_view._boltlink_route = route  # type: ignore[attr-defined]
    return named_view


_CLOSE = (b"connection", b"close")
_CLASSES = {1: "2xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


class TelemetryMiddleware:
    def __init__(self, app: ASGIApp, counters: RequestCounters, state: AppState) -> None:
        self.app = app
        self.counters = counters
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        counters, state = self.counters, self.state
        counters.in_flight += 1
        started = time.perf_counter()
        status_class = "5xx"  # what a request that dies before answering counts as

        async def send_counted(message: dict[str, Any]) -> None:
            nonlocal status_class
            if message["type"] == "http.response.start":
                status_class = _CLASSES.get(message["status"] // 100, "5xx")
                if state.draining:
                    message["headers"] = [*message.get("headers", ()), _CLOSE]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            counters.in_flight -= 1
            counters.observe(scope.get(ROUTE_KEY, UNMATCHED), status_class, time.perf_counter() - started)
