"""The README documents every setting and every command a user can run."""

from __future__ import annotations

from pathlib import Path

from boltlink.cli import cli
from boltlink.config import Config

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_config_key_is_in_the_configuration_table():
    for key in Config.model_fields:
        assert f"| `{key}` | `BOLTLINK_{key.upper()}` |" in README, key


def test_every_command_is_documented():
    hidden = {"worker"}  # internal: run by start-cluster
    for name in cli.commands:
        if name not in hidden:
            assert f"boltlink {name}" in README or f"  {name} " in README, name
