"""boltlink.config: the four layers, strict TOML, parsed environment, masking and pickling."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from boltlink.config import Config, load_config
from boltlink.errors import ConfigError


@pytest.fixture(autouse=True)
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run every test where no stray ./boltlink.toml can be picked up."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# layers -----------------------------------------------------------------------


def test_defaults_apply_when_nothing_is_configured() -> None:
    config = load_config(environ={})

    assert config == Config()
    assert (config.host, config.port, config.database_url, config.log_level) == ("127.0.0.1", 5000, None, "info")
    assert config.source_of("port") == "default"


def test_explicit_config_file_overrides_defaults(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "custom.toml", 'port = 6000\nlog_level = "debug"\n')

    config = load_config(path, environ={})

    assert (config.port, config.log_level) == (6000, "debug")
    assert config.source_of("port") == "file"
    assert config.source_of("host") == "default"


def test_config_file_named_by_boltlink_config_env(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "elsewhere.toml", "port = 6001\n")

    config = load_config(environ={"BOLTLINK_CONFIG": str(path)})

    assert config.port == 6001
    assert config.source_of("port") == "file"


def test_boltlink_toml_in_working_directory_is_read(empty_cwd: Path) -> None:
    write_toml(empty_cwd / "boltlink.toml", "port = 6002\n")

    assert load_config(environ={}).port == 6002


def test_explicit_path_wins_over_boltlink_config_env(tmp_path: Path) -> None:
    flag_file = write_toml(tmp_path / "flag.toml", "port = 6003\n")
    env_file = write_toml(tmp_path / "env.toml", "port = 6004\n")

    assert load_config(flag_file, environ={"BOLTLINK_CONFIG": str(env_file)}).port == 6003


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "b.toml", 'port = 6000\nhost = "0.0.0.0"\n')

    config = load_config(path, environ={"BOLTLINK_PORT": "7000"})

    assert (config.port, config.host) == (7000, "0.0.0.0")
    assert config.source_of("port") == "env"
    assert config.source_of("host") == "file"


def test_flags_override_environment_and_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "b.toml", "port = 6000\n")

    config = load_config(path, flags={"port": 8000}, environ={"BOLTLINK_PORT": "7000"})

    assert config.port == 8000
    assert config.source_of("port") == "flag"


def test_flags_left_unset_do_not_mask_lower_layers() -> None:
    config = load_config(flags={"port": None, "host": None}, environ={"BOLTLINK_PORT": "7000"})

    assert config.port == 7000
    assert config.source_of("host") == "default"


# the TOML file is strict --------------------------------------------------------


def test_unknown_key_in_toml_is_named(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "b.toml", "port = 5000\nlistne_port = 80\n")

    with pytest.raises(ConfigError, match="listne_port"):
        load_config(path, environ={})


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('port = "abc"\n', "port"),
        ('port = "5000"\n', "port"),  # a quoted number is a string in TOML: refused, not coerced
        ("port = 5000.5\n", "port"),
        ("port = 70000\n", "port"),
        ("log_level = 3\n", "log_level"),
        ('log_level = "loud"\n', "log_level"),
        ('blocked_domains = "evil.com"\n', "blocked_domains"),
        ("slug_length = 2\n", "slug_length"),
    ],
)
def test_wrong_type_or_range_in_toml_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = write_toml(tmp_path / "b.toml", text)

    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(path, environ={})


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "b.toml", "port = [\n")

    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, environ={})


def test_explicit_missing_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"

    with pytest.raises(ConfigError, match="nope.toml"):
        load_config(missing, environ={})
    with pytest.raises(ConfigError, match="nope.toml"):
        load_config(environ={"BOLTLINK_CONFIG": str(missing)})


# the environment is parsed ------------------------------------------------------


def test_env_values_are_parsed_from_strings() -> None:
    config = load_config(
        environ={"BOLTLINK_PORT": "7001", "BOLTLINK_KILL_TIMEOUT": "2.5", "BOLTLINK_LOG_LEVEL": "warning"}
    )

    assert (config.port, config.kill_timeout, config.log_level) == (7001, 2.5, "warning")


def test_env_list_is_comma_separated_and_trimmed() -> None:
    config = load_config(environ={"BOLTLINK_BLOCKED_DOMAINS": "a.com, b.org ,,"})

    assert config.blocked_domains == ["a.com", "b.org"]


def test_empty_env_url_means_unset(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "b.toml", 'database_url = "postgresql://db/x"\n')

    assert load_config(path, environ={"BOLTLINK_DATABASE_URL": ""}).database_url is None


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="BOLTLINK_PORT"):
        load_config(environ={"BOLTLINK_PORT": "abc"})


def test_unrelated_env_variables_are_ignored() -> None:
    assert load_config(environ={"BOLTLINK_NOT_A_SETTING": "x", "PORT": "1"}) == Config()


def test_out_of_range_flag_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'port'"):
        load_config(flags={"port": 70000}, environ={})


# what the rest of boltlink relies on ---------------------------------------------


def test_config_survives_pickling_with_its_sources(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "b.toml", "port = 6000\n")
    config = load_config(path, flags={"host": "0.0.0.0"}, environ={"BOLTLINK_BLOCKED_DOMAINS": "a.com"})

    copy = pickle.loads(pickle.dumps(config))

    assert copy == config
    assert [copy.source_of(k) for k in ("port", "blocked_domains", "host", "slug_length")] == [
        "file",
        "env",
        "flag",
        "default",
    ]


def test_config_is_frozen() -> None:
    config = load_config(environ={})

    with pytest.raises(ValueError, match="frozen"):
        config.port = 1  # type: ignore[misc]


def test_sqlite_path_is_inside_data_dir(tmp_path: Path) -> None:
    config = load_config(flags={"data_dir": str(tmp_path / "data")}, environ={})

    assert config.sqlite_path.parent == tmp_path / "data"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://app:s3cret@db.internal:5433/links", "postgresql://app:***@db.internal:5433/links"),
        ("postgresql://app:s3cret@[::1]:5432/links", "postgresql://app:***@[::1]:5432/links"),
        (
            "postgresql://app:s3cret@h1:5432,h2:5432/links?sslmode=require",
            "postgresql://app:***@h1:5432,h2:5432/links?sslmode=require",
        ),
        ("postgresql://app@db/links", "postgresql://app@db/links"),
    ],
)
def test_masked_hides_database_password_but_keeps_the_rest(url: str, masked: str) -> None:
    config = load_config(environ={"BOLTLINK_DATABASE_URL": url})

    assert config.masked()["database_url"] == masked
    assert config.database_url == url  # only the display is masked


def test_masked_lists_every_setting() -> None:
    assert set(load_config(environ={}).masked()) == set(Config.model_fields)
