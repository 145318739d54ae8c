"""DATA_DIR/run: the master's pidfile (held under an flock while it lives) and control socket.

The lock, not the pid in the file, decides whether a master runs: a crashed
master's lock dies with it, so a stale pidfile or socket is recognised and
cleaned instead of blocking the next start.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from boltlink.errors import AlreadyRunning, ConfigError

PIDFILE = "boltlink.pid"
SOCKET = "boltlink.sock"
# sun_path holds 108 bytes; deeper data dirs are reached through /proc/self/fd.
_SUN_PATH_MAX = 100


class RunFiles:
    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self.pidfile = run_dir / PIDFILE
        self.socket = run_dir / SOCKET
        self._lock_fd: int | None = None
        self._dir_fd: int | None = None

    def acquire(self) -> None:
        """Become the master for this data dir, or raise AlreadyRunning."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(f"cannot create {self.dir}: {exc.strerror}") from None
        fd = os.open(self.pidfile, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = self.running_pid()  # -1 while the winner has the lock but not yet its pid written
            raise AlreadyRunning(
                f"boltlink is already running for {self.dir.parent} (master pid {pid if pid and pid > 0 else '?'})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        self.socket.unlink(missing_ok=True)  # left by a master that crashed: the lock was free

    def release(self) -> None:
        """Remove the socket and pidfile, then let go of the lock."""
        self.socket.unlink(missing_ok=True)
        if self._lock_fd is not None:
            self.pidfile.unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None

    def running_pid(self) -> int | None:
        """The pid of the live master, or None when none holds the lock (a stale file is ignored)."""
        try:
            fd = os.open(self.pidfile, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                # From the descriptor we hold, not the path: a master exiting now may have removed the
                # file already (that raised FileNotFoundError out of `stop`, as an internal error).
                text = os.read(fd, 64).decode("ascii", "replace").strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(fd, fcntl.LOCK_UN)  # we got the lock: nobody holds it, the file is stale
            return None
        finally:
            os.close(fd)

    def socket_address(self) -> str:
        """A path to bind or connect to, short enough for sun_path even in a deep data dir."""
        path = str(self.socket)
        if len(path.encode()) <= _SUN_PATH_MAX:
            return path
        if self._dir_fd is None:
            self._dir_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return f"/proc/self/fd/{self._dir_fd}/{SOCKET}"
