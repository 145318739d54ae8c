"""start-cluster, stop, status, reload, restart, scale, startup: PM2's cluster mode, as commands.

Every command but start-cluster and startup talks to the running master over
its control socket (boltlink.cluster.control).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click

from boltlink.cli.context import CliContext, pass_cli
from boltlink.cli.output import err, out, out_json, out_table
from boltlink.config import Config
from boltlink.errors import InvalidInput


def _instances(value: str | None) -> int | str | None:
    if value is None or value == "max":
        return value
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise click.BadParameter(f"'{value}' is not max or a positive number", param_hint="-i")


@click.command("start-cluster")
@click.option("-i", "--instances", metavar="max|N", help="API workers: max (the usable CPUs, default) or N.")
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port to listen on (default 5000).")
@click.option("--foreground", is_flag=True, help="Stay attached and log to stdout (containers, systemd).")
@pass_cli
def start_cluster(cli: CliContext, instances: str | None, host: str | None, port: int | None,
                  foreground: bool) -> None:
    """Run the API on every usable CPU behind one port, and supervise it."""
    from boltlink.cluster.datadir import ensure_private_data_dir
    from boltlink.cluster.master_main import write_config
    from boltlink.cluster.process import boltlink_command
    from boltlink.entry import MASTER_COMMAND

    flags = {"instances": _instances(instances), "host": host, "port": port}
    config = _absolute(cli.config(**flags))
    ensure_private_data_dir(config)  # refused in one line (exit 2) before anything is written there
    # The master runs without the CLI (boltlink/entry.py): 5 MB less for as long as the cluster runs.
    master = [*boltlink_command(), MASTER_COMMAND, str(write_config(config))]
    if foreground:  # the same process goes on as the master: systemd and containers keep its pid
        os.execv(master[0], [*master, "--echo"])
    from boltlink.cluster.daemon import start_detached
    from boltlink.cluster.runfiles import AlreadyRunning, RunFiles

    pid = RunFiles(config.run_path).running_pid()
    if pid is not None:
        Path(master[-1]).unlink(missing_ok=True)
        raise AlreadyRunning(f"boltlink is already running for {config.data_path} (master pid {pid})")
    started = time.monotonic()
    status = start_detached(config, master)
    print_status(status)
    err(f"cluster ready in {time.monotonic() - started:.1f} s at {status['master']['address']}")


def _absolute(config: Config) -> Config:
    """Workers and the detached master may run elsewhere: pin the data dir to an absolute path."""
    return config.model_copy(update={"data_dir": str(config.data_path.absolute())})


def _request(cli: CliContext, command: str, args: dict[str, Any] | None = None,
             timeout: float | None = 30.0) -> Any:
    from boltlink.cluster import control
    from boltlink.cluster.runfiles import RunFiles

    return control.request(RunFiles(cli.config().run_path), command, args, timeout=timeout)


@click.command()
@pass_cli
def stop(cli: CliContext) -> None:
    """Drain and stop every process, then the master."""
    from boltlink.cluster.control import NotRunning
    from boltlink.cluster.runfiles import RunFiles

    config = cli.config()
    run_files = RunFiles(config.run_path)
    master = run_files.running_pid()
    try:
        _request(cli, "stop", timeout=config.kill_timeout + config.drain_delay + 30)
    except NotRunning:
        err(f"boltlink is not running for {config.data_path.absolute()}: nothing to stop")
        return
    # The lock goes a moment before the process: "stopped" means the master has exited too.
    deadline = time.monotonic() + 10
    while (run_files.running_pid() is not None or _alive(master)) and time.monotonic() < deadline:
        time.sleep(0.05)
    out("stopped")


def _alive(pid: int | None) -> bool:
    import psutil

    if pid is None or pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_cli
def status(cli: CliContext, as_json: bool) -> None:
    """One row per process: pid, status, cpu, memory, restarts, uptime, requests/s."""
    result = _request(cli, "status")
    if as_json:
        out_json(result)
    else:
        print_status(result)


@click.command()
@pass_cli
def reload(cli: CliContext) -> None:
    """Replace every worker with one running the code on disk now, with no request dropped."""
    result = _request(cli, "reload", timeout=None)
    out(f"reloaded {result['reloaded']} processes")


@click.command()
@pass_cli
def restart(cli: CliContext) -> None:
    """Stop every worker and start them again (reload is the zero-downtime way)."""
    result = _request(cli, "restart", timeout=None)
    out(f"restarted {result['restarted']} processes")


@click.command(context_settings={"ignore_unknown_options": True})  # so `scale api -1` is a count, not an option
@click.argument("role")
@click.argument("count")
@pass_cli
def scale(cli: CliContext, role: str, count: str) -> None:
    """Set the number of ROLE workers: N, +N or -N (e.g. `scale api +1`)."""
    result = _request(cli, "scale", {"role": role, "count": count}, timeout=None)
    out(f"{result['role']}: {result['from']} -> {result['to']} workers")


@click.command()
@click.option("--write", is_flag=True, help="Install the unit in /etc/systemd/system and enable it.")
@click.option("--user", "run_as", default=None, help="User to run as (default: the current user).")
@pass_cli
def startup(cli: CliContext, write: bool, run_as: str | None) -> None:
    """Print (or install) a systemd unit that runs this boltlink at boot."""
    import getpass

    from boltlink.cluster.process import boltlink_command

    config = _absolute(cli.config())
    command = boltlink_command()
    if command[1:2] == ["-m"]:
        raise InvalidInput.field("startup", "run startup from the built boltlink.pyz, not from a checkout")
    user = run_as or getpass.getuser()
    unit = UNIT_TEMPLATE.format(
        user=user, data_dir=config.data_dir, exec=" ".join(command),
        config=f" --config {Path(cli.config_file).absolute()}" if cli.config_file else "",
        timeout=int(config.kill_timeout + config.drain_delay + 10),
    )
    if not write:
        out(unit.rstrip())
        return
    path = Path("/etc/systemd/system/boltlink.service")
    try:
        path.write_text(unit)
    except OSError as exc:
        raise InvalidInput.field("startup", f"cannot write {path}: {exc.strerror} (run as root)") from None
    out(f"wrote {path}; enable it with: systemctl daemon-reload && systemctl enable --now boltlink")


UNIT_TEMPLATE = """[Unit]
Description=boltlink link shortener (cluster)
After=network-online.target postgresql.service redis.service
Wants=network-online.target

[Service]
Type=simple
User={user}
WorkingDirectory={data_dir}
ExecStart={exec} --data-dir {data_dir}{config} start-cluster --foreground
ExecReload=/bin/kill -HUP $MAINPID
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec={timeout}
Restart=on-failure
RestartSec=2
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
"""


# -- the status table ---------------------------------------------------------------


def print_status(status: dict[str, Any]) -> None:
    master = status["master"]
    rows = [
        [p["name"], p["id"] if p["id"] is not None else "-", p["pid"] or "-", p["status"],
         f"{p['cpu']:.0f}%", _bytes(p["memory"]), p["restarts"], _duration(p["uptime"]) if p["pid"] else "-",
         *_http_figures(p), _build(p)]
        for p in status["processes"]
    ]
    out_table(["NAME", "ID", "PID", "STATUS", "CPU", "MEMORY", "RESTARTS", "UPTIME", "REQ/S", "P99", "ERRORS",
               "VERSION"], rows)
    for p in status["processes"]:
        if p.get("reason"):
            err(f"{p['name']}: {p['reason']}")
    cluster = status.get("cluster") or {}
    err(f"master pid {master['pid']}, {master['phase']}, {master['address']}, up {_duration(master['uptime'])}"
        f"; api {cluster.get('requests_per_second', 0.0):.1f} req/s, p99 {_p99(cluster.get('p99_ms'))}"
        " (memory is RSS: pages shared between workers are counted in each)")


def _http_figures(process: dict[str, Any]) -> list[str]:
    """REQ/S, P99 (over the last 10 s) and ERRORS (5xx share, same window); '-' for roles without HTTP."""
    if process.get("role") != "api":
        return ["-", "-", "-"]
    return [f"{process['requests_per_second']:.1f}", _p99(process.get("p99_ms")),
            f"{100 * (process.get('error_rate') or 0.0):.1f}%"]


def _p99(milliseconds: float | None) -> str:
    return "-" if milliseconds is None else f"{milliseconds:.1f} ms"


def _build(process: dict[str, Any]) -> str:
    if not process.get("version"):
        return "-"
    return f"{process['version']} ({process['build']})"


def _bytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count else "-"


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"
