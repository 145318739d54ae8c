"""Reload and deploy under load lose no request; load spreads evenly over the API workers.

Each test runs a real detached cluster on its own port (from the source tree,
or from a built boltlink.pyz) and loads a real 302 redirect from
scripts/loadgen.py: 64 keep-alive connections sending GETs back to back,
where a refused or reset connection, a request left without a response, a
timeout or a status outside 2xx/3xx is a failure (a `Connection: close`
followed by a reconnect is not). Every process a test starts carries
ZERO_DOWNTIME_TEST_TAG in its environment (workers inherit it); the finalizer
SIGKILLs each master's process group, then whatever still carries the tag.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))
from loadgen import BackgroundLoad, LoadResult, load, run_load  # noqa: E402

pytestmark = pytest.mark.slow

SOURCE = [sys.executable, "-m", "boltlink"]
TAG_VARIABLE = "ZERO_DOWNTIME_TEST_TAG"
CONNECTIONS = 64
LOAD_LIMIT = 180.0  # seconds: a load nobody stops still ends by itself
COMMAND_TIMEOUT = 120.0  # one CLI call; reload under load takes a few seconds
SLUG, TARGET = "x", "https://example.com/landing"
BALANCE_BOUND = 1.2  # busiest / idlest API worker, as the cluster issue promises
PACED_PAUSE = 0.03  # seconds between a connection's requests: ~2,000 req/s at most, well below saturation
DEPLOY_VERSION = "0.1.0+deploytest"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll predicate until it returns something truthy and return it; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}; last: {last!r}"
        time.sleep(interval)  # poll interval


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def pid_running(pid: int) -> bool:
    try:
        return _running(psutil.Process(pid))
    except psutil.Error:
        return False


class LoadCluster:
    """One data directory and port, and boltlink commands (the source or a pyz) run against them."""

    def __init__(self, command: list[str], home: Path, env: dict[str, str]) -> None:
        self.command = command
        self.home = home
        self.data_dir = home / "data"
        self.port = free_port()
        self.env = env
        self.masters: dict[int, psutil.Process] = {}  # each leads its own process group
        self.seen: dict[int, psutil.Process] = {}  # every process status ever showed

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.command, "--data-dir", str(self.data_dir), *args], cwd=self.home, env=self.env,
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
        )
        self._note(self._pidfile_pid())
        return result

    def ok(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Run boltlink ARGS; it must exit 0. Its stdout."""
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, (
            f"boltlink {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}{self.log_tail()}"
        )
        return result.stdout

    def start(self, instances: int = 2) -> float:
        """create the test link, then start-cluster -i INSTANCES; seconds until every process was ready."""
        self.ok("links", "create", TARGET, "--slug", SLUG)
        started = time.monotonic()
        self.ok("start-cluster", "-i", str(instances), "--port", str(self.port))
        return time.monotonic() - started

    def status(self) -> dict[str, Any]:
        """What `status --json` prints."""
        result = json.loads(self.ok("status", "--json", timeout=30))
        self._note(result["master"]["pid"])
        for row in result["processes"]:
            if row["pid"] and row["pid"] not in self.seen:
                with contextlib.suppress(psutil.Error):
                    self.seen[row["pid"]] = psutil.Process(row["pid"])
        return result

    def rows(self, status: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """The status rows of the processes in their slots (not those draining), by name."""
        rows = (status or self.status())["processes"]
        return {row["name"]: row for row in rows if row["id"] is not None}

    def api_requests(self) -> dict[str, int]:
        """Requests each API worker has served, as its last heartbeat told the master."""
        return {name: row["requests"] for name, row in self.rows().items() if row["role"] == "api"}

    def log_tail(self, lines: int = 15) -> str:
        text = ""
        for log in sorted((self.data_dir / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            text += f"\n--- {log.name} (tail) ---\n" + "\n".join(tail)
        return text

    def _pidfile_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.data_dir / "run" / "boltlink.pid").read_text().strip())
        return None

    def _note(self, pid: int | None) -> None:
        if pid and pid > 0 and pid not in self.masters:
            with contextlib.suppress(psutil.Error):
                self.masters[pid] = psutil.Process(pid)

    def _tagged(self) -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if process.environ().get(TAG_VARIABLE) == self.env[TAG_VARIABLE]:
                    found.append(process)
        return found

    def kill_everything(self) -> list[str]:
        """SIGKILL every process of this cluster; those still alive after 10 s, described."""
        self._note(self._pidfile_pid())
        for pid, master in self.masters.items():
            if _running(master):  # the same process, not a reused pid
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while True:
            targets = [p for p in [*self._tagged(), *self.seen.values()] if _running(p)]
            if not targets or time.monotonic() > deadline:
                break
            for process in targets:
                with contextlib.suppress(psutil.Error):
                    process.kill()
            time.sleep(0.05)  # poll interval while they die
        return [f"pid {p.pid}: {' '.join(p.cmdline())}" for p in targets if _running(p)]


@pytest.fixture
def make_load_cluster(tmp_path: Path) -> Iterator[Callable[..., LoadCluster]]:
    """make_load_cluster(command=SOURCE, env=None): a LoadCluster in tmp_path, always killed at the end."""
    clusters: list[LoadCluster] = []
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("BOLTLINK_")}

    def make(command: list[str] = SOURCE, env: dict[str, str] | None = None) -> LoadCluster:
        home = tmp_path / f"cluster{len(clusters)}"
        home.mkdir()
        cluster = LoadCluster(command, home, {**(env or base_env), TAG_VARIABLE: uuid.uuid4().hex})
        clusters.append(cluster)
        return cluster

    yield make

    survivors = [s for cluster in clusters for s in cluster.kill_everything()]
    assert not survivors, f"processes survived SIGKILL: {survivors}"


def no_failures(load: LoadResult, cluster: LoadCluster) -> str:
    return f"requests failed under load:\n{load.summary()}\n" + "\n".join(load.errors) + cluster.log_tail()


def progress(background: BackgroundLoad, more: int, what: str) -> None:
    """Wait until the load got `more` further ok responses (it keeps flowing through the new workers)."""
    target = background.result.ok + more
    assert background.wait_until(lambda r: r.ok >= target or r.failed_total > 0, timeout=30), (
        f"the load made no progress {what}:\n{background.result.summary()}"
    )


# -- zero-downtime reload and deploy ------------------------------------------------------


def test_reload_under_load_fails_no_request(make_load_cluster: Callable[..., LoadCluster]) -> None:
    cluster = make_load_cluster()
    ready = cluster.start(instances=2)
    before = cluster.status()

    with BackgroundLoad(f"{cluster.url}/{SLUG}", connections=CONNECTIONS, duration=LOAD_LIMIT) as background:
        progress(background, 1000, "before the reload")
        took = []
        for _ in range(2):
            started = time.monotonic()
            assert "reloaded" in cluster.ok("reload")
            took.append(time.monotonic() - started)
            progress(background, 1000, "after a reload")
    load = background.result
    reloads = " and ".join(f"{t:.1f} s" for t in took)
    print(f"\nstart-cluster -i 2 ready in {ready:.1f} s; reload under load: {reloads}; {load.summary()}")

    assert load.failed_total == 0, no_failures(load, cluster)
    # Every connection was moved off a draining worker at least once: the drain path really ran.
    assert load.reconnects >= CONNECTIONS, load.summary()
    after = cluster.status()
    assert after["master"]["pid"] == before["master"]["pid"]
    old = {name: row["pid"] for name, row in cluster.rows(before).items()}
    new = {name: row["pid"] for name, row in cluster.rows(after).items()}
    assert new.keys() == old.keys(), f"other processes after the reload: {new} (before: {old})"
    assert all(new[name] not in (None, old[name]) for name in old), f"pids before {old}, after {new}"
    assert all(row["status"] == "online" for row in after["processes"]), after["processes"]
    assert not [pid for pid in old.values() if pid_running(pid)], "an old worker is still running"


def build_id_of(pyz: Path) -> str:
    """The build id build.py wrote into a pyz (boltlink/_build_info.py)."""
    with zipfile.ZipFile(pyz) as archive:
        text = archive.read("site-packages/boltlink/_build_info.py").decode()
    found = re.search(r'BUILD_ID = "(\w+)"', text)
    assert found, text
    return found.group(1)


def build_new_version(tmp_path: Path, pyz_builder: Callable[..., float], output: Path) -> float:
    """A second, different build: this checkout with __version__ = DEPLOY_VERSION. Seconds it took."""
    source = tmp_path / "source"
    source.mkdir()
    shutil.copytree(ROOT / "boltlink", source / "boltlink", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("build.py", "requirements.lock", "pyproject.toml"):
        shutil.copy2(ROOT / name, source / name)
    # Reuse the checkout's build tools (built_pyz made them): no venv to create, the wheels are cached.
    (source / ".build").mkdir()
    (source / ".build" / "venv").symlink_to(ROOT / ".build" / "venv")
    init = source / "boltlink" / "__init__.py"
    text, count = re.subn(r'^__version__ = ".*"$', f'__version__ = "{DEPLOY_VERSION}"', init.read_text(), flags=re.M)
    assert count == 1, "boltlink/__init__.py sets no __version__"
    init.write_text(text)
    return pyz_builder(output, source)


def test_deploy_of_a_new_build_under_load_fails_no_request(
    make_load_cluster: Callable[..., LoadCluster], built_pyz: Path, user_env: dict[str, str],
    pyz_builder: Callable[..., float], tmp_path: Path,
) -> None:
    cluster = make_load_cluster(command=["./boltlink.pyz"], env=user_env)
    installed = cluster.home / "boltlink.pyz"
    shutil.copy2(built_pyz, installed)
    new_build = tmp_path / "new-boltlink.pyz"
    build_seconds = build_new_version(tmp_path, pyz_builder, new_build)
    old_id, new_id = build_id_of(installed), build_id_of(new_build)
    assert old_id != new_id

    ready = cluster.start(instances=2)
    before = cluster.status()["processes"]
    assert {row["build"] for row in before} == {old_id}, before

    with BackgroundLoad(f"{cluster.url}/{SLUG}", connections=CONNECTIONS, duration=LOAD_LIMIT) as background:
        progress(background, 1000, "before the deploy")
        # As a deploy script would: the new file beside the old one, then one atomic rename over it.
        staged = cluster.home / ".boltlink.pyz.new"
        shutil.copy2(new_build, staged)
        os.replace(staged, installed)
        started = time.monotonic()
        assert "reloaded" in cluster.ok("reload")
        took = time.monotonic() - started
        progress(background, 1000, "after the deploy")
    load = background.result
    print(f"\nbuild of the new version: {build_seconds:.1f} s; pyz start-cluster -i 2 ready in {ready:.1f} s; "
          f"deploy (reload) under load: {took:.1f} s; {load.summary()}")

    assert load.failed_total == 0, no_failures(load, cluster)
    after = cluster.status()["processes"]
    assert {row["pid"] for row in after}.isdisjoint({row["pid"] for row in before})
    shown = {row["name"]: (row["version"], row["build"]) for row in after}
    assert all(build == (DEPLOY_VERSION, new_id) for build in shown.values()), (
        f"expected every process on {DEPLOY_VERSION} ({new_id}), status shows {shown}"
    )


# -- load balance ------------------------------------------------------------------------------


def connections_by_worker(rows: dict[str, dict[str, Any]], port: int) -> dict[str, int]:
    """Established connections to port that each API worker holds (for the failure message)."""
    held = {}
    for name, row in rows.items():
        try:
            sockets = psutil.Process(row["pid"]).net_connections("tcp")
        except (psutil.Error, TypeError):
            continue
        held[name] = sum(1 for s in sockets if s.status == psutil.CONN_ESTABLISHED and s.laddr.port == port)
    return held


def test_load_spreads_evenly_over_the_api_workers(make_load_cluster: Callable[..., LoadCluster]) -> None:
    """The issue's bound on what the cluster records per worker, under a constant load of 64 connections.

    Each connection sends back to back with a short pause, so the load is steady and below what
    the machine can serve: what is measured is how the cluster spreads connections and requests,
    not how the kernel shares two busy cores with the load generator itself (saturated figures
    are reported by the benchmark scripts instead).
    """
    cluster = make_load_cluster()
    cluster.start(instances=2)
    before = cluster.api_requests()
    assert len(before) == 2

    with BackgroundLoad(f"{cluster.url}/{SLUG}", connections=CONNECTIONS, duration=5.0,
                        pause=PACED_PAUSE) as background:
        background.wait_until(lambda r: r.ok >= 200, timeout=10)
        held = connections_by_worker(cluster.rows(), cluster.port)
        background.wait_until(lambda r: r.finished, timeout=30)
    load = background.result
    answered = sum(load.statuses.values())
    assert load.failed_total == 0, no_failures(load, cluster)

    # Heartbeats lag up to a second: wait until the workers' counts add up to every answer we got.
    def settled() -> dict[str, int] | None:
        counts = cluster.api_requests()
        served = {name: counts[name] - before[name] for name in before}
        return served if sum(served.values()) >= answered else None

    served = wait_for(settled, timeout=15, what=f"the workers' counts to reach {answered} requests")
    ratio = max(served.values()) / max(1, min(served.values()))
    shares = ", ".join(f"{name} {count} ({count / answered:.0%})" for name, count in sorted(served.items()))
    rate = load.ok / load.elapsed
    print(f"\nbalance: {shares}; busiest/idlest {ratio:.2f}; connections held {held}; {rate:.0f} ok/s")
    assert ratio <= BALANCE_BOUND, (
        f"busiest/idlest API worker = {ratio:.2f} > {BALANCE_BOUND}: {shares}; connections held: {held}"
    )


# -- the load generator counts what these tests rely on ---------------------------------------


def test_loadgen_refuses_other_hosts_and_counts_refused_connections() -> None:
    with pytest.raises(ValueError, match="only 127.0.0.1"):
        run_load("http://localhost:1/", duration=1)
    port = free_port()  # nothing listens there
    result = run_load(f"http://127.0.0.1:{port}/", connections=2, requests=10)
    assert (result.sent, result.ok, result.failed["refused"]) == (10, 0, 10)


RESPONSES = {
    b"/close": b"HTTP/1.1 302 Found\r\nLocation: /\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    b"/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"/error": b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
}


async def _serve_and_load(path: str, **options: Any) -> LoadResult:
    """Load PATH on a tiny server: /close, /chunked, /error as above; /drop closes unanswered; /hang never answers."""

    async def answer(reader: Any, writer: Any) -> None:
        with contextlib.suppress(Exception):  # the client hung up: nothing more to answer
            while head := await reader.readuntil(b"\r\n\r\n"):
                target = head.split(b" ")[1]
                if target == b"/hang":
                    await asyncio.sleep(30)
                if target not in RESPONSES:
                    break
                writer.write(RESPONSES[target])
                await writer.drain()
                if b"Connection: close" in RESPONSES[target]:
                    break
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await load(f"http://127.0.0.1:{port}{path}", **options)
    finally:
        server.close()


@pytest.mark.parametrize(
    ("path", "ok", "failed", "reconnects"),
    [("/close", 20, {}, 20), ("/chunked", 20, {}, 0), ("/error", 0, {"bad_status": 20}, 0),
     ("/drop", 0, {"no_response": 20}, 0), ("/hang", 0, {"timeout": 2}, 0)],
)
def test_loadgen_counts_each_outcome(path: str, ok: int, failed: dict[str, int], reconnects: int) -> None:
    requests = sum(failed.values()) or ok
    result = asyncio.run(_serve_and_load(path, connections=2, requests=requests, timeout=0.5))
    assert (result.sent, result.ok, result.reconnects) == (requests, ok, reconnects), result.summary()
    assert {kind: n for kind, n in result.failed.items() if n} == failed, result.summary()
