"""`boltlink logs`: the per-process log files, merged and prefixed like `pm2 logs`.

It reads the files directly, so it works the same whether or not a master
runs; `--flush` is safe beside a running master because the master appends
and sizes its files afresh on every write.
"""

from __future__ import annotations

import click

from boltlink.cli.context import CliContext, pass_cli
from boltlink.cli.output import err, out
from boltlink.cluster.logs import flush_logs, follow, log_names, select_names, tail
from boltlink.errors import NotFound


@click.command("logs")
@click.argument("name", required=False)
@click.option("--lines", "-n", default=15, show_default=True, type=click.IntRange(min=0),
              help="How many of the last lines of each log to print.")
@click.option("--follow", "-f", "keep_following", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("--flush", is_flag=True, help="Empty the logs (all, or NAME's) instead of printing them.")
@pass_cli
def logs(cli: CliContext, name: str | None, lines: int, keep_following: bool, flush: bool) -> None:
    """Print the latest log lines of every process, each prefixed with its name.

    NAME is a process (api-0), a role (api: every api-N), or omitted for all.
    """
    log_dir = cli.config().log_path
    known = log_names(log_dir)
    if not known:
        err(f"No logs yet in {log_dir}.")
        return
    selectors = None if name is None else [name]
    shown = select_names(known, selectors)
    if not shown:
        raise NotFound(f"No logs for '{name}'; known processes: {', '.join(known)}.")
    if flush:
        out(f"Flushed the logs of {', '.join(flush_logs(log_dir, shown))}.")
        return
    width = max(len(process) for process in shown)
    for process, line in tail(log_dir, shown, lines):
        out(f"{process.ljust(width)} | {line}")
    if not keep_following:
        return
    try:
        # The selectors, not the names shown so far: a worker scaled up meanwhile is followed too.
        for process, line in follow(log_dir, selectors):
            width = max(width, len(process))
            out(f"{process.ljust(width)} | {line}")
    except KeyboardInterrupt:  # Ctrl-C is how a user ends --follow, not an error
        return
