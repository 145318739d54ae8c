"""`boltlink worker ROLE`: one process of a role, alone or under the cluster master."""

from __future__ import annotations

import click

from boltlink.cli.context import CliContext, pass_cli
from boltlink.config import Config
from boltlink.workers.spawned import ROLES as WORKER_ROLES


@click.command()
@click.argument("role", type=click.Choice(WORKER_ROLES))
@click.option("--name", help="Process name in logs (default: the role).")
@click.option("--once", is_flag=True, help="analytics: run every job once, then exit (for cron or tests).")
@pass_cli
def worker(cli: CliContext, role: str, name: str | None, once: bool) -> None:
    """Run one process of ROLE in the foreground: api, aggregator or analytics.

    start-cluster runs them all for you; on Kubernetes the aggregator and
    analytics run as their own Deployments with `worker aggregator` and
    `worker analytics`. SIGTERM stops them after they finish what they hold.
    """
    from boltlink.workers.spawned import run_role_process

    if once:
        if role != "analytics":
            raise click.BadParameter("--once is for the analytics role", param_hint="--once")
        _run_analytics_once(cli.config())
        return
    run_role_process(role, cli.config(), name or role)  # the master spawns `__worker__` (spawned.py) instead


def _run_analytics_once(config: Config) -> None:
    import asyncio

    from boltlink.store import create_store
    from boltlink.workers.analytics import run_jobs_once
    from boltlink.workers.bootstrap import configure_logging

    configure_logging(config, "analytics")

    async def main() -> None:
        store = create_store(config)
        await store.open()
        try:
            await run_jobs_once(config, store)  # type: ignore[arg-type]
        finally:
            await store.close()

    asyncio.run(main())
