"""What one API process holds for its lifetime: config, store, and whether it is draining."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from quart import current_app

from boltlink.config import Config
from boltlink.events.base import EventSink
from boltlink.store.base import LinkStore
from boltlink.store.link_cache import LinkCache
from boltlink.web.clicks import Network, trusted_networks
from boltlink.web.ratelimit import RateLimiter, create_limiter
from boltlink.web.telemetry import RequestCounters


@dataclass
class AppState:
    config: Config
    store: LinkStore
    sink: EventSink
    # Set when shutdown begins, so /ready fails before the listener closes
    # and a load balancer stops sending new requests first.
    draining: bool = False
    trusted: tuple[Network, ...] = field(default=())
    counters: RequestCounters = field(default_factory=RequestCounters)
    links: LinkCache = field(init=False)  # the redirect path's view of the store
    limiter: RateLimiter = field(init=False)  # rate limits' buckets (web/throttle.py)
    # Cluster-wide figures for /metrics (the master's, under a cluster); None: this process's own.
    cluster_metrics: Callable[[], Awaitable[dict[str, Any]]] | None = None
    # The master's status (what `status --json` prints), under a cluster; None for `serve` alone.
    cluster_status: Callable[[], Awaitable[dict[str, Any]]] | None = None
    aggregator_figures: dict[str, Any] | None = None  # `serve` alone: its in-process aggregator's figures

    def __post_init__(self) -> None:
        self.trusted = trusted_networks(self.config)
        self.links = LinkCache(self.store)
        self.limiter = create_limiter(self.config)


def app_state() -> AppState:
    return current_app.extensions["boltlink"]
