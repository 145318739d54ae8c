"""A real boltlink cluster per test, and the promise that none of it outlives the test.

    def test_x(make_cluster):
        cluster = make_cluster(test_hooks=True, worker_timeout=2)
        cluster.start("-i", "2")          # start-cluster, detached, on a free port
        cluster.api_workers()             # status rows of the api role
        with PortWatcher(cluster.url) as port: ...   # GET /health in a loop, failures counted

Every process a test starts runs with CLUSTER_TEST_TAG=<uuid> in its environment,
and workers inherit it from their master. The finalizer SIGKILLs each master's
process group (a detached master is its own session; its workers share its
group), then every process that still carries the tag, whoever its parent is
by then: an orphaned worker, a master started in a race, a CLI that hung.

Test modules import the helpers by this module's name (a unique one, so it cannot be
confused with another directory's conftest): `from cluster_harness import Cluster, wait_for`.
tests/cluster/conftest.py only hands its fixtures to pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest

from boltlink.cluster import control
from boltlink.cluster.runfiles import RunFiles

T = TypeVar("T")

BOLTLINK = [sys.executable, "-m", "boltlink"]
TAG_VARIABLE = "CLUSTER_TEST_TAG"
COMMAND_TIMEOUT = 60.0  # any one CLI call; start-cluster gives up by itself long before
# Small enough to keep the tests fast, large enough for a loaded 2-core CI box.
FAST_SETTINGS: dict[str, Any] = {
    "listen_timeout": 15,
    "kill_timeout": 5,
    "drain_delay": 0.2,
    "worker_timeout": 10,
    "min_uptime": 1,
    "max_restarts": 5,
}


def wait_for(predicate: Callable[[], T], timeout: float, interval: float = 0.05, what: str = "") -> T:
    """Poll predicate until it returns something truthy, and return that; fail after timeout seconds."""
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
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}; last: {last!r}")
        time.sleep(interval)


def holds(predicate: Callable[[], object], duration: float, interval: float = 0.05, what: str = "") -> None:
    """Fail as soon as predicate is falsy during the next duration seconds (for "it stays so")."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        assert predicate(), f"no longer true: {what or predicate}"
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port, and a new server could bind it (as a restarted cluster does)."""
    with socket.socket() as probe:
        probe.settimeout(1)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def toml_line(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"{key} = {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"{key} = {value}"
    return f"{key} = {json.dumps(str(value))}"  # a JSON string is a TOML basic string


class Cluster:
    """One data directory and port, and the boltlink commands run against them."""

    def __init__(self, data_dir: Path, config_file: Path, port: int, env: dict[str, str], work_dir: Path) -> None:
        self.data_dir = data_dir
        self.config_file = config_file
        self.port = port
        self.env = env
        self.work_dir = work_dir
        self.masters: set[int] = set()  # master pids seen: each leads its own process group
        self.seen: dict[int, psutil.Process] = {}  # every worker pid status ever showed
        self.popens: list[subprocess.Popen[bytes]] = []
        self.run_files = RunFiles(data_dir / "run")

    # -- running the CLI -------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, *args: str) -> list[str]:
        return [*BOLTLINK, "--data-dir", str(self.data_dir), "--config", str(self.config_file), *args]

    def run(self, *args: str, timeout: float = COMMAND_TIMEOUT, env: dict[str, str] | None = None,
            preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
        """boltlink ARGS as a subprocess; stdout and stderr kept apart, as a user's terminal would."""
        result = subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=timeout, cwd=self.work_dir,
            env={**self.env, **(env or {})}, preexec_fn=preexec_fn, stdin=subprocess.DEVNULL,
        )
        self.note_master()
        return result

    def start(self, *args: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """start-cluster (detached) on this cluster's port; by default it must succeed."""
        result = self.run("start-cluster", "--port", str(self.port), *args, **kwargs)
        if check:
            assert result.returncode == 0, f"start-cluster failed ({result.returncode}):\n{result.stderr}"
        return result

    def start_foreground(self, *args: str, output: Path) -> subprocess.Popen[bytes]:
        """start-cluster --foreground in its own process group, stdout and stderr into output."""
        with output.open("wb") as out:
            proc = subprocess.Popen(
                self.command("start-cluster", "--foreground", "--port", str(self.port), *args),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.work_dir,
                env=self.env, start_new_session=True,
            )
        self.popens.append(proc)
        self.masters.add(proc.pid)
        return proc

    # -- asking the master -------------------------------------------------------------

    def note_master(self) -> int | None:
        pid = self.run_files.running_pid()
        if pid is not None and pid > 0:
            self.masters.add(pid)
        return pid

    def status(self) -> dict[str, Any]:
        """The master's status, over the control socket (what `status --json` prints)."""
        result = control.request(self.run_files, "status", timeout=10)
        self.masters.add(result["master"]["pid"])
        for row in result["processes"]:
            if row["pid"] and row["pid"] not in self.seen:
                with contextlib.suppress(psutil.Error):
                    self.seen[row["pid"]] = psutil.Process(row["pid"])
        return result

    def processes(self, role: str | None = None) -> list[dict[str, Any]]:
        rows = self.status()["processes"]
        return [row for row in rows if role is None or row["role"] == role]

    def api_workers(self) -> list[dict[str, Any]]:
        return self.processes("api")

    def api_pids(self) -> set[int]:
        return {row["pid"] for row in self.api_workers() if row["pid"]}

    def all_online(self, count: int | None = None, role: str = "api") -> list[dict[str, Any]] | None:
        """The rows of role when every one is online (and there are count of them), else None."""
        rows = self.processes(role)
        if count is not None and len(rows) != count:
            return None
        return rows if rows and all(row["status"] == "online" and row["pid"] for row in rows) else None

    def get(self, path: str, timeout: float = 5.0) -> httpx.Response:
        return httpx.get(self.url + path, timeout=timeout)

    def post(self, path: str, timeout: float = 5.0) -> httpx.Response:
        return httpx.post(self.url + path, timeout=timeout)

    # -- cleaning up -------------------------------------------------------------------

    def tagged_processes(self) -> list[psutil.Process]:
        tag = self.env[TAG_VARIABLE]
        found = []
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if process.environ().get(TAG_VARIABLE) == tag:
                    found.append(process)
        return found

    def kill_everything(self) -> list[str]:
        """SIGKILL every process of this cluster; the ones still alive after 10 s, described."""
        with contextlib.suppress(psutil.Error, OSError):
            self.note_master()
        for pgid in self.masters:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while True:
            # A zombie is dead enough: it holds no port, and init reaps it in its own time.
            targets = [p for p in [*self.tagged_processes(), *self.seen.values()] if _running(p)]
            if not targets or time.monotonic() > deadline:
                break
            for process in targets:
                with contextlib.suppress(psutil.Error):
                    process.kill()
            time.sleep(0.05)
        for proc in self.popens:  # our own children: reap them
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        return [f"pid {p.pid}: {_command_line(p)}" for p in targets if _running(p)]


def _command_line(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return "?"


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class PortWatcher:
    """GET url+path in a loop from a thread, each on a new connection, and keep every failure.

    `with watcher.quiet():` waits for the request in flight to finish and
    holds the next one back, so a test can kill a worker without cutting a
    request the test itself had sent.
    """

    def __init__(self, url: str, path: str = "/health", interval: float = 0.02) -> None:
        self.url = url + path
        self.interval = interval
        self.successes = 0
        self.failures: list[str] = []
        self._gate = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="port-watcher", daemon=True)

    def __enter__(self) -> PortWatcher:
        self._thread.start()
        wait_for(lambda: self.successes > 0 or self.failures, 10, what=f"a first answer from {self.url}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=15)

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        with self._gate:
            yield

    def _poll(self) -> None:
        while not self._stopping.is_set():
            with self._gate:
                try:
                    response = httpx.get(self.url, timeout=5)
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                else:
                    if response.status_code == 200:
                        self.successes += 1
                    else:
                        self.failures.append(f"HTTP {response.status_code}")
            time.sleep(self.interval)


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """make_cluster(data_dir=None, env=None, **settings): a Cluster with settings in its boltlink.toml.

    settings go over FAST_SETTINGS (test_hooks=True switches the /__test__
    endpoints on). Whatever the test did, every process it started is killed
    when it ends, and the test errors if one survives.
    """
    clusters: list[Cluster] = []
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("BOLTLINK_")}

    def make(data_dir: Path | None = None, env: dict[str, str] | None = None, **settings: Any) -> Cluster:
        index = len(clusters)
        home = tmp_path / f"cluster{index}"
        home.mkdir()
        config_file = home / "boltlink.toml"
        values = {**FAST_SETTINGS, **settings}
        config_file.write_text("".join(toml_line(k, v) + "\n" for k, v in values.items()))
        cluster = Cluster(
            data_dir=data_dir or home / "data", config_file=config_file, port=free_port(),
            env={**base_env, **(env or {}), TAG_VARIABLE: uuid.uuid4().hex}, work_dir=home,
        )
        clusters.append(cluster)
        return cluster

    yield make

    survivors = [s for cluster in clusters for s in cluster.kill_everything()]
    assert not survivors, f"processes survived SIGKILL: {survivors}"


@pytest.fixture
def cluster(make_cluster: Callable[..., Cluster]) -> Cluster:
    """A cluster with FAST_SETTINGS, not started yet."""
    return make_cluster()


@pytest.fixture
def public_tmp_dir() -> Iterator[Path]:
    """A directory every user may traverse (pytest's tmp_path sits under 0700 directories)."""
    path = Path(tempfile.mkdtemp(prefix="boltlink-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
