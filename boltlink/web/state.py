"""What one API process holds for its lifetime: config, store, and whether it is draining."""

from __future__ import annotations

from dataclasses import dataclass

from quart import current_app

from boltlink.config import Config
from boltlink.store.base import LinkStore


@dataclass
class AppState:
    config: Config
    store: LinkStore
    # Set when shutdown begins, so /ready fails before the listener closes
    # and a load balancer stops sending new requests first.
    draining: bool = False


def app_state() -> AppState:
    return current_app.extensions["boltlink"]
