"""The master process: take the run lock, bind the port once, supervise, clean up.

`start-cluster --foreground` runs this in the calling process (containers,
systemd); plain `start-cluster` runs it in a detached child (daemon.py).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import socket
import sys
from collections.abc import Callable

from boltlink.cluster.control import ControlServer
from boltlink.cluster.cpus import describe_cpus, usable_cpus
from boltlink.cluster.datadir import ensure_private_data_dir
from boltlink.cluster.logs import ProcessLogs
from boltlink.cluster.runfiles import RunFiles
from boltlink.cluster.supervisor import ClusterError, Supervisor
from boltlink.config import Config
from boltlink.errors import ListenError
from boltlink.logformat import make_formatter
from boltlink.metrics_server import MetricsServer, bind_metrics
from boltlink.workers.balance import ConnectionBoard, SlotAllocator

log = logging.getLogger("boltlink.master")


def api_instances(config: Config) -> int:
    return usable_cpus() if config.instances == "max" else config.instances


def bind_listener(config: Config) -> socket.socket:
    """The one listening socket every API worker shares; the master itself never accepts on it."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
        sock.listen(config.backlog)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
    return sock


class _LogFileHandler(logging.Handler):
    """The master's own records go to logs/master.log, rotated like every process log."""

    def __init__(self, logs: ProcessLogs) -> None:
        super().__init__()
        self.logs = logs

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.logs.write("master", self.format(record))
        except Exception:
            self.handleError(record)


class _PrefixedStreamHandler(logging.StreamHandler):
    """`master | <line>` on stdout, as the workers' lines are echoed there."""

    def format(self, record: logging.LogRecord) -> str:
        return "master | " + super().format(record)


def run_master(config: Config, *, echo: bool) -> None:
    """Run the cluster until stopped. Raises ConfigError (data dir not private), AlreadyRunning, ListenError,
    ClusterError (start failed)."""
    ensure_private_data_dir(config)
    run_files = RunFiles(config.run_path)
    run_files.acquire()
    logs = ProcessLogs(config.log_path, max_bytes=config.log_max_size, backups=config.log_max_files)
    sock: socket.socket | None = None
    metrics_sock: socket.socket | None = None
    try:
        _configure_logging(config, logs, echo)
        sock = bind_listener(config)
        metrics_sock = bind_metrics(config)
        instances = api_instances(config)
        log.info("starting %d API workers (%s), data dir %s", instances,
                 describe_cpus() if config.instances == "max" else "-i", config.data_path)

        def on_line(name: str, line: str) -> None:
            logs.write(name, line)
            if echo:
                print(f"{name} | {line}", flush=True)

        board = ConnectionBoard(config.run_path / "connections", create=True)
        supervisor = Supervisor(config, sock, instances, on_line, SlotAllocator(board))
        # The stdlib loop, not uvloop as in the workers: the master handles a few messages a second,
        # and uvloop's mapped code was 2.2 MB of its ~39 MB RSS (issue #8's goal is 40 MB).
        asyncio.run(_serve(supervisor, run_files, metrics_sock))
    except ClusterError as exc:
        log.error("cluster could not start: %s", exc.detail)
        raise
    finally:
        log.info("master stopped")
        for bound in (sock, metrics_sock):  # free the ports before the lock: a start right after `stop` can bind
            if bound is not None:
                bound.close()
        run_files.release()
        logs.close()


async def _serve(supervisor: Supervisor, run_files: RunFiles, metrics_sock: socket.socket | None) -> None:
    control = ControlServer(run_files, supervisor.dispatch)
    await control.start()
    metrics = MetricsServer(supervisor.config, metrics_sock, supervisor.metrics) if metrics_sock else None
    if metrics is not None:
        await metrics.start()
    trimming = asyncio.get_running_loop().create_task(_give_back_free_memory(lambda: supervisor.phase != "starting"))
    try:
        await supervisor.run()
    finally:
        trimming.cancel()
        if metrics is not None:
            await metrics.close()
        await control.close()


TRIM_SECONDS = 30.0


async def _give_back_free_memory(started: Callable[[], bool]) -> None:
    """Once every worker is ready, then every TRIM_SECONDS, return the C heap's free pages to the
    system (glibc's malloc_trim).

    The master lives as long as the cluster, and what it allocates in bursts (starting workers,
    a heartbeat's JSON from each every second, status answers) left free pages that glibc keeps:
    ~1 MB of its ~40 MB RSS (issue #8 bounds it at 40 MB). A call costs well under a millisecond.
    Not glibc (musl, macOS): nothing to do.
    """
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return
    # Right after the biggest burst, starting the workers: it was 5 s later before, and a load
    # that began as soon as start-cluster returned saw the master at 40.3 MB until then.
    while not started():
        await asyncio.sleep(0.1)
    while True:
        trim(0)
        await asyncio.sleep(TRIM_SECONDS)


def _configure_logging(config: Config, logs: ProcessLogs, echo: bool) -> None:
    formatter = make_formatter(config.log_format, "master")
    to_file = _LogFileHandler(logs)
    to_file.setFormatter(formatter)
    handlers: list[logging.Handler] = [to_file]
    if echo:  # prefixed like the workers' lines on stdout
        to_stdout = _PrefixedStreamHandler(sys.stdout)
        to_stdout.setFormatter(formatter)
        handlers.append(to_stdout)
    logging.basicConfig(level=config.log_level.upper(), handlers=handlers, force=True)
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_logger.setLevel(logging.WARNING)
