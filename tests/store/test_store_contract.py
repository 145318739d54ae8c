"""The LinkStore contract, run against every backend: memory, SQLite and PostgreSQL.

Concurrency claims (migrations racing, max_clicks under load) are proven with
real OS processes where a backend is shared between processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from boltlink.errors import (
    ConfigError,
    Conflict,
    InvalidInput,
    MigrationError,
    SlugTaken,
    StoreUnavailable,
)
from boltlink.store import postgres as postgres_module
from boltlink.store import sqlite_db as sqlite_module
from boltlink.store.base import SORT_KEYS, ApiKey, LinkQuery, LinkStore, NewLink
from boltlink.store.memory import MemoryStore
from boltlink.store.postgres import PostgresStore
from boltlink.store.schema import Migration, load_migrations
from boltlink.store.sqlite import SqliteStore

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


@dataclass
class Backend:
    name: str
    make: Callable[[], LinkStore]  # a new, unopened store on this backend's database
    target: str = ""  # SQLite path or PostgreSQL URL, for other processes

    @property
    def dialect(self) -> str:
        return "postgres" if self.name == "postgres" else "sqlite"

    def shared_only(self) -> None:
        if self.name == "memory":
            pytest.skip("a MemoryStore is not shared between stores or processes")


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "memory":
        return Backend("memory", MemoryStore)
    if request.param == "sqlite":
        path = tmp_path / "data" / "boltlink.sqlite3"  # the parent does not exist yet: open() creates it
        return Backend("sqlite", lambda: SqliteStore(path), str(path))
    url = request.getfixturevalue("postgres_url")
    return Backend("postgres", lambda: PostgresStore(url), url)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[LinkStore]:
    opened = backend.make()
    await opened.open()
    yield opened
    await opened.close()


def link(slug: str, **fields: object) -> NewLink:
    return NewLink(slug=slug, url=fields.pop("url", f"https://example.com/{slug}"), **fields)  # type: ignore[arg-type]


def api_key(key_id: str, name: str, **fields: object) -> ApiKey:
    fields.setdefault("created_at", datetime(2025, 1, 1, tzinfo=UTC))
    return ApiKey(id=key_id, name=name, key_hash="0" * 64, scopes=("links:read",), **fields)  # type: ignore[arg-type]


# other processes ------------------------------------------------------------------

_WORKER = """
import asyncio, json, sys, time
from pathlib import Path
from boltlink.store.postgres import PostgresStore
from boltlink.store.sqlite import SqliteStore

kind, target, start_at, action, *args = sys.argv[1:]

if action == "migrate" and args:  # one more migration, as the next release would ship it
    from boltlink.store import postgres, schema, sqlite_db

    def with_extra(dialect, shipped=schema.load_migrations):
        known = shipped(dialect)
        return (*known, schema.Migration(known[-1].version + 1, "extra", args[0]))

    sqlite_db.load_migrations = postgres.load_migrations = with_extra

async def main():
    store = SqliteStore(Path(target)) if kind == "sqlite" else PostgresStore(target)
    await store.open(migrate=(action != "migrate"))
    await asyncio.sleep(max(0.0, float(start_at) - time.time()))  # everyone starts at the same instant
    if action == "migrate":
        report = await store.migrate()
        print(json.dumps({"applied": report.applied, "current": report.current}))
    else:
        slug, count = args
        granted = await asyncio.gather(*(store.consume_click(slug) for _ in range(int(count))))
        print(json.dumps({"granted": sum(granted)}))
    await store.close()

asyncio.run(main())
"""


async def run_processes(backend: Backend, count: int, *args: str) -> list[dict[str, object]]:
    """Start `count` processes that act on the backend at the same instant; their JSON outputs."""
    start_at = str(time.time() + 2.0)  # after every process has imported and connected
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _WORKER, backend.dialect, backend.target, start_at, *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        for _ in range(count)
    ]
    try:
        outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 60)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    return [json.loads(out) for out, _ in outputs]


# lifecycle and migrations ------------------------------------------------------------


async def test_first_migrate_applies_every_version_and_the_second_none(backend: Backend) -> None:
    versions = [m.version for m in load_migrations(backend.dialect)]
    store = backend.make()
    try:
        first = await store.migrate()
        second = await store.migrate()
        await store.open()  # opening a migrated database applies nothing and works
        await store.ping()
    finally:
        await store.close()
    assert first.applied == versions
    assert first.current == versions[-1]
    assert second.applied == []
    assert second.current == versions[-1]


async def test_processes_migrating_at_once_apply_each_version_exactly_once(backend: Backend) -> None:
    backend.shared_only()
    versions = [m.version for m in load_migrations(backend.dialect)]
    reports = await run_processes(backend, 4, "migrate")
    applied = sorted(v for report in reports for v in report["applied"])  # type: ignore[attr-defined]
    assert applied == versions
    assert {report["current"] for report in reports} == {versions[-1]}


async def test_processes_upgrading_at_once_apply_a_new_version_exactly_once(backend: Backend) -> None:
    # The rolling-upgrade case: the schema exists, and every worker of the new release starts together.
    backend.shared_only()
    store = backend.make()
    await store.open()
    await store.close()
    newest = load_migrations(backend.dialect)[-1].version + 1
    reports = await run_processes(backend, 4, "migrate", "CREATE TABLE extra (x integer);")
    assert sorted(v for report in reports for v in report["applied"]) == [newest]  # type: ignore[attr-defined]
    assert {report["current"] for report in reports} == {newest}


async def test_failed_migration_raises_and_rolls_back_everything_pending(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.shared_only()
    module = sqlite_module if backend.dialect == "sqlite" else postgres_module
    real = load_migrations(backend.dialect)
    next_version = real[-1].version + 1
    create_extra = "CREATE TABLE extra (x integer);\n"
    broken = Migration(next_version, "broken", create_extra + create_extra)  # the second one fails
    store = backend.make()
    try:
        monkeypatch.setattr(module, "load_migrations", lambda dialect: (*real, broken))
        with pytest.raises(MigrationError, match=rf"{next_version:04d}_broken\.sql.*extra"):
            await store.migrate()
        # Nothing stuck: the real versions are still pending and "extra" does not exist.
        fixed = Migration(next_version, "extra", create_extra)
        monkeypatch.setattr(module, "load_migrations", lambda dialect: (*real, fixed))
        report = await store.migrate()
    finally:
        await store.close()
    assert report.applied == [m.version for m in real] + [next_version]


def test_migrations_exist_for_both_dialects_with_the_same_versions() -> None:
    sqlite_versions = [m.version for m in load_migrations("sqlite")]
    assert sqlite_versions and sqlite_versions == [m.version for m in load_migrations("postgres")]
    assert sqlite_versions == sorted(set(sqlite_versions))


def test_migrations_are_read_from_inside_a_zip_archive(tmp_path: Path) -> None:
    # The pyz imports boltlink from an archive: no migration may be looked up by filesystem path.
    archive = tmp_path / "boltlink.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in (REPO_ROOT / "boltlink").rglob("*"):
            if file.is_file() and "__pycache__" not in file.parts:
                zf.write(file, file.relative_to(REPO_ROOT))
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import boltlink; assert boltlink.__file__.startswith(sys.argv[1]), boltlink.__file__;"
        "from boltlink.store.schema import load_migrations;"
        "print([m.version for m in load_migrations('sqlite')], [m.version for m in load_migrations('postgres')])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(archive)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    versions = [m.version for m in load_migrations("sqlite")]
    assert done.stdout.strip() == f"{versions} {versions}"


async def test_close_twice_is_safe_and_a_closed_store_is_unavailable(backend: Backend) -> None:
    store = backend.make()
    with pytest.raises(StoreUnavailable):
        await store.ping()  # not open yet
    await store.open()
    await store.ping()
    await store.close()
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.ping()
    with pytest.raises(StoreUnavailable):
        await store.get_link("abc")


async def test_sqlite_where_no_directory_can_be_created_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    path = blocker / "data" / "boltlink.sqlite3"
    with pytest.raises(StoreUnavailable, match="Cannot create the directory.*a-file"):
        await SqliteStore(path).open()


@pytest.mark.parametrize("content", ["directory", "garbage"])
async def test_sqlite_path_that_is_no_database_is_unavailable(tmp_path: Path, content: str) -> None:
    path = tmp_path / "boltlink.sqlite3"
    if content == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"this is not an SQLite database, just some bytes" * 100)
    store = SqliteStore(path)
    with pytest.raises(StoreUnavailable, match="boltlink.sqlite3"):
        await store.open()
    await store.close()


async def test_postgres_on_a_closed_port_is_unavailable_without_showing_the_password() -> None:
    store = PostgresStore(f"postgresql://boltlink:s3cret@127.0.0.1:{free_port()}/boltlink")
    with pytest.raises(StoreUnavailable, match="127.0.0.1") as caught:
        await store.open()
    assert "s3cret" not in str(caught.value)
    with pytest.raises(StoreUnavailable):
        await store.ping()
    await store.close()


async def test_postgres_with_an_invalid_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid"):
        await PostgresStore("mysql://user:pw@localhost/db").open()


@pytest.mark.postgres
async def test_postgres_ping_is_unavailable_once_the_database_is_gone(postgres_url: str) -> None:
    import asyncpg

    store = PostgresStore(postgres_url)
    await store.open()
    try:
        name = postgres_url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(postgres_url.rsplit("/", 1)[0] + "/postgres")
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        for _ in range(2):  # the dead pooled connection, then the reconnect to a missing database
            with pytest.raises(StoreUnavailable):
                await store.ping()
    finally:
        await store.close()


# links ---------------------------------------------------------------------------


async def test_a_created_link_reads_back_equal_with_utc_times(store: LinkStore) -> None:
    expires = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    before = datetime.now(UTC) - timedelta(seconds=1)
    created = await store.create_link(
        NewLink(slug="Docs", url="https://example.com/docs?a=1", title="The docs", tags=("b", "a"),
                expires_at=expires, max_clicks=3, redirect_status=308, forward_query=True)
    )  # fmt: skip
    read = await store.get_link("Docs")
    assert read == created
    assert read is not None
    assert (read.slug, read.url, read.title) == ("Docs", "https://example.com/docs?a=1", "The docs")
    assert read.tags == ("b", "a")
    assert (read.max_clicks, read.max_clicks_used, read.redirect_status, read.forward_query) == (3, 0, 308, True)
    assert (read.clicks_total, read.clicks_humans, read.clicks_bots) == (0, 0, 0)
    assert read.expires_at == expires  # microseconds kept
    for stamp in (read.created_at, read.updated_at, read.expires_at):
        assert stamp.utcoffset() == timedelta(0)
    assert before <= read.created_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert read.updated_at == read.created_at


async def test_slugs_are_unique_and_case_sensitive(store: LinkStore) -> None:
    first = await store.create_link(link("abc", url="https://one.example"))
    with pytest.raises(SlugTaken):
        await store.create_link(link("abc", url="https://two.example"))
    upper = await store.create_link(link("ABC", url="https://three.example"))
    assert upper.id != first.id
    assert (await store.get_link("abc")).url == "https://one.example"  # type: ignore[union-attr]
    assert (await store.get_link("ABC")).url == "https://three.example"  # type: ignore[union-attr]
    assert await store.get_link("Abc") is None


async def test_tags_keep_the_order_given_without_repeats(store: LinkStore) -> None:
    await store.create_link(link("t", tags=("zeta", "alpha", "mid", "alpha")))
    assert (await store.get_link("t")).tags == ("zeta", "alpha", "mid")  # type: ignore[union-attr]
    page = await store.list_links(LinkQuery(tag="mid"))
    assert [item.tags for item in page.items] == [("zeta", "alpha", "mid")]


async def _search_fixture(store: LinkStore) -> None:
    await store.create_link(link("alpha", url="https://example.com/one", title="First Post"))
    await store.create_link(link("Beta", url="https://EXAMPLE.org/100%_sure", tags=("news",)))
    await store.create_link(link("gamma", url="https://other.net/x", title="An Example title", tags=("news", "misc")))
    await store.create_link(link("d_x", url="https://other.net/percent", title="100 percent"))


async def slugs(store: LinkStore, **query: object) -> list[str]:
    page = await store.list_links(LinkQuery(**{"limit": 100, "sort": "slug", **query}))  # type: ignore[arg-type]
    assert page.total == len(page.items)
    return [item.slug for item in page.items]


async def test_search_is_a_case_insensitive_substring_of_url_slug_and_title(store: LinkStore) -> None:
    await _search_fixture(store)
    assert await slugs(store, q="example") == ["Beta", "alpha", "gamma"]
    assert await slugs(store, q="BETA") == ["Beta"]
    assert await slugs(store, q="post") == ["alpha"]
    assert await slugs(store, q="nothing-like-this") == []


async def test_search_takes_like_wildcards_literally(store: LinkStore) -> None:
    await _search_fixture(store)
    assert await slugs(store, q="%") == ["Beta"]
    assert await slugs(store, q="_") == ["Beta", "d_x"]
    assert await slugs(store, q="0%_s") == ["Beta"]
    assert await slugs(store, q="100%") == ["Beta"]  # "100 percent" must not match
    assert await slugs(store, q="\\") == []


async def test_search_folds_non_ascii_letters(store: LinkStore, backend: Backend) -> None:
    if backend.name == "postgres":
        pytest.skip("PostgreSQL folds non-ASCII letters per the database's locale")
    await store.create_link(link("cafe", title="CAFÉ ÖLAND"))
    assert await slugs(store, q="café öland") == ["cafe"]


async def test_tag_filter_is_exact_and_combines_with_search(store: LinkStore) -> None:
    await _search_fixture(store)
    assert await slugs(store, tag="news") == ["Beta", "gamma"]
    assert await slugs(store, tag="News") == []
    assert await slugs(store, tag="new") == []
    assert await slugs(store, tag="news", q="title") == ["gamma"]


async def test_sorts_by_slug_and_url_in_code_point_order(store: LinkStore) -> None:
    await _search_fixture(store)
    assert await slugs(store) == ["Beta", "alpha", "d_x", "gamma"]  # uppercase first, whatever the locale
    assert await slugs(store, sort="-slug") == ["gamma", "d_x", "alpha", "Beta"]
    by_url = await store.list_links(LinkQuery(sort="url"))
    assert [item.url for item in by_url.items] == [
        "https://EXAMPLE.org/100%_sure", "https://example.com/one", "https://other.net/percent", "https://other.net/x"
    ]  # fmt: skip
    by_url_desc = await store.list_links(LinkQuery(sort="-url"))
    assert by_url_desc.items == by_url.items[::-1]


async def test_sorts_by_creation_newest_first_by_default(store: LinkStore) -> None:
    for slug in ("one", "two", "three"):
        await store.create_link(link(slug))
    assert [item.slug for item in (await store.list_links(LinkQuery())).items] == ["three", "two", "one"]
    assert [item.slug for item in (await store.list_links(LinkQuery(sort="created_at"))).items] == [
        "one", "two", "three"
    ]  # fmt: skip


async def set_clicks(backend: Backend, store: LinkStore, slug: str, total: int) -> None:
    """Stand-in for the aggregator (a later issue), which is what writes clicks_total."""
    if isinstance(store, MemoryStore):
        store._links[slug] = dataclasses.replace(store._links[slug], clicks_total=total)
    elif backend.dialect == "sqlite":
        with sqlite3.connect(backend.target, timeout=5) as conn:
            conn.execute("UPDATE links SET clicks_total = ? WHERE slug = ?", (total, slug))
        conn.close()
    else:
        import asyncpg

        conn = await asyncpg.connect(backend.target)
        await conn.execute("UPDATE links SET clicks_total = $1 WHERE slug = $2", total, slug)
        await conn.close()


async def test_sort_by_clicks_uses_clicks_total(store: LinkStore, backend: Backend) -> None:
    for slug, total in (("few", 2), ("many", 40), ("none", 0), ("some", 7)):
        await store.create_link(link(slug))
        await set_clicks(backend, store, slug, total)
    page = await store.list_links(LinkQuery(sort="-clicks"))
    assert [(item.slug, item.clicks_total) for item in page.items] == [
        ("many", 40), ("some", 7), ("few", 2), ("none", 0)
    ]  # fmt: skip
    assert [item.slug for item in (await store.list_links(LinkQuery(sort="clicks"))).items] == [
        "none", "few", "some", "many"
    ]  # fmt: skip


@pytest.mark.parametrize("sort", SORT_KEYS)
async def test_paging_is_stable_when_sort_values_tie(store: LinkStore, sort: str) -> None:
    created = [await store.create_link(link(f"s{i}", url="https://same.example")) for i in range(7)]
    seen = []
    for number in (1, 2, 3):
        page = await store.list_links(LinkQuery(sort=sort, page=number, limit=3))
        assert (page.total, page.page, page.limit, page.pages) == (7, number, 3, 3)
        seen.extend(item.slug for item in page.items)
    assert sorted(seen) == sorted(link.slug for link in created)  # every link exactly once
    if sort.lstrip("-") in ("url", "clicks"):  # all tied: the id decides
        expected = [link.slug for link in created]
        assert seen == (expected[::-1] if sort.startswith("-") else expected)
    beyond = await store.list_links(LinkQuery(sort=sort, page=4, limit=3))
    assert beyond.items == [] and beyond.total == 7


@pytest.mark.parametrize(
    "query", [LinkQuery(sort="title"), LinkQuery(page=0), LinkQuery(limit=0)], ids=["sort", "page", "limit"]
)
async def test_a_bad_query_is_invalid_input(store: LinkStore, query: LinkQuery) -> None:
    with pytest.raises(InvalidInput):
        await store.list_links(query)


async def test_update_changes_fields_replaces_tags_and_bumps_updated_at(store: LinkStore) -> None:
    original = await store.create_link(link("u", title="Old", tags=("a", "b"), max_clicks=9))
    expires = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    updated = await store.update_link("u", {
        "url": "https://new.example/", "title": None, "tags": ["c", "a"], "expires_at": expires,
        "max_clicks": None, "redirect_status": 301, "forward_query": True,
    })  # fmt: skip
    assert updated is not None
    assert updated == await store.get_link("u")
    assert (updated.url, updated.title, updated.tags) == ("https://new.example/", None, ("c", "a"))
    assert updated.expires_at == expires
    assert (updated.max_clicks, updated.redirect_status, updated.forward_query) == (None, 301, True)
    assert (updated.id, updated.slug, updated.created_at) == (original.id, "u", original.created_at)
    assert updated.updated_at > original.updated_at
    assert updated.updated_at.utcoffset() == timedelta(0)
    assert await slugs(store, tag="b") == []


async def test_update_leaves_unmentioned_fields_and_tags_alone(store: LinkStore) -> None:
    await store.create_link(link("u", title="Keep", tags=("x", "y")))
    updated = await store.update_link("u", {"url": "https://changed.example"})
    assert updated is not None and (updated.title, updated.tags) == ("Keep", ("x", "y"))
    unchanged = await store.update_link("u", {})
    assert unchanged == updated


async def test_update_of_a_missing_slug_is_none_and_slug_cannot_change(store: LinkStore) -> None:
    assert await store.update_link("missing", {"title": "x"}) is None
    await store.create_link(link("fixed"))
    with pytest.raises(InvalidInput, match="slug"):
        await store.update_link("fixed", {"slug": "other"})
    with pytest.raises(InvalidInput, match="clicks_total"):
        await store.update_link("fixed", {"clicks_total": 5})


async def test_delete_removes_the_link_and_its_tags(store: LinkStore) -> None:
    await store.create_link(link("gone", tags=("t",)))
    assert await store.delete_link("gone") is True
    assert await store.delete_link("gone") is False
    assert await store.get_link("gone") is None
    assert await slugs(store, tag="t") == []
    again = await store.create_link(link("gone"))  # the slug is free again, with no old tags
    assert again.tags == ()


# link changes (what API workers' link caches forget) --------------------------------


async def test_link_changes_name_each_created_updated_and_deleted_slug(store: LinkStore) -> None:
    start = await store.links_version()
    await store.create_link(link("kept"))
    await store.create_link(link("moved"))
    await store.create_link(link("gone"))
    after_creates = await store.links_version()
    await store.update_link("moved", {"url": "https://example.org/moved"})
    await store.delete_link("gone")

    changes = await store.link_changes_since(start)
    assert changes.version == await store.links_version() == start + 5  # version N is the Nth change
    assert changes.slugs == {"kept", "moved", "gone"}
    assert await store.link_changes_since(after_creates) == (start + 5, {"moved", "gone"})
    assert await store.link_changes_since(changes.version) == (changes.version, frozenset())


async def test_click_counts_spent_allowances_and_tags_are_not_link_changes(
    store: LinkStore, backend: Backend
) -> None:
    # The aggregator writes clicks_* many times a second: each would drop the link from every cache.
    await store.create_link(link("busy", max_clicks=10, tags=("a",)))
    version = await store.links_version()
    await set_clicks(backend, store, "busy", 12)
    assert await store.consume_click("busy")
    await store.update_link("busy", {"tags": ["b"]})  # tags do not change where a redirect goes
    assert await store.link_changes_since(version) == (version, frozenset())
    await store.update_link("busy", {"max_clicks": 20})
    assert await store.link_changes_since(version) == (version + 1, {"busy"})


async def test_the_change_log_keeps_the_last_10000_changes(store: LinkStore, backend: Backend) -> None:
    start = await store.links_version()
    await create_links_in_bulk(backend, store, 10_050)
    head = await store.links_version()
    assert head == start + 10_050

    assert await store.link_changes_since(start) == (head, None)  # trimmed: forget everything
    assert await store.link_changes_since(head - 10_001) == (head, None)
    assert len((await store.link_changes_since(head - 10_000)).slugs or ()) == 10_000
    assert await store.link_changes_since(head - 2) == (head, {"bulk-10049", "bulk-10050"})
    if backend.name != "memory":
        assert await count_rows(backend, "link_change_log") == 10_000


async def test_a_version_this_store_never_gave_out_means_forget_everything(store: LinkStore) -> None:
    # A database restored from a backup, or another one behind the same URL.
    await store.create_link(link("one"))
    head = await store.links_version()
    assert await store.link_changes_since(head + 7) == (head, None)


async def test_popular_links_are_the_most_clicked_that_a_cache_may_hold(store: LinkStore, backend: Backend) -> None:
    now = datetime.now(UTC)
    for slug, clicks, fields in (
        ("top", 90, {"tags": ("z", "a")}),
        ("second", 50, {"expires_at": now + timedelta(days=1)}),
        ("third", 10, {}),
        ("unclicked", 0, {}),
        ("limited", 99, {"max_clicks": 1000}),  # its allowance is spent in the store: never cached
        ("expired", 95, {"expires_at": now - timedelta(seconds=1)}),
    ):
        await store.create_link(link(slug, **fields))
        await set_clicks(backend, store, slug, clicks)

    assert [item.slug for item in await store.popular_links(3)] == ["top", "second", "third"]
    everything = await store.popular_links(100)
    assert [item.slug for item in everything] == ["top", "second", "third", "unclicked"]
    assert everything[0] == await store.get_link("top")


async def create_links_in_bulk(backend: Backend, store: LinkStore, count: int) -> None:
    """bulk-1 ... bulk-<count>, written at database speed (through the triggers, as the API's would be)."""
    if isinstance(store, MemoryStore):
        for number in range(1, count + 1):
            await store.create_link(link(f"bulk-{number}"))
    elif backend.dialect == "sqlite":
        stamp = datetime.now(UTC).isoformat(timespec="microseconds")
        with sqlite3.connect(backend.target, timeout=5) as conn:
            conn.executemany(
                "INSERT INTO links (slug, url, created_at, updated_at) VALUES (?, ?, ?, ?)",
                [(f"bulk-{n}", f"https://example.com/{n}", stamp, stamp) for n in range(1, count + 1)],
            )
        conn.close()
    else:
        import asyncpg

        conn = await asyncpg.connect(backend.target)
        try:
            await conn.execute(
                "INSERT INTO links (slug, url) SELECT 'bulk-' || n, 'https://example.com/' || n"
                " FROM generate_series(1, $1::integer) AS n ORDER BY n",
                count,
            )
        finally:
            await conn.close()


async def count_rows(backend: Backend, table: str) -> int:
    if backend.dialect == "sqlite":
        with contextlib.closing(sqlite3.connect(backend.target, timeout=5)) as conn:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    import asyncpg

    conn = await asyncpg.connect(backend.target)
    try:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")
    finally:
        await conn.close()


# click limits --------------------------------------------------------------------


async def test_consume_click_without_a_limit_always_allows_and_writes_nothing(store: LinkStore) -> None:
    created = await store.create_link(link("free"))
    assert all([await store.consume_click("free") for _ in range(5)])
    assert await store.get_link("free") == created  # max_clicks_used and updated_at untouched
    assert await store.consume_click("no-such-link") is False


async def test_consume_click_on_an_unlimited_link_does_not_write_to_the_database(
    store: LinkStore, backend: Backend
) -> None:
    # Every redirect calls it: a write per click would serialise all workers on one lock.
    backend.shared_only()
    await store.create_link(link("free"))
    await store.create_link(link("limited", max_clicks=10))
    if backend.dialect == "sqlite":
        watcher = sqlite3.connect(backend.target)  # data_version moves when another connection commits

        async def version(slug: str) -> object:
            return watcher.execute("PRAGMA data_version").fetchone()[0]
    else:
        import asyncpg

        watcher = await asyncpg.connect(backend.target)

        async def version(slug: str) -> object:  # xmin: the transaction that wrote this row version
            return await watcher.fetchval("SELECT xmin::text FROM links WHERE slug = $1", slug)

    try:
        before = await version("free")
        assert await store.consume_click("free")
        assert await version("free") == before
        before = await version("limited")
        assert await store.consume_click("limited")
        assert await version("limited") != before  # the watcher does see writes
    finally:
        result = watcher.close()
        if asyncio.iscoroutine(result):
            await result


async def test_consume_click_counts_up_to_the_limit(store: LinkStore) -> None:
    await store.create_link(link("two", max_clicks=2))
    assert [await store.consume_click("two") for _ in range(4)] == [True, True, False, False]
    assert (await store.get_link("two")).max_clicks_used == 2  # type: ignore[union-attr]
    assert (await store.get_link("two")).is_exhausted()  # type: ignore[union-attr]


async def test_concurrent_clicks_never_exceed_the_limit(store: LinkStore, backend: Backend) -> None:
    await store.create_link(link("five", max_clicks=5))
    others = [backend.make() for _ in range(2)] if backend.name != "memory" else []
    for other in others:
        await other.open()
    try:
        stores = [store, *others]
        results = await asyncio.gather(*(stores[i % len(stores)].consume_click("five") for i in range(50)))
    finally:
        for other in others:
            await other.close()
    assert results.count(True) == 5
    assert (await store.get_link("five")).max_clicks_used == 5  # type: ignore[union-attr]


async def test_clicks_from_several_processes_never_exceed_the_limit(store: LinkStore, backend: Backend) -> None:
    backend.shared_only()
    await store.create_link(link("five", max_clicks=5))
    reports = await run_processes(backend, 3, "consume", "five", "20")
    assert sum(report["granted"] for report in reports) == 5  # type: ignore[misc]
    assert (await store.get_link("five")).max_clicks_used == 5  # type: ignore[union-attr]


# API keys ------------------------------------------------------------------------


async def test_api_keys_round_trip_with_their_times(store: LinkStore) -> None:
    used = datetime(2025, 2, 3, 4, 5, 6, 789012, tzinfo=timezone(timedelta(hours=-5)))
    key = ApiKey(id="k1", name="deploy", key_hash="ab" * 32, scopes=("links:read", "admin"),
                 created_at=datetime(2025, 1, 1, 12, 0, 0, 1, tzinfo=UTC), last_used_at=used)  # fmt: skip
    stored = await store.create_api_key(key)
    assert stored == key
    fetched = await store.get_api_key("k1")
    assert fetched == key and fetched is not None
    assert fetched.last_used_at == used and fetched.last_used_at.utcoffset() == timedelta(0)  # type: ignore[union-attr]
    assert fetched.active
    assert await store.get_api_key("nope") is None


async def test_api_key_names_are_unique_among_active_keys_and_ids_always(store: LinkStore) -> None:
    await store.create_api_key(api_key("k1", "ci"))
    with pytest.raises(Conflict, match="ci"):
        await store.create_api_key(api_key("k2", "ci"))
    revoked = await store.revoke_api_key("ci")
    assert revoked is not None and revoked.id == "k1" and not revoked.active
    assert revoked.revoked_at is not None and revoked.revoked_at.utcoffset() == timedelta(0)
    await store.create_api_key(api_key("k2", "ci"))  # the name is free once its key is revoked
    with pytest.raises(Conflict, match="k1"):
        await store.create_api_key(api_key("k1", "other"))  # a revoked key's id is not


async def test_revoke_by_id_or_name_only_touches_active_keys(store: LinkStore) -> None:
    await store.create_api_key(api_key("k1", "first"))
    await store.create_api_key(api_key("k2", "second"))
    assert (await store.revoke_api_key("k2")).name == "second"  # type: ignore[union-attr]
    assert await store.revoke_api_key("k2") is None
    assert await store.revoke_api_key("second") is None
    assert await store.revoke_api_key("unknown") is None
    first = await store.get_api_key("k1")
    assert first is not None and first.active
    second = await store.get_api_key("k2")
    assert second is not None and not second.active  # revoked keys still read back


async def test_api_keys_list_oldest_first(store: LinkStore) -> None:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    await store.create_api_key(api_key("b", "late", created_at=base + timedelta(days=2)))
    await store.create_api_key(api_key("c", "early", created_at=base))
    await store.create_api_key(api_key("a", "mid", created_at=base + timedelta(days=1)))
    await store.revoke_api_key("mid")
    assert [key.id for key in await store.list_api_keys()] == ["c", "a", "b"]

