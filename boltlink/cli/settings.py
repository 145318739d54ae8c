"""`boltlink config show`: the effective configuration, secrets masked, with where each value came from."""

from __future__ import annotations

import json

import click

from boltlink.cli.context import CliContext, pass_cli
from boltlink.cli.output import out, out_json


@click.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@pass_cli
def show(cli: CliContext, as_json: bool) -> None:
    """Print the effective configuration (defaults <- file <- env <- flags)."""
    config = cli.config()
    values = config.masked()
    if as_json:
        out_json(values)
        return
    for key, value in values.items():
        # TOML has no null: an unset key is shown commented out, so the output stays valid TOML.
        line = f"# {key} = (unset)" if value is None else f"{key} = {_toml_value(value)}"
        out(f"{line:<48} # {config.source_of(key)}")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)  # strings and lists of strings are valid TOML in JSON form
