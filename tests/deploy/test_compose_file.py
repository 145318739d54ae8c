"""docker-compose.yml and .env.example: services, health checks, start order, volumes and settings that hold together.

Docker does not run here, so nothing is started: the file is read as data and
checked against the Dockerfile and boltlink's own settings.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from deploy_support import ROOT, parse_dockerfile, read_env_file

import boltlink
from boltlink.cli import cli
from boltlink.config import Config, load_config

COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, from the given .env values."""

    def value(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg
        raise AssertionError(f"${{{name}}} is not set by .env.example" + (f": {arg}" if op == ":?" else ""))

    return re.sub(r"\$\{(?P<name>\w+)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}", value, text)


def boltlink_environment(name: str) -> dict[str, str]:
    """What a boltlink container's environment gets: .env (env_file) overridden by `environment`."""
    env = read_env_file(ENV_EXAMPLE)
    resolved = yaml.safe_load(interpolate(COMPOSE.read_text(), env))["services"][name]
    assert resolved["env_file"] == ".env"
    return {**env, **resolved["environment"]}


def test_every_variable_is_set_by_the_env_example() -> None:
    interpolate(COMPOSE.read_text(), read_env_file(ENV_EXAMPLE))  # raises for a ${VAR} without value or default


def test_the_services_and_their_health_checks() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "migrate", "boltlink"}
    for name in ("postgres", "redis", "boltlink"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    # The Dockerfile's HEALTHCHECK, word for word: one check, wherever the image runs.
    assert services["boltlink"]["healthcheck"]["test"][1:] == parse_dockerfile().healthcheck()[1]


def test_boltlink_starts_after_its_dependencies_and_the_migration() -> None:
    assert service("boltlink")["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert service("migrate")["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert service("migrate")["command"] == ["migrate"]
    assert service("migrate")["restart"] == "no"  # a finished migration must stay finished
    assert "command" not in service("boltlink"), "boltlink runs the image's CMD, as tests/deploy runs it"


@pytest.mark.parametrize("name", ["migrate", "boltlink"])
def test_boltlink_services_run_the_image_read_only(name: str) -> None:
    box = service(name)
    image = interpolate(box["image"], read_env_file(ENV_EXAMPLE))
    assert image == f"boltlink:{boltlink.__version__}"
    assert box["read_only"] is True and "/tmp" in box["tmpfs"]
    assert box["cap_drop"] == ["ALL"]
    command = box.get("command", parse_dockerfile().exec_form("CMD"))
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output


def test_named_volumes_hold_all_state() -> None:
    document = compose()
    used: dict[str, str] = {}  # service -> where its volume is mounted
    sources = set()
    for name, box in document["services"].items():
        for volume in box.get("volumes", []):
            source, _, target = volume.partition(":")
            sources.add(source)
            used[name] = target
    assert sources == set(document["volumes"]), "every volume is a declared named volume, and used"
    assert used["boltlink"] == parse_dockerfile().env()["BOLTLINK_DATA_DIR"]
    assert used["postgres"] == "/var/lib/postgresql/data"
    assert used["redis"] == "/data"
    # The stream holds click events not yet aggregated: Redis must keep them across a restart.
    assert "--appendonly" in service("redis")["command"]


def test_settings_are_boltlink_settings_and_load() -> None:
    env = boltlink_environment("boltlink")
    variables = {key: value for key, value in env.items() if key.startswith("BOLTLINK_")}
    known = {f"BOLTLINK_{key.upper()}" for key in Config.model_fields}
    assert set(variables) <= known, sorted(set(variables) - known)
    config = load_config(environ=variables)
    assert config.database_url is not None and config.database_url.startswith("postgresql://boltlink:change-me@postgres")
    assert config.redis_url == "redis://redis:6379/0"


def test_stop_grace_period_covers_the_drain() -> None:
    config = load_config(environ={k: v for k, v in boltlink_environment("boltlink").items()
                                  if k.startswith("BOLTLINK_")})
    grace = service("boltlink")["stop_grace_period"]
    assert grace.endswith("s")
    assert float(grace[:-1]) > config.drain_delay + config.kill_timeout


def test_published_port_is_the_containers() -> None:
    (mapping,) = service("boltlink")["ports"]
    published = interpolate(mapping, read_env_file(ENV_EXAMPLE))
    assert published == f"127.0.0.1:5000:{parse_dockerfile().last('EXPOSE').args}"
