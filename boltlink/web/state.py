"""What one API process holds for its lifetime: config, store, and whether it is draining."""

from __future__ import annotations

from dataclasses import dataclass, field

from quart import current_app

from boltlink.config import Config
from boltlink.events.base import EventSink
from boltlink.store.base import LinkStore
from boltlink.web.clicks import Network, trusted_networks


@dataclass
class AppState:
    config: Config
    store: LinkStore
    sink: EventSink
    # Set when shutdown begins, so /ready fails before the listener closes
    # and a load balancer stops sending new requests first.
    draining: bool = False
    trusted: tuple[Network, ...] = field(default=())

    def __post_init__(self) -> None:
        self.trusted = trusted_networks(self.config)


def app_state() -> AppState:
    return current_app.extensions["boltlink"]
