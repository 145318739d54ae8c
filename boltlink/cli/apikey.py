"""`boltlink apikey create|list|revoke`: manage API keys straight on the store."""

from __future__ import annotations

import click

from boltlink.cli.context import CliContext, pass_cli, run_with_store
from boltlink.cli.output import err, out, out_json, out_table
from boltlink.errors import NotFound
from boltlink.store.base import SCOPES, ApiKey


@click.group()
def apikey() -> None:
    """Create, list and revoke API keys."""


@apikey.command()
@click.option("--name", required=True, help="What the key is for, e.g. 'ci' or 'web-ui'.")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(SCOPES),
              help="Repeatable. Default: links:read, links:write, stats:read.")
@pass_cli
def create(cli: CliContext, name: str, scopes: tuple[str, ...]) -> None:
    """Create a key and print it once; only its SHA-256 hash is stored."""
    from boltlink.apikeys import new_api_key

    key, record = new_api_key(name, scopes)
    stored = run_with_store(cli.config(), lambda store: store.create_api_key(record))
    out(key)
    err(f"Created API key '{stored.name}' (id {stored.id}, scopes {' '.join(stored.scopes)}). "
        "Keep it now: it cannot be shown again.")


@apikey.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def list_keys(cli: CliContext, as_json: bool) -> None:
    """List keys (never the keys themselves)."""
    keys: list[ApiKey] = run_with_store(cli.config(), lambda store: store.list_api_keys())
    if as_json:
        out_json([_key_dict(k) for k in keys])
        return
    if not keys:
        err("No API keys yet: create one with `boltlink apikey create --name NAME`.")
        return
    out_table(
        ["ID", "NAME", "SCOPES", "CREATED", "STATUS"],
        [[k.id, k.name, ",".join(k.scopes), _when(k.created_at), "active" if k.active else "revoked"]
         for k in keys],
    )


@apikey.command()
@click.argument("id_or_name")
@pass_cli
def revoke(cli: CliContext, id_or_name: str) -> None:
    """Revoke the active key with this id or name; it stops working at once."""
    revoked = run_with_store(cli.config(), lambda store: store.revoke_api_key(id_or_name))
    if revoked is None:
        raise NotFound(f"no active API key with id or name '{id_or_name}'")
    out(f"revoked API key '{revoked.name}' (id {revoked.id})")


def _when(moment: object) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"  # type: ignore[attr-defined]


def _key_dict(key: ApiKey) -> dict[str, object]:
    return {"id": key.id, "name": key.name, "scopes": list(key.scopes),
            "created_at": key.created_at.isoformat(),
            "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None}
