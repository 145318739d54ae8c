"""Per-process request counters, kept by one ASGI middleware around the whole app.

The cluster master sums them from every worker's heartbeat; the middleware
also answers with Connection: close while the process drains, so keep-alive
clients reconnect (to a worker that stays) instead of hitting a closed socket.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from boltlink.web.state import AppState

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


@dataclass
class RequestCounters:
    total: int = 0
    in_flight: int = 0
    by_class: dict[str, int] = field(default_factory=lambda: {"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0})

    def snapshot(self) -> dict[str, Any]:
        return {"requests": self.total, "in_flight": self.in_flight, "by_class": dict(self.by_class)}


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

        async def send_counted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                counters.by_class[_CLASSES.get(message["status"] // 100, "5xx")] += 1
                if state.draining:
                    message["headers"] = [*message.get("headers", ()), _CLOSE]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            counters.in_flight -= 1
            counters.total += 1
