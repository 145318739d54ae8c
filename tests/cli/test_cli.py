"""The `boltlink` command, run in-process with click's CliRunner on a throwaway data dir.

Results go to stdout and messages to stderr (click >= 8.2 keeps them apart in
Result.stdout / Result.stderr); every failure is one line and an exit code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from boltlink import __version__
from boltlink.apikeys import hash_key
from boltlink.store.schema import load_migrations

CLOSED_PORT_URL = "postgresql://postgres@127.0.0.1:1/x"

Run = Callable[..., Result]


def assert_one_line_failure(result: Result, exit_code: int | None = None) -> str:
    """The command failed with a single readable line on stderr and no traceback; return that line."""
    assert result.exit_code != 0, result.output
    if exit_code is not None:
        assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("boltlink: ")
    return lines[0]


def create_key(run: Run, *args: str, env: dict[str, str] | None = None) -> str:
    result = run("apikey", "create", *args, env=env)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


# the basics -------------------------------------------------------------------------------------


def test_version(run: Run) -> None:
    result = run("--version")

    assert result.exit_code == 0
    assert result.stdout.strip() == f"boltlink {__version__}"


def test_help_lists_the_commands(run: Run) -> None:
    result = run("--help")

    assert result.exit_code == 0
    for command in ("serve", "migrate", "config", "apikey", "links"):
        assert command in result.stdout


# apikey ----------------------------------------------------------------------------------------------


def test_apikey_create_prints_only_the_key_on_stdout(run: Run) -> None:
    result = run("apikey", "create", "--name", "ci", "--scope", "admin")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("bl_")
    assert "cannot be shown again" in result.stderr
    assert lines[0] not in result.stderr


def test_apikey_list_shows_name_and_id_but_never_the_secret(run: Run) -> None:
    key = create_key(run, "--name", "ci", "--scope", "admin")
    key_id = key.split("_")[1]

    result = run("apikey", "list")

    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith(key_id))
    assert "ci" in row.split()
    assert "active" in row.split()
    assert key not in result.output
    assert key.rsplit("_", 1)[1] not in result.output
    assert hash_key(key) not in result.output


def test_apikey_list_json(run: Run) -> None:
    key = create_key(run, "--name", "ci", "--scope", "links:read", "--scope", "stats:read")

    result = run("apikey", "list", "--json")

    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.stdout)
    assert entry["id"] == key.split("_")[1]
    assert (entry["name"], entry["scopes"], entry["revoked_at"]) == ("ci", ["links:read", "stats:read"], None)
    assert key not in result.stdout
    assert hash_key(key) not in result.stdout


def test_apikey_revoke_by_name_marks_it_revoked(run: Run) -> None:
    create_key(run, "--name", "ci")

    revoked = run("apikey", "revoke", "ci")
    listed = run("apikey", "list", "--json")

    assert revoked.exit_code == 0, revoked.output
    assert "ci" in revoked.stdout
    [entry] = json.loads(listed.stdout)
    assert entry["revoked_at"] is not None
    assert "revoked" in run("apikey", "list").stdout


def test_revoking_an_unknown_key_fails_in_one_line(run: Run) -> None:
    create_key(run, "--name", "ci")

    line = assert_one_line_failure(run("apikey", "revoke", "nobody"), exit_code=4)

    assert "nobody" in line


def test_unknown_scope_is_a_usage_error(run: Run) -> None:
    result = run("apikey", "create", "--name", "ci", "--scope", "links:delete")

    assert result.exit_code == 2
    assert "links:delete" in result.stderr
    assert "Traceback" not in result.output


# links ------------------------------------------------------------------------------------------------


def test_links_create_prints_the_short_url(run: Run) -> None:
    result = run("links", "create", "https://example.com", "--slug", "abc")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("/abc")
    assert result.stdout.strip().startswith("http")


def test_links_create_uses_base_url(run: Run) -> None:
    result = run(
        "links", "create", "https://example.com", "--slug", "abc", env={"BOLTLINK_BASE_URL": "https://s.example.com"}
    )

    assert result.stdout.strip() == "https://s.example.com/abc"


def test_links_create_brackets_an_ipv6_listen_address(run: Run) -> None:
    result = run("links", "create", "https://example.com", "--slug", "abc", env={"BOLTLINK_HOST": "::1"})

    assert result.stdout.strip() == "http://[::1]:5000/abc"


@pytest.mark.parametrize(("host", "url"), [("127.0.0.1", "http://127.0.0.1:5000/x"), ("::1", "http://[::1]:5000/x")])
def test_links_create_refuses_a_link_to_this_server(run: Run, host: str, url: str) -> None:
    line = assert_one_line_failure(run("links", "create", url, env={"BOLTLINK_HOST": host}), exit_code=2)

    assert "this link shortener" in line


def test_links_create_without_slug_generates_one(run: Run) -> None:
    result = run("links", "create", "https://example.com", "--json")

    assert result.exit_code == 0, result.output
    link = json.loads(result.stdout)
    assert len(link["slug"]) == 7
    assert link["url"] == "https://example.com"


def test_duplicate_slug_exits_5_naming_the_slug(run: Run) -> None:
    assert run("links", "create", "https://example.com", "--slug", "abc").exit_code == 0

    line = assert_one_line_failure(run("links", "create", "https://example.org", "--slug", "abc"), exit_code=5)

    assert "abc" in line


def test_invalid_url_exits_2_naming_the_field(run: Run) -> None:
    line = assert_one_line_failure(run("links", "create", "javascript:alert(1)"), exit_code=2)

    assert "url" in line
    assert json.loads(run("links", "list", "--json").stdout)["items"] == []


def test_links_list_shows_the_link(run: Run) -> None:
    run("links", "create", "https://example.com/page", "--slug", "abc", "--tag", "docs")

    result = run("links", "list")

    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("abc"))
    assert "https://example.com/page" in row
    assert "docs" in row


def test_links_list_json(run: Run) -> None:
    run("links", "create", "https://example.com/page", "--slug", "abc", "--title", "Page")

    result = run("links", "list", "--json")

    assert result.exit_code == 0, result.output
    page = json.loads(result.stdout)
    assert [link["slug"] for link in page["items"]] == ["abc"]
    assert page["items"][0]["title"] == "Page"
    assert page["items"][0]["short_url"].endswith("/abc")
    assert page["pagination"]["total"] == 1


def test_links_list_refuses_a_page_past_what_the_store_can_offset(run: Run) -> None:
    result = run("links", "list", "--page", str(10**20))

    assert result.exit_code == 2  # click's usage error, where SQLite's OverflowError was an internal error
    assert "--page" in result.output


def test_links_delete_removes_the_link(run: Run) -> None:
    run("links", "create", "https://example.com", "--slug", "abc")

    result = run("links", "delete", "abc")

    assert result.exit_code == 0, result.output
    assert json.loads(run("links", "list", "--json").stdout)["items"] == []
    assert "abc" in assert_one_line_failure(run("links", "delete", "abc"), exit_code=4)


# config ------------------------------------------------------------------------------------------------


def test_config_show_masks_the_database_password_and_shows_sources(run: Run) -> None:
    result = run("config", "show", env={"BOLTLINK_DATABASE_URL": "postgresql://app:s3cret@db.internal:5433/links"})

    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    lines = {line.split(" = ")[0]: line for line in result.stdout.splitlines()}
    assert 'database_url = "postgresql://app:***@db.internal:5433/links"' in lines["database_url"]
    assert lines["database_url"].endswith("# env")
    assert lines["data_dir"].endswith("# flag")
    assert lines["port"].endswith("# default")


def test_config_show_json_masks_too(run: Run) -> None:
    result = run("config", "show", "--json", env={"BOLTLINK_DATABASE_URL": "postgresql://app:s3cret@db/links"})

    assert json.loads(result.stdout)["database_url"] == "postgresql://app:***@db/links"


def test_config_show_reports_file_values(run: Run, tmp_path: Path) -> None:
    (tmp_path / "boltlink.toml").write_text("port = 6000\n")

    result = run("config", "show")

    port_line = next(line for line in result.stdout.splitlines() if line.startswith("port ="))
    assert port_line.startswith("port = 6000")
    assert port_line.endswith("# file")


def test_unknown_config_key_fails_naming_the_key(run: Run, tmp_path: Path) -> None:
    config = tmp_path / "custom.toml"
    config.write_text("port = 6000\nlisten_port = 80\n")

    line = assert_one_line_failure(run("--config", str(config), "config", "show"), exit_code=2)

    assert "listen_port" in line


def test_bad_env_value_fails_naming_the_variable(run: Run) -> None:
    line = assert_one_line_failure(run("config", "show", env={"BOLTLINK_PORT": "abc"}), exit_code=2)

    assert "BOLTLINK_PORT" in line


# migrate and the stores ---------------------------------------------------------------------------------


def test_migrate_applies_then_reports_up_to_date(run: Run) -> None:
    first = run("migrate")
    second = run("migrate")

    assert first.exit_code == 0, first.output
    assert "applied" in first.stdout
    latest = max(m.version for m in load_migrations("sqlite"))
    assert f"schema at version {latest}" in first.stdout
    assert second.exit_code == 0, second.output
    assert f"up to date (version {latest})" in second.stdout


@pytest.mark.postgres
def test_migrate_and_create_link_on_postgres(run: Run, postgres_url: str, data_dir: Path) -> None:
    env = {"BOLTLINK_DATABASE_URL": postgres_url}

    migrated = run("migrate", env=env)
    created = run("links", "create", "https://example.com", "--slug", "abc", env=env)
    listed = run("links", "list", "--json", env=env)

    assert migrated.exit_code == 0, migrated.output
    assert "applied" in migrated.stdout
    assert "up to date" in run("migrate", env=env).stdout
    assert created.exit_code == 0, created.output
    assert created.stdout.strip().endswith("/abc")
    assert [link["slug"] for link in json.loads(listed.stdout)["items"]] == ["abc"]
    assert not (data_dir / "boltlink.sqlite3").exists()  # nothing went to SQLite


@pytest.mark.postgres
def test_apikey_on_postgres(run: Run, postgres_url: str) -> None:
    env = {"BOLTLINK_DATABASE_URL": postgres_url}

    key = create_key(run, "--name", "ci", env=env)

    assert key.startswith("bl_")
    assert json.loads(run("apikey", "list", "--json", env=env).stdout)[0]["name"] == "ci"


@pytest.mark.parametrize("command", [("migrate",), ("links", "list"), ("apikey", "list")])
def test_unreachable_database_fails_in_one_line(run: Run, command: tuple[str, ...]) -> None:
    result = run(*command, env={"BOLTLINK_DATABASE_URL": CLOSED_PORT_URL})

    line = assert_one_line_failure(result, exit_code=3)
    assert "127.0.0.1:1" in line


def test_unreachable_database_error_does_not_leak_the_password(run: Run) -> None:
    result = run("links", "list", env={"BOLTLINK_DATABASE_URL": "postgresql://postgres:hunter2@127.0.0.1:1/x"})

    assert_one_line_failure(result)
    assert "hunter2" not in result.output
