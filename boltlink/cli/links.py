"""`boltlink links create|list|delete`: operator access straight to the store, same rules as the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from boltlink.cli.context import CliContext, pass_cli, run_with_store
from boltlink.cli.output import err, out, out_json, out_table
from boltlink.config import Config
from boltlink.errors import LinkNotFound
from boltlink.store.base import SORT_KEYS, Link, LinkQuery
from boltlink.validation import MAX_PAGE, REDIRECT_STATUSES


class IsoDateTime(click.ParamType):
    name = "ISO-8601"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"'{value}' is not a date-time like 2030-01-31T12:00:00+00:00", param, ctx)


@click.group()
def links() -> None:
    """Create, list and delete links (operator access, no API key needed)."""


@links.command()
@click.argument("url")
@click.option("--slug", help="Custom slug (default: a generated one).")
@click.option("--title")
@click.option("--tag", "tags", multiple=True, help="Repeatable.")
@click.option("--expires-at", type=IsoDateTime(), help="ISO-8601; without a zone, UTC.")
@click.option("--max-clicks", type=click.IntRange(min=1))
@click.option("--redirect-status", type=click.Choice([str(s) for s in REDIRECT_STATUSES]), default="302")
@click.option("--forward-query", is_flag=True, help="Append the visitor's query string to the target.")
@click.option("--json", "as_json", is_flag=True, help="Print the link as JSON.")
@pass_cli
def create(cli: CliContext, url: str, slug: str | None, title: str | None, tags: tuple[str, ...],
           expires_at: datetime | None, max_clicks: int | None, redirect_status: str,
           forward_query: bool, as_json: bool) -> None:
    """Shorten URL and print the short link."""
    from boltlink import shortener

    config = cli.config()
    draft = shortener.LinkDraft(url=url, slug=slug, title=title, tags=tags, expires_at=expires_at,
                                max_clicks=max_clicks, redirect_status=int(redirect_status),
                                forward_query=forward_query)
    rules = shortener.LinkRules.for_config(config, listen_url(config))
    link = run_with_store(config, lambda store: shortener.create_link(store, draft, rules))
    if as_json:
        out_json(_link_dict(link, config))
    else:
        out(short_url(link, config))


@links.command("list")
@click.option("-q", "--search", "q", help="Substring of url, slug or title.")
@click.option("--tag")
@click.option("--sort", type=click.Choice(SORT_KEYS), default="-created_at", show_default=True)
@click.option("--page", type=click.IntRange(1, MAX_PAGE), default=1, show_default=True)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def list_links(cli: CliContext, q: str | None, tag: str | None, sort: str, page: int, limit: int,
               as_json: bool) -> None:
    """List links, newest first."""
    config = cli.config()
    result = run_with_store(config, lambda store: store.list_links(
        LinkQuery(q=q, tag=tag, sort=sort, page=page, limit=limit)))
    if as_json:
        out_json({"items": [_link_dict(link, config) for link in result.items],
                  "pagination": {"page": result.page, "limit": result.limit, "total": result.total,
                                 "pages": result.pages}})
        return
    if not result.items:
        err("No links match." if (q or tag) else "No links yet: create one with `boltlink links create URL`.")
        return
    out_table(["SLUG", "URL", "CLICKS", "CREATED", "TAGS"],
              [[link.slug, _shorten(link.url, 60), link.clicks_total, link.created_at.strftime("%Y-%m-%d %H:%M"),
                " ".join(link.tags)] for link in result.items])
    err(f"page {result.page} of {result.pages} ({result.total} links)")


@links.command()
@click.argument("slug")
@pass_cli
def delete(cli: CliContext, slug: str) -> None:
    """Delete the link with this slug (the operator may, whatever the API's delete protection says)."""
    config = cli.config()

    async def delete_it(store: Any) -> Link | None:
        link = await store.get_link(slug)
        return link if link is not None and await store.delete_link(slug) else None

    link = run_with_store(config, delete_it)
    if link is None:
        raise LinkNotFound(slug)
    out(f"deleted {slug}")
    if config.delete_protection_clicks and link.clicks_total > config.delete_protection_clicks:
        err(f"note: it had {link.clicks_total} clicks; the API deletes such a link only with ?force=true")


def short_url(link: Link, config: Config) -> str:
    base = config.base_url or listen_url(config)
    return f"{base.rstrip('/')}/{link.slug}"


def listen_url(config: Config) -> str:
    """Where `serve` answers with this config; an IPv6 address needs its brackets in a URL."""
    # A wildcard address is where the server listens, not an address to visit.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(config.host, config.host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.port}"


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _link_dict(link: Link, config: Config) -> dict[str, object]:
    return {"slug": link.slug, "short_url": short_url(link, config), "url": link.url, "title": link.title,
            "tags": list(link.tags), "created_at": link.created_at.isoformat(),
            "expires_at": link.expires_at.isoformat() if link.expires_at else None,
            "max_clicks": link.max_clicks, "redirect_status": link.redirect_status,
            "forward_query": link.forward_query, "do_not_track": link.do_not_track,
            "clicks": {"total": link.clicks_total, "humans": link.clicks_humans, "bots": link.clicks_bots}}
