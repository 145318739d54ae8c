"""The SQLite database file: how a new one is made, and that an older one keeps working as it is."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from boltlink.store import sqlite_db as db
from boltlink.store.base import NewLink
from boltlink.store.sqlite import SqliteStore


def _pragma(path: Path, name: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


async def test_a_new_database_gets_16_kib_pages_and_a_64_mib_wal_between_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "boltlink.sqlite3"
    store = SqliteStore(path)
    await store.open()
    try:
        await store.create_link(NewLink(slug="one", url="https://example.com/"))
        assert _pragma(path, "page_size") == 16384
        conn = db.connect(path)
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 4096  # pages of 16 KiB: 64 MiB
        conn.close()
    finally:
        await store.close()


async def test_a_database_made_with_4_kib_pages_keeps_them_and_its_links(tmp_path: Path) -> None:
    path = tmp_path / "boltlink.sqlite3"
    old = sqlite3.connect(path)  # as an earlier boltlink made it: SQLite's default page size, then WAL
    old.execute("PRAGMA page_size = 4096")
    old.execute("PRAGMA journal_mode = WAL")
    old.close()
    store = SqliteStore(path)
    await store.open()
    try:
        await store.create_link(NewLink(slug="kept", url="https://example.com/"))
        assert (await store.get_link("kept")) is not None
        assert _pragma(path, "page_size") == 4096
        conn = db.connect(path)
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 16384  # still 64 MiB of WAL
        conn.close()
    finally:
        await store.close()
