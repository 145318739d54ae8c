"""Private servers and a small disk for scripts/chaos.py: redis-server, PostgreSQL (initdb), a tmpfs.

Each listens on 127.0.0.1 on a free port of its own, or lives in a directory of its own;
kill() / unmount() always undo what start() / mount() did. The shared PostgreSQL (5432)
and Redis (6379) are never touched here.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil

T = TypeVar("T")

LOOPBACK = "127.0.0.1"


def wait_for(predicate: Callable[[], T], timeout: float, interval: float = 0.05, what: str = "") -> T:
    """Poll predicate until it returns something truthy, and return that; raise TimeoutError after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
        except Exception as exc:  # a poll that raises (connection refused, not yet running) is "not yet"
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what or predicate}; last: {last!r}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


# -- private servers ----------------------------------------------------------------------------------------


class RedisServer:
    """A redis-server of our own on a free port; stop(save=True) is SHUTDOWN SAVE, start() loads the dump."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no",
             "--dir", str(self.home), "--dbfilename", "dump.rdb", "--logfile", str(self.home / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )

        def answers() -> bool:
            with socket.create_connection((LOOPBACK, self.port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")

        wait_for(answers, 10, what=f"redis-server on port {self.port}")
        return self

    def stop(self, save: bool = True) -> None:
        assert self.proc is not None
        # A plain socket: redis-py retries a command whose connection drops, SHUTDOWN too.
        with socket.create_connection((LOOPBACK, self.port), timeout=5) as sock:
            sock.sendall(b"SHUTDOWN SAVE\r\n" if save else b"SHUTDOWN NOSAVE\r\n")
            self.proc.wait(timeout=10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def postgres_bin() -> Path | None:
    """The bin directory of the newest PostgreSQL installed under /usr/lib/postgresql, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """A PostgreSQL instance of our own: initdb into home (owned by postgres), trust auth, a free port.

    The server runs as the postgres user (it refuses root): runuser when we are root.
    """

    def __init__(self, home: Path, bin_dir: Path) -> None:
        self.home = home
        self.bin_dir = bin_dir
        self.port = free_port()
        self.data = home / "pgdata"
        self.socket_dir = home / "socket"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"

    def _as_postgres(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd="/")

    def init(self) -> PostgresServer:
        self.home.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres", "postgres")
            shutil.chown(self.socket_dir, "postgres", "postgres")
            self.home.chmod(0o700)
        result = self._as_postgres(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
                                   "--auth=trust", "--no-sync", "-E", "UTF8")
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}{result.stderr}")
        return self

    def start(self) -> PostgresServer:
        options = (f"-p {self.port} -k {self.socket_dir} -c listen_addresses={LOOPBACK} -c fsync=off"
                   " -c max_connections=200")
        result = self._as_postgres(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l",
                                   str(self.home / "postgres.log"), "-o", options, "-w", "-t", "30", "start")
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed:\n{result.stdout}{result.stderr}\n{self.log_tail()}")
        return self

    def stop(self, mode: str = "fast") -> None:
        result = self._as_postgres(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                                   "-t", "30", "stop")
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed:\n{result.stdout}{result.stderr}")

    def kill(self) -> None:
        """SIGKILL the postmaster and its children (whatever state the scenario left it in)."""
        pid_file = self.data / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            master = psutil.Process(int(pid_file.read_text().split()[0]))
            for process in [*master.children(recursive=True), master]:
                with contextlib.suppress(psutil.Error):
                    process.kill()
            psutil.wait_procs([master], timeout=10)

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.home / "postgres.log").read_text()[-2000:]
        return ""


# -- a small disk -------------------------------------------------------------------------------------------


class Tmpfs:
    """A tmpfs of `size` mounted at path (mode 0700: boltlink refuses a data dir others may write)."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        self.size = size
        self.mounted: list[Path] = []  # innermost last

    @staticmethod
    def mount_error(probe_dir: Path) -> str | None:
        """Why a tmpfs cannot be mounted here (not root, no permission), or None when it can."""
        target = probe_dir / "mount-probe"
        target.mkdir(exist_ok=True)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(target)],
                                capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            target.rmdir()
            return (result.stderr or result.stdout).strip() or f"mount exited {result.returncode}"
        subprocess.run(["umount", str(target)], capture_output=True, timeout=30)
        target.rmdir()
        return None

    def mount(self) -> Tmpfs:
        self.path.mkdir(parents=True, exist_ok=True)
        self._mount(["-t", "tmpfs", "-o", f"size={self.size},mode=0700", "tmpfs", str(self.path)])
        self.mounted.append(self.path)
        return self

    def overlay_read_only(self, directory: Path) -> None:
        """Mount an empty read-only tmpfs over directory: nothing new can be created in it."""
        self._mount(["-t", "tmpfs", "-o", "size=64k,mode=0700,ro", "tmpfs", str(directory)])
        self.mounted.append(directory)

    def remove_overlay(self, directory: Path) -> None:
        self._umount(directory)
        self.mounted.remove(directory)

    def remount(self, read_only: bool, timeout: float = 15.0) -> None:
        """mount -o remount,ro|rw: refused (busy) while any file on it is open for writing, so retried."""
        mode = "ro" if read_only else "rw"
        wait_for(lambda: subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], capture_output=True,
                                        timeout=30).returncode == 0, timeout, interval=0.2,
                 what=f"remount,{mode} of {self.path}")

    def fill(self, filler: Path) -> int:
        """Write zeros to filler until the file system is full, to its last byte; the bytes written."""
        written = 0
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 4096, 1):  # then the rest of the last page
                block = bytes(size)
                while True:
                    try:
                        count = os.write(fd, block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
                    written += count
                    if count < size:
                        break
        finally:
            os.close(fd)
        return written

    def unmount(self) -> None:
        while self.mounted:
            self._umount(self.mounted[-1])
            self.mounted.pop()

    @staticmethod
    def _mount(args: list[str]) -> None:
        result = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"mount {' '.join(args)}: {result.stderr.strip()}")

    @staticmethod
    def _umount(path: Path) -> None:
        for _ in range(50):  # a process killed a moment ago may still hold a file open
            if subprocess.run(["umount", str(path)], capture_output=True, timeout=30).returncode == 0:
                return
            time.sleep(0.1)
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)  # lazy, as a last resort
