"""`boltlink serve` (one API process, for development) and `boltlink migrate`."""

from __future__ import annotations

import asyncio

import click

from boltlink.cli.context import CliContext, pass_cli
from boltlink.cli.output import out


@click.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port to listen on (default 5000).")
@pass_cli
def serve(cli: CliContext, host: str | None, port: int | None) -> None:
    """Run one API process in the foreground (Ctrl-C stops it)."""
    from boltlink.workers.api import run_api

    run_api(cli.config(host=host, port=port))


@click.command()
@pass_cli
def migrate(cli: CliContext) -> None:
    """Bring the database schema up to date (also done automatically at start)."""
    from boltlink.store import create_store

    config = cli.config()

    async def main() -> None:
        store = create_store(config)
        await store.open(migrate=False)
        try:
            report = await store.migrate()
        finally:
            await store.close()
        if report.applied:
            out(f"applied migration(s) {', '.join(map(str, report.applied))}; schema at version {report.current}")
        else:
            out(f"schema is up to date (version {report.current})")

    asyncio.run(main())
