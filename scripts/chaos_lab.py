"""What scripts/chaos.py's scenarios run against: clusters, private servers, a small disk, and their cleanup.

    with Lab(make_cluster) as lab:                  # make_cluster: ChaosClusters, or tests' PipelineClusters
        cluster = lab.cluster(redis=lab.redis(), database_url=lab.postgres().url)
        ...
    # every cluster SIGKILLed, every private server killed, every tmpfs unmounted, scratch databases dropped

Everything listens on 127.0.0.1 and on free ports: the shared PostgreSQL (5432) and
Redis (6379) are never stopped; the shared PostgreSQL only lends a scratch database.
A cluster's processes carry CHAOS_TAG=<random> in their environment, so that every
one of them (a respawned worker included) can be found and killed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python scripts/chaos.py` runs boltlink from this checkout
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
from chaos_servers import (  # noqa: E402
    LOOPBACK,
    PostgresServer,
    RedisServer,
    Tmpfs,
    free_port,
    postgres_bin,
)

SHARED_POSTGRES = os.environ.get("BOLTLINK_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TAG_VARIABLE = "CHAOS_TAG"
TARGET = "https://example.com/landing"
# Small enough to keep scenarios short, large enough for a loaded 2-core box (tests/cluster's FAST_SETTINGS).
CLUSTER_SETTINGS: dict[str, Any] = {
    "listen_timeout": 15, "kill_timeout": 5, "drain_delay": 0.2, "worker_timeout": 10,
    "min_uptime": 1, "max_restarts": 5, "aggregator_batch_size": 200,
}


def readiness(url: str) -> tuple[int, dict[str, Any]]:
    """GET /ready: its status code and document."""
    response = httpx.get(url + "/ready", timeout=5)
    return response.status_code, response.json()


# -- a cluster ----------------------------------------------------------------------------------------------


class ChaosCluster:
    """A boltlink cluster from this checkout (python -m boltlink), with the calls the scenarios make.

    The same methods as tests/pipeline's PipelineCluster, so that the tests run the scenarios
    on their harness's clusters and this script on these.
    """

    key = ""

    def __init__(self, home: Path, settings: dict[str, Any]) -> None:
        self.home = home
        self.data_dir = home / "data"
        self.port = free_port()
        self.config_file = home / "boltlink.toml"
        self.config_file.write_text("".join(_toml_line(k, v) + "\n" for k, v in settings.items()))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BOLTLINK_")}
        self.env[TAG_VARIABLE] = uuid.uuid4().hex
        self.masters: set[int] = set()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "boltlink", "--data-dir", str(self.data_dir),
                   "--config", str(self.config_file), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.home,
                                env=self.env, stdin=subprocess.DEVNULL)
        self._note_master()
        return result

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        if result.returncode != 0:
            raise RuntimeError(f"boltlink {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result.stdout

    def prepare(self, *slugs: str) -> None:
        """An admin API key, and a link per slug, created with the CLI as an operator would."""
        self.key = self.ok("apikey", "create", "--name", "chaos", "--scope", "admin").strip()
        for slug in slugs:
            self.ok("links", "create", TARGET, "--slug", slug)

    def start(self, *args: str) -> None:
        self.ok("start-cluster", "--port", str(self.port), *args)

    def _note_master(self) -> None:
        from boltlink.cluster.runfiles import RunFiles

        with contextlib.suppress(OSError, ValueError):
            pid = RunFiles(self.data_dir / "run").running_pid()
            if pid:
                self.masters.add(pid)

    def processes(self, role: str | None = None) -> list[dict[str, Any]]:
        from boltlink.cluster import control
        from boltlink.cluster.runfiles import RunFiles

        rows = control.request(RunFiles(self.data_dir / "run"), "status", timeout=10)["processes"]
        return [row for row in rows if role is None or row["role"] == role]

    def pids(self, role: str) -> list[int]:
        return [row["pid"] for row in self.processes(role) if row["pid"]]

    def all_online(self, count: int | None = None, role: str = "api") -> list[dict[str, Any]] | None:
        rows = self.processes(role)
        if count is not None and len(rows) != count:
            return None
        return rows if rows and all(row["status"] == "online" and row["pid"] for row in rows) else None

    def respawned(self, role: str, old: int) -> int | None:
        rows = self.processes(role)
        if len(rows) == 1 and rows[0]["status"] == "online" and rows[0]["pid"] not in (None, old):
            return rows[0]["pid"]
        return None

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, headers={"Authorization": f"Bearer {self.key}"},
                             timeout=10, **kwargs)

    def totals(self, slug: str) -> dict[str, int]:
        response = self.api("GET", f"/api/v1/links/{slug}/stats")
        if response.status_code != 200:
            raise RuntimeError(f"GET /api/v1/links/{slug}/stats: {response.status_code} {response.text}")
        return response.json()["totals"]

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.data_dir / "logs" / f"{name}.log"
        with contextlib.suppress(OSError):
            return f"--- {path.name} ---\n" + "\n".join(path.read_text().splitlines()[-lines:])
        return f"(no {path.name})"

    def kill_everything(self) -> list[str]:
        """SIGKILL the master's process group and every process carrying this cluster's tag."""
        self._note_master()
        for pgid in self.masters:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        tag = self.env[TAG_VARIABLE]
        deadline = time.monotonic() + 10
        while True:
            found = []
            for process in psutil.process_iter():
                with contextlib.suppress(psutil.Error):
                    if process.environ().get(TAG_VARIABLE) == tag and process.status() != psutil.STATUS_ZOMBIE:
                        found.append(process)
            if not found or time.monotonic() > deadline:
                return [f"pid {p.pid}" for p in found]
            for process in found:
                with contextlib.suppress(psutil.Error):
                    process.kill()
            time.sleep(0.05)


def _toml_line(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"{key} = {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"{key} = {value}"
    return f"{key} = {json.dumps(str(value))}"  # a JSON string is a TOML basic string


def chaos_cluster_factory(work: Path) -> Callable[..., ChaosCluster]:
    """make(redis=None, database_url=None, **settings), as tests/pipeline's cluster_factory."""
    count = 0

    def make(redis: RedisServer | None = None, database_url: str | None = None, **settings: Any) -> ChaosCluster:
        nonlocal count
        home = work / f"cluster{count}"
        count += 1
        home.mkdir(mode=0o700)
        values = {**CLUSTER_SETTINGS, **settings}
        if redis is not None:
            values["redis_url"] = redis.url
        if database_url is not None:
            values["database_url"] = database_url
        return ChaosCluster(home, values)

    return make


# -- the lab: what a run started, and its cleanup -----------------------------------------------------------


class Lab:
    """Clusters, private servers, scratch databases and mounts of one run; close() removes them all."""

    def __init__(self, make_cluster: Callable[..., Any], work: Path, shared_database: str | None = None) -> None:
        self.make_cluster = make_cluster
        self.work = work
        self.shared_database = shared_database  # a database the caller owns (tests: the postgres_url fixture)
        self.clusters: list[Any] = []
        self.redis_servers: list[RedisServer] = []
        self.postgres_servers: list[PostgresServer] = []
        self.mounts: list[Tmpfs] = []
        self.scratch: list[str] = []

    def cluster(self, **kwargs: Any) -> Any:
        cluster = self.make_cluster(**kwargs)
        self.clusters.append(cluster)
        return cluster

    def redis(self) -> RedisServer:
        home = self._dir("redis")
        server = RedisServer(home)
        self.redis_servers.append(server)
        return server.start()

    def postgres(self) -> PostgresServer:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise FileNotFoundError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
        # Straight under /tmp: the postgres user must reach it (our work dirs are 0700), and a socket
        # path stays short.
        home = Path(tempfile.mkdtemp(prefix="boltlink-chaos-pg-"))
        server = PostgresServer(home, bin_dir)
        self.postgres_servers.append(server)
        return server.init().start()

    def tmpfs(self, path: Path, size: str) -> Tmpfs:
        disk = Tmpfs(path, size)
        self.mounts.append(disk)
        return disk.mount()

    def database(self) -> str:
        """The shared PostgreSQL's database to use: the caller's, or a scratch one dropped by close()."""
        if self.shared_database:
            return self.shared_database
        name = f"boltlink_chaos_{uuid.uuid4().hex[:10]}"
        asyncio.run(_admin(SHARED_POSTGRES, f'CREATE DATABASE "{name}"'))
        self.scratch.append(name)
        base, _, _ = SHARED_POSTGRES.rpartition("/")
        return f"{base}/{name}"

    def _dir(self, prefix: str) -> Path:
        path = self.work / f"{prefix}{len(list(self.work.glob(prefix + '*')))}"
        path.mkdir(parents=True)
        return path

    def close(self) -> list[str]:
        """Kill and remove everything, clusters first (they hold files on the mounts); what survived."""
        survivors = [s for cluster in self.clusters for s in cluster.kill_everything()]
        for server in self.redis_servers:
            server.kill()
        for pg in self.postgres_servers:
            pg.kill()
            shutil.rmtree(pg.home, ignore_errors=True)
        for disk in self.mounts:
            disk.unmount()
        for name in self.scratch:
            with contextlib.suppress(Exception):
                asyncio.run(_admin(SHARED_POSTGRES, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        return survivors

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
