"""Link storage: one interface (base.LinkStore), a backend per database."""

from __future__ import annotations

from boltlink.config import Config
from boltlink.store.base import LinkStore


def create_store(config: Config) -> LinkStore:
    """The store the config asks for, not yet opened: PostgreSQL when database_url is set."""
    if config.database_url:
        from boltlink.store.postgres import PostgresStore

        return PostgresStore(config.database_url)
    from boltlink.store.sqlite import SqliteStore

    return SqliteStore(config.sqlite_path)
