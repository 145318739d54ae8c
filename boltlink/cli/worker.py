"""`boltlink worker ROLE`: one process of a role, alone or under the cluster master."""

from __future__ import annotations

import signal
import sys

import click
from pydantic import ValidationError

from boltlink.cli.context import CliContext, pass_cli
from boltlink.config import Config
from boltlink.errors import BoltlinkError, ConfigError

WORKER_ROLES = ("api", "aggregator", "analytics")


@click.command()
@click.argument("role", type=click.Choice(WORKER_ROLES))
@click.option("--name", help="Process name in logs (default: the role).")
@click.option("--channel-fd", type=int, hidden=True)
@click.option("--listen-fd", type=int, hidden=True)
@click.option("--once", is_flag=True, help="analytics: run every job once, then exit (for cron or tests).")
@pass_cli
def worker(cli: CliContext, role: str, name: str | None, channel_fd: int | None, listen_fd: int | None,
           once: bool) -> None:
    """Run one process of ROLE in the foreground: api, aggregator or analytics.

    start-cluster runs them all for you; on Kubernetes the aggregator and
    analytics run as their own Deployments with `worker aggregator` and
    `worker analytics`. SIGTERM stops them after they finish what they hold.
    """
    from boltlink.workers.channel import BOOT_FAILURE_EXIT, die_with_master, read_hello

    if once:
        if role != "analytics":
            raise click.BadParameter("--once is for the analytics role", param_hint="--once")
        _run_analytics_once(cli.config())
        return
    if channel_fd is None:
        _run(role, cli.config(), name or role)
        return
    hello = read_hello(channel_fd)
    die_with_master(int(hello["master_pid"]))
    # Ctrl-C in a foreground cluster's terminal reaches every process; only the master decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            config = Config.model_validate(hello["config"])
        except ValidationError as exc:
            raise ConfigError(f"the master sent a config this build does not accept: {exc}") from None
        balance = hello.get("balance")
        _run(role, config, name or role, listen_fd=listen_fd, channel_fd=channel_fd,
             balance=(str(balance["path"]), int(balance["slot"])) if balance else None)
    except BoltlinkError as exc:
        print(f"{name or role}: could not start: {exc.detail}", file=sys.stderr, flush=True)
        sys.exit(BOOT_FAILURE_EXIT)


def _run(role: str, config: Config, name: str, *, listen_fd: int | None = None, channel_fd: int | None = None,
         balance: tuple[str, int] | None = None) -> None:
    if role == "api":
        from boltlink.workers.api import run_api

        run_api(config, process_name=name, listen_fd=listen_fd, channel_fd=channel_fd, balance=balance)
        return
    from boltlink.workers.aggregator import run_aggregator
    from boltlink.workers.analytics import run_analytics
    from boltlink.workers.runtime import run_role

    run_role(config, run_aggregator if role == "aggregator" else run_analytics, process_name=name,
             channel_fd=channel_fd)


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
