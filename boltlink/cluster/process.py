"""One worker process as the master sees it: how it is started, what it said, how it ended.

A worker is a fresh interpreter running boltlink from disk again (the pyz
file, or the package), never a fork of the master: so `reload` after copying
a new build over the pyz starts the new code.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import socket
import sys
import time
import zipfile
from collections.abc import Callable
from typing import Any

import psutil

from boltlink.cluster.telemetry import ProcessRates
from boltlink.entry import WORKER_COMMAND
from boltlink.workers.channel import BOOT_FAILURE_EXIT, decode, encode

log = logging.getLogger("boltlink.master")

TAIL_LINES = 20
MESSAGES_DRAIN_SECONDS = 1.0  # after an exit, how long its channel may take to give up its last lines


def boltlink_command() -> list[str]:
    """How to run boltlink again: the pyz on disk when we came from one, else the package."""
    argv0 = sys.argv[0]
    if argv0 and os.path.isfile(argv0) and zipfile.is_zipfile(argv0):
        return [sys.executable, os.path.abspath(argv0)]
    return [sys.executable, "-m", "boltlink"]


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    if code == BOOT_FAILURE_EXIT:
        return "could not boot (exit 3)"
    return f"exit {code}"


class WorkerProcess:
    """Spawned by spawn(); the master reads its output and messages until it exits."""

    def __init__(self, name: str, role: str) -> None:
        self.name = name
        self.role = role
        self.status = "starting"  # starting, online, stopping, stopped
        self.pid = 0
        self.started_at = time.monotonic()
        self.started_wall = time.time()
        self.last_heartbeat = self.started_at
        self.version = "?"
        self.build = "?"
        self.rates = ProcessRates()  # its heartbeats' counts, and the rates made of them
        self.cpu_percent = 0.0
        self.rss = 0
        self.stop_reason: str | None = None  # set when the master stops it on purpose
        self.failure: str | None = None  # why the master killed it, when it did
        self.balance_slot: int | None = None  # its place on the connection board (API workers)
        self.ready = asyncio.Event()
        self.went_online = False  # it reported ready once (and so did its job for a while)
        self.exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.recycle_requested: str | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._proc: asyncio.subprocess.Process | None = None
        self._psutil: psutil.Process | None = None
        self._channel: asyncio.StreamWriter | None = None
        self._messages: asyncio.Task[None] | None = None

    async def spawn(self, command: list[str], hello: dict[str, Any], listen_sock: socket.socket | None,
                    on_line: Callable[[str, str], None], on_message: Callable[[WorkerProcess, dict], None],
                    on_exit: Callable[[WorkerProcess, int], None]) -> None:
        master_end, worker_end = socket.socketpair()
        fds = [worker_end.fileno()]
        args = [*command, WORKER_COMMAND, self.role, self.name, str(worker_end.fileno())]  # workers/spawned.py
        if listen_sock is not None:
            fds.append(listen_sock.fileno())
            args.append(str(listen_sock.fileno()))
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *args, pass_fds=fds, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )
        finally:
            worker_end.close()  # the child has its copy; ours would hide the master's EOF from it
        self.pid = self._proc.pid
        try:
            self._psutil = psutil.Process(self.pid)
            self._psutil.cpu_percent(None)  # the first call always says 0.0: prime it
        except psutil.Error:
            self._psutil = None
        reader, self._channel = await asyncio.open_unix_connection(sock=master_end)
        self._channel.write(encode({**hello, "master_pid": os.getpid()}))
        loop = asyncio.get_running_loop()
        loop.create_task(self._read_output(on_line))
        self._messages = loop.create_task(self._read_messages(reader, on_message))
        loop.create_task(self._wait(on_exit))

    async def _read_output(self, on_line: Callable[[str, str], None]) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            try:
                raw = await self._proc.stdout.readline()
            except ValueError:  # a line over the stream limit: take what is buffered
                raw = await self._proc.stdout.read(65536)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.tail.append(line)
            on_line(self.name, line)

    async def _read_messages(self, reader: asyncio.StreamReader,
                             on_message: Callable[[WorkerProcess, dict], None]) -> None:
        while True:
            try:
                line = await reader.readline()
            except (ConnectionError, ValueError):  # a worker that died mid-message: its channel just ends
                return
            if not line:
                return
            message = decode(line)
            if message is None:
                continue
            kind = message["type"]
            if kind == "ready":
                self.version = str(message.get("version", "?"))
                self.build = str(message.get("build", "?"))
                self.last_heartbeat = time.monotonic()
                if self.status == "starting":
                    self.status = "online"
                self.went_online = True
                self.ready.set()
            elif kind == "heartbeat":
                self._take_heartbeat(message)
            on_message(self, message)

    def _take_heartbeat(self, message: dict[str, Any]) -> None:
        self.last_heartbeat = time.monotonic()
        self.rates.add(message, self.last_heartbeat)

    async def _wait(self, on_exit: Callable[[WorkerProcess, int], None]) -> None:
        assert self._proc is not None
        code = await self._proc.wait()
        if self._messages is not None:
            # Its last heartbeat first: the final counts. Whatever became of the channel, the exit is reported.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._messages), MESSAGES_DRAIN_SECONDS)
        if self._channel is not None:
            self._channel.close()
        self.status = "stopped"
        self.ready.set()  # wake anyone waiting for ready: they check exited
        if not self.exited.done():
            self.exited.set_result(code)
        on_exit(self, code)

    # -- control -------------------------------------------------------------

    def answer(self, ask_id: Any, answer: dict[str, Any] | None = None, error: str | None = None) -> None:
        """Reply to the worker's {"type": "ask"} on its channel."""
        if self._channel is not None and not self._channel.is_closing():
            reply = {"type": "answer", "id": ask_id, **({"error": error} if error else {"answer": answer})}
            self._channel.write(encode(reply))

    def signal(self, signum: int) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signum)

    def stop(self, reason: str) -> None:
        """Ask it to drain and exit (SIGTERM); the master escalates to SIGKILL after kill_timeout."""
        self.stop_reason = reason
        if self.status != "stopped":
            self.status = "stopping"
        self.signal(signal.SIGTERM)

    async def wait_stopped(self, timeout: float) -> int:
        """Wait for the exit; SIGKILL when it takes longer than timeout."""
        try:
            return await asyncio.wait_for(asyncio.shield(self.exited), timeout)
        except TimeoutError:
            log.warning("%s (pid %d) did not stop within %.0f s: killing it", self.name, self.pid, timeout)
            self.signal(signal.SIGKILL)
            return await self.exited

    async def wait_ready(self, timeout: float) -> bool:
        """True once it reported ready; False when it exited or timed out first."""
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError:
            return False
        return self.status == "online" and not self.exited.done()

    # -- what status shows -----------------------------------------------------------

    @property
    def counters(self) -> dict[str, Any]:
        """Its latest heartbeat: counts since it started."""
        return self.rates.counts

    @property
    def requests_per_second(self) -> float:
        return self.rates.requests_per_second

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    def uptime(self) -> float:
        return time.monotonic() - self.started_at

    def sample(self) -> None:
        """Refresh cpu_percent (since the last sample) and rss (shared pages count in each process)."""
        if self._psutil is None or not self.alive:
            self.cpu_percent, self.rss = 0.0, 0
            return
        try:
            with self._psutil.oneshot():
                self.cpu_percent = self._psutil.cpu_percent(None)
                self.rss = self._psutil.memory_info().rss
        except psutil.Error:
            self.cpu_percent, self.rss = 0.0, 0

    def last_lines(self, count: int = 8) -> list[str]:
        return list(self.tail)[-count:]
