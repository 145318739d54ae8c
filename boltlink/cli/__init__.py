"""The `boltlink` command. Commands are thin: they parse flags, call the library, print.

Every BoltlinkError becomes one line on stderr and its exit code; no
traceback ever reaches the user.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from boltlink import __version__
from boltlink.cli import apikey, cluster, links, logs, monit, serve, settings, worker
from boltlink.cli.context import CliContext
from boltlink.cli.output import err
from boltlink.errors import INTERNAL_ERROR_EXIT, BoltlinkError


class BoltlinkGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BoltlinkError as exc:
            err(f"boltlink: {exc.detail}")
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            err("boltlink: interrupted")
            ctx.exit(130)
        except Exception as exc:  # a bug: say so in one line rather than dump a traceback
            err(f"boltlink: internal error: {type(exc).__name__}: {exc}")
            ctx.exit(INTERNAL_ERROR_EXIT)


@click.group(cls=BoltlinkGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="boltlink", message="%(prog)s %(version)s")
@click.option("--config", "config_file", metavar="PATH", envvar="BOLTLINK_CONFIG",
              help="Config file (default: ./boltlink.toml when present).")
@click.option("--data-dir", metavar="DIR", help="Data directory (default: ./boltlink-data; env BOLTLINK_DATA_DIR).")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, data_dir: str | None) -> None:
    """boltlink: a link shortener backend in one file.

    With no configuration it keeps everything in ./boltlink-data (SQLite).
    Set BOLTLINK_DATABASE_URL=postgresql://... to use PostgreSQL.
    """
    ctx.obj = CliContext(config_file=config_file, flags={"data_dir": data_dir})


cli.add_command(serve.serve)
cli.add_command(serve.migrate)
cli.add_command(settings.config_group)
cli.add_command(apikey.apikey)
cli.add_command(links.links)
cli.add_command(worker.worker)
for command in (cluster.start_cluster, cluster.stop, cluster.status, cluster.reload, cluster.restart,
                cluster.scale, cluster.startup, logs.logs, monit.monit):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="boltlink")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
