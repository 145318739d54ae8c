"""`boltlink worker ROLE`: one process of a role, alone or under the cluster master."""

from __future__ import annotations

import signal
import sys

import click
from pydantic import ValidationError

from boltlink.cli.context import CliContext, pass_cli
from boltlink.config import Config
from boltlink.errors import BoltlinkError, ConfigError

WORKER_ROLES = ("api",)


@click.command()
@click.argument("role", type=click.Choice(WORKER_ROLES))
@click.option("--name", help="Process name in logs (default: the role).")
@click.option("--channel-fd", type=int, hidden=True)
@click.option("--listen-fd", type=int, hidden=True)
@pass_cli
def worker(cli: CliContext, role: str, name: str | None, channel_fd: int | None, listen_fd: int | None) -> None:
    """Run one process of ROLE in the foreground (start-cluster runs them for you)."""
    from boltlink.workers.api import run_api
    from boltlink.workers.channel import BOOT_FAILURE_EXIT, die_with_master, read_hello

    if channel_fd is None:
        run_api(cli.config(), process_name=name or role)
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
        run_api(config, process_name=name or role, listen_fd=listen_fd, channel_fd=channel_fd)
    except BoltlinkError as exc:
        print(f"{name or role}: could not start: {exc.detail}", file=sys.stderr, flush=True)
        sys.exit(BOOT_FAILURE_EXIT)
