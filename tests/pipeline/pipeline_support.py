"""What the click pipeline tests share: a real cluster, a private redis-server, and the stats API.

    cluster = make_pipeline(redis=private_redis, database_url=postgres_url)  # or make_pipeline() (embedded)
    cluster.prepare("x")                  # an admin API key, and link /x -> TARGET, through the CLI
    cluster.start("-i", "2")              # start-cluster, detached, on a free port
    result = run_load(cluster.url + "/x", connections=16, requests=2000)
    cluster.assert_exactly("x", result.ok)   # the stats reach exactly that, and stay there

The cluster is the one of tests/cluster/cluster_harness.py (tagged processes, SIGKILL of
every process group and every tagged leftover when the test ends), loaded here
by path: `from conftest import` would pick whichever conftest pytest imported last.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import redis
from harness_import import cluster_harness

ROOT = Path(__file__).resolve().parents[2]


harness = cluster_harness()
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))
from loadgen import BackgroundLoad, LoadResult, run_load  # noqa: E402

wait_for = harness.wait_for
holds = harness.holds
free_port = harness.free_port

__all__ = ["BackgroundLoad", "LoadResult", "PipelineCluster", "RedisServer", "holds", "run_load", "wait_for"]

TARGET = "https://example.com/landing"
# Small batches: many commits (and so many moments a kill can land between two of them).
SETTINGS: dict[str, Any] = {**harness.FAST_SETTINGS, "aggregator_batch_size": 200}
CATCH_UP = 20.0  # seconds the aggregator has to count what was clicked; XAUTOCLAIM's 30 s would not fit
SETTLE = 2.0  # once the count is reached, it must stay exactly there this long
EPOCH = "2000-01-01T00:00:00Z"  # a `from` before every click a test makes


def assert_clean_load(result: LoadResult, requests: int) -> None:
    """Every request got its redirect: only then is `requests` the number of clicks to expect."""
    assert result.sent == requests and result.ok == requests, result.summary()
    assert result.failed_total == 0, result.summary()
    assert dict(result.statuses) == {302: requests}, result.summary()


class PipelineCluster(harness.Cluster):
    """A harness Cluster plus an admin key and the reads a user makes of the statistics."""

    key = ""

    # -- setting up ------------------------------------------------------------------

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, f"boltlink {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
        return result.stdout

    def prepare(self, *slugs: str) -> None:
        """An admin API key, and a link per slug, created with the CLI as an operator would."""
        self.key = self.ok("apikey", "create", "--name", "pipeline-test", "--scope", "admin").strip()
        assert self.key.startswith("bl_"), self.key
        for slug in slugs:
            self.ok("links", "create", TARGET, "--slug", slug)

    def create_link(self, slug: str, **fields: Any) -> dict[str, Any]:
        """A link created through the API (what a user's dashboard does)."""
        response = self.api("POST", "/api/v1/links", json={"url": TARGET, "slug": slug, **fields})
        assert response.status_code == 201, response.text
        return response.json()

    # -- reading what the API says ---------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, headers={"Authorization": f"Bearer {self.key}"},
                             timeout=10, **kwargs)

    def read(self, path: str, **params: Any) -> Any:
        response = self.api("GET", path, params=params)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def totals(self, slug: str, **params: Any) -> dict[str, int]:
        """total / humans / bots / visitors of one link (GET /api/v1/links/{slug}/stats)."""
        return self.read(f"/api/v1/links/{slug}/stats", **params)["totals"]

    def link_clicks(self, slug: str) -> dict[str, int]:
        """The `clicks` field of the link's JSON."""
        return self.read(f"/api/v1/links/{slug}")["clicks"]

    def global_totals(self, **params: Any) -> dict[str, int]:
        return self.read("/api/v1/stats", **params)["totals"]

    def visits(self, slug: str) -> list[dict[str, Any]]:
        """Every raw visit of a link, all pages of GET /api/v1/links/{slug}/visits."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.read(f"/api/v1/links/{slug}/visits", limit=500, **({"cursor": cursor} if cursor else {}))
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                return items

    def assert_exactly(self, slug: str, clicks: int, *, humans: int | None = None, bots: int = 0,
                       also_global: bool = True, timeout: float = CATCH_UP,
                       since: dict[str, str] | None = None) -> None:
        """The link's stats reach `clicks` within timeout, never pass it, and still say so SETTLE s later.

        Fails at once when the count goes over: a click counted twice is never "not yet". The stats
        cover the last 30 days, or what `since` ({"from": ISO-8601}) says; the link's clicks all time.
        """
        since = since or {}
        humans = clicks - bots if humans is None else humans
        deadline = time.monotonic() + timeout
        history: list[int] = []
        while True:
            total = self.totals(slug, **since)["total"]
            if not history or history[-1] != total:
                history.append(total)
            assert total <= clicks, f"/{slug}: {total} clicks counted for {clicks} redirects (seen: {history})"
            if total == clicks:
                break
            assert time.monotonic() < deadline, (
                f"/{slug}: {total} of {clicks} clicks counted after {timeout:g} s (seen: {history})\n"
                f"{self.log_tail('aggregator')}"
            )
            time.sleep(0.1)  # poll interval
        expected = {"total": clicks, "humans": humans, "bots": bots}
        holds(lambda: self.totals(slug, **since)["total"] == clicks, SETTLE, interval=0.2,
              what=f"/{slug} stays at {clicks} clicks")
        assert _three(self.totals(slug, **since)) == expected
        assert self.link_clicks(slug) == expected  # the link JSON reads the same counters
        if also_global:
            assert _three(self.global_totals(**since)) == expected

    # -- processes ---------------------------------------------------------------------

    def pids(self, role: str) -> list[int]:
        return [row["pid"] for row in self.processes(role) if row["pid"]]

    def respawned(self, role: str, old: int) -> int | None:
        """The pid of role's new process once it is online (and not the old one)."""
        rows = self.processes(role)
        if len(rows) == 1 and rows[0]["status"] == "online" and rows[0]["pid"] not in (None, old):
            return rows[0]["pid"]
        return None

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.data_dir / "logs" / f"{name}.log"
        with contextlib.suppress(OSError):
            return f"--- {path.name} ---\n" + "\n".join(path.read_text().splitlines()[-lines:])
        return f"(no {path.name})"

    def ready(self) -> tuple[int, str]:
        response = httpx.get(self.url + "/ready", timeout=5)
        return response.status_code, response.json()["status"]

    def spool_bytes(self) -> int:
        """Bytes in the spool files (events waiting for the aggregator, or for Redis)."""
        return sum(p.stat().st_size for p in (self.data_dir / "spool").glob("*.events"))


def _three(counts: dict[str, int]) -> dict[str, int]:
    return {key: counts[key] for key in ("total", "humans", "bots")}


def _toml_line(key: str, value: Any) -> str:
    if isinstance(value, list):
        return f"{key} = {json.dumps([str(item) for item in value])}"  # a JSON list of strings is a TOML array
    return harness.toml_line(key, value)


def cluster_factory(tmp_path: Path) -> Iterator[Callable[..., PipelineCluster]]:
    """make(redis=None, database_url=None, **settings): a PipelineCluster with its boltlink.toml.

    Whatever the test did, every process of every cluster is SIGKILLed when it ends (see the harness).
    """
    clusters: list[PipelineCluster] = []
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("BOLTLINK_")}

    def make(redis: RedisServer | None = None, database_url: str | None = None, **settings: Any) -> PipelineCluster:
        home = tmp_path / f"cluster{len(clusters)}"
        home.mkdir()
        values = {**SETTINGS, **settings}
        if redis is not None:
            values["redis_url"] = redis.url
        if database_url is not None:
            values["database_url"] = database_url
        config_file = home / "boltlink.toml"
        config_file.write_text("".join(_toml_line(k, v) + "\n" for k, v in values.items()))
        cluster = PipelineCluster(
            data_dir=home / "data", config_file=config_file, port=free_port(),
            env={**base_env, harness.TAG_VARIABLE: os.urandom(16).hex()}, work_dir=home,
        )
        clusters.append(cluster)
        return cluster

    yield make

    survivors = [s for cluster in clusters for s in cluster.kill_everything()]
    assert not survivors, f"processes survived SIGKILL: {survivors}"


class RedisServer:
    """A redis-server of this test's own, on a free port: the shared one on 6379 is never touched.

    No automatic persistence; stop(save=True) is a graceful SHUTDOWN SAVE, whose dump the
    next start() loads; crash() is a SIGKILL, after which the server comes back empty.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=5)

    def start(self) -> RedisServer:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.home), "--dbfilename", "dump.rdb", "--logfile", str(self.home / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )

        def answers() -> bool:
            assert self.proc is not None and self.proc.poll() is None, f"redis-server exited: {self.log_tail()}"
            with self.client() as client:
                return bool(client.ping())

        wait_for(answers, 10, what=f"redis-server on port {self.port}")
        return self

    def stop(self, save: bool) -> None:
        """SHUTDOWN [SAVE|NOSAVE], and wait until the process is gone."""
        assert self.proc is not None
        # A plain socket: redis-py retries a command whose connection drops, SHUTDOWN too, for seconds.
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"SHUTDOWN SAVE\r\n" if save else b"SHUTDOWN NOSAVE\r\n")
            self.proc.wait(timeout=10)

    def crash(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.home / "redis.log").read_text()[-2000:]
        return ""
