"""`boltlink apikey create|list|revoke`: manage API keys straight on the store."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import click

from boltlink.cli.context import CliContext, pass_cli, run_with_store
from boltlink.cli.links import IsoDateTime
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
@click.option("--expires-in", type=click.IntRange(min=1), metavar="DAYS",
              help="Valid for this many days (default: api_key_default_ttl_days; 0 there: for good).")
@click.option("--expires-at", type=IsoDateTime(), help="Valid until this ISO-8601 moment; without a zone, UTC.")
@pass_cli
def create(cli: CliContext, name: str, scopes: tuple[str, ...], expires_in: int | None,
           expires_at: datetime | None) -> None:
    """Create a key and print it once; only its SHA-256 hash is stored."""
    from boltlink.apikeys import new_api_key

    if expires_in is not None and expires_at is not None:
        raise click.UsageError("give --expires-in or --expires-at, not both")
    config = cli.config()
    days = expires_in or config.api_key_default_ttl_days
    if expires_at is None and days:
        expires_at = datetime.now(timezone.utc) + timedelta(days=days)
    key, record = new_api_key(name, scopes, expires_at)
    stored = run_with_store(config, lambda store: store.create_api_key(record))
    out(key)
    until = f", expires {_when(stored.expires_at)} UTC" if stored.expires_at else ""
    err(f"Created API key '{stored.name}' (id {stored.id}, scopes {' '.join(stored.scopes)}{until}). "
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
    now = datetime.now(timezone.utc)
    out_table(
        ["ID", "NAME", "SCOPES", "CREATED", "EXPIRES", "STATUS"],
        [[k.id, k.name, ",".join(k.scopes), _when(k.created_at), _when(k.expires_at), _status(k, now)]
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


def _when(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M") if moment else "-"


def _status(key: ApiKey, now: datetime) -> str:
    if not key.active:
        return "revoked"
    return "expired" if key.is_expired(now) else "active"


def _key_dict(key: ApiKey) -> dict[str, object]:
    return {"id": key.id, "name": key.name, "scopes": list(key.scopes),
            "created_at": key.created_at.isoformat(),
            "expires_at": key.expires_at.isoformat() if key.expires_at else None,
            "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None}
