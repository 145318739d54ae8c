"""A worker the cluster master spawned: `boltlink __worker__ ROLE NAME CHANNEL_FD [LISTEN_FD]`.

It starts without the CLI (boltlink/entry.py): click, rich and every
subcommand cost each worker 5 MB of RSS for nothing. Its configuration comes
from the master, in the hello message on the channel. `boltlink worker ROLE`
(cli/worker.py) runs a role alone, as Kubernetes does, through run_role_process.
"""

from __future__ import annotations

import signal
import sys

from pydantic import ValidationError

from boltlink.config import Config
from boltlink.errors import BoltlinkError, ConfigError

ROLES = ("api", "aggregator", "analytics")


def main(argv: list[str]) -> int:
    if not 3 <= len(argv) <= 4 or argv[0] not in ROLES or not all(a.isdigit() for a in argv[2:]):
        print("boltlink: __worker__ is started by the cluster master, not by hand", file=sys.stderr)
        return 2
    role, name, channel_fd, *listen = argv
    run_spawned(role, name, int(channel_fd), int(listen[0]) if listen else None)
    return 0


def run_spawned(role: str, name: str, channel_fd: int, listen_fd: int | None) -> None:
    from boltlink.workers.channel import BOOT_FAILURE_EXIT, die_with_master, read_hello

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
        run_role_process(role, config, name, listen_fd=listen_fd, channel_fd=channel_fd,
                         balance=(str(balance["path"]), int(balance["slot"])) if balance else None)
    except BoltlinkError as exc:
        print(f"{name}: could not start: {exc.detail}", file=sys.stderr, flush=True)
        sys.exit(BOOT_FAILURE_EXIT)


def run_role_process(role: str, config: Config, name: str, *, listen_fd: int | None = None,
                     channel_fd: int | None = None, balance: tuple[str, int] | None = None) -> None:
    if role == "api":
        from boltlink.workers.api import run_api

        run_api(config, process_name=name, listen_fd=listen_fd, channel_fd=channel_fd, balance=balance)
        return
    from boltlink.workers.aggregator import configure_process, run_aggregator
    from boltlink.workers.analytics import run_analytics
    from boltlink.workers.runtime import run_role

    if role == "aggregator":
        configure_process()
    run_role(config, run_aggregator if role == "aggregator" else run_analytics, process_name=name,
             channel_fd=channel_fd)
