#!/usr/bin/env python3
"""Redirect throughput of boltlink against plain ASGI baselines, in one bounded run (issue #8).

    python scripts/bench.py [--rounds 3] [--duration 10] [--connections 64] [--only a,b,c,d,e,a1]
                            [--pyz dist/boltlink.pyz] [--json results.json]

Contenders, each serving the same 10,000 slugs (benchmarks/slugs.py) on a free 127.0.0.1 port:

    a   boltlink start-cluster -i 2, embedded (SQLite, spool files): every redirect recorded as a click
    b   the same, distributed: a scratch PostgreSQL database and Redis db 9 (flushed before and after)
    c   the baseline: benchmarks/asgi_dict.py, a raw ASGI dict lookup, under hypercorn -w 2 -k uvloop
    d   benchmarks/quart_app.py, a plain Quart redirect app, under hypercorn -w 2 -k uvloop
    e   the same Quart app under uvicorn --workers 2 --loop uvloop --http httptools
    a1  as a, with one API worker (start-cluster -i 1)

Rounds alternate the contenders (a, b, c, d, e, a1, then again), so a
neighbour's burst of load on a shared machine spreads over all of them. Each
contender is started fresh every round, warmed up for --warmup seconds, then
loaded by wrk (-t2, --connections, --duration) with benchmarks/random_slug.lua
picking a random slug per request; its done() hook prints the figures as JSON.
errors = responses other than 2xx/3xx plus socket errors (connect, read,
write, timeout). The table shows the median over the rounds.

For boltlink it also reads, over the control socket: each API worker's
request count before and after (the balance between workers), the RSS of the
master and of the API workers every second under load (RSS counts pages the
forked workers share in each), the wall time of start-cluster (it returns when
every worker is ready), and, through the store's statistics, that every
redirect wrk saw (warm-up included) became a recorded click. For every
contender it adds the CPU each of its processes, and wrk, used during the
measured run: when they add up to well under the machine's cores, something
else on it took the rest, and the load average printed beside says how much.

A missed goal is a finding, not a failure: the exit code is 0 unless the run
itself broke (a contender would not start, wrk failed, the run passed
--max-seconds). wrk is installed from Debian's packages when missing and
running as root. Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import bench_support as support
import psutil

from benchmarks.slugs import SLUG_COUNT, links, slug
from boltlink.config import Config

ROOT = support.ROOT
LUA_SCRIPT = ROOT / "benchmarks" / "random_slug.lua"
REDIS_URL = "redis://127.0.0.1:6379/9"  # a database of its own: the tests use 0
USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/124.0.0.0 Safari/537.36")  # a human visitor: a click counted as such
WRK_THREADS = 2
START_TIMEOUT = 60.0
CLICKS_TIMEOUT = 60.0  # for the aggregator to record the last redirect's click
ORDER = ("a", "b", "c", "d", "e", "a1")
LINK_WRITERS = 8


@dataclass(frozen=True)
class Contender:
    key: str
    label: str
    instances: int = 0  # boltlink API workers; 0 for a baseline
    distributed: bool = False
    command: tuple[str, ...] = ()  # a baseline's server command, {port} filled in

    @property
    def is_boltlink(self) -> bool:
        return self.instances > 0


CONTENDERS = {c.key: c for c in (
    Contender("a", "boltlink -i 2, embedded", instances=2),
    Contender("b", "boltlink -i 2, distributed", instances=2, distributed=True),
    Contender("c", "raw ASGI dict, hypercorn", command=(
        "-m", "hypercorn", "-w", "2", "-k", "uvloop", "-b", "127.0.0.1:{port}", "benchmarks.asgi_dict:app")),
    Contender("d", "Quart app, hypercorn", command=(
        "-m", "hypercorn", "-w", "2", "-k", "uvloop", "-b", "127.0.0.1:{port}", "benchmarks.quart_app:app")),
    # Without its access log, as hypercorn and boltlink run by default: logging costs throughput.
    Contender("e", "Quart app, uvicorn", command=(
        "-m", "uvicorn", "--workers", "2", "--loop", "uvloop", "--http", "httptools", "--host", "127.0.0.1",
        "--port", "{port}", "--no-access-log", "--log-level", "warning", "benchmarks.quart_app:app")),
    Contender("a1", "boltlink -i 1, embedded", instances=1),
)}


@dataclass
class Run:
    """One contender, one round."""

    key: str
    round: int
    load_before: tuple[float, float, float]
    wrk: dict[str, Any]
    warmup_redirects: int = 0
    startup_seconds: float | None = None
    worker_requests: dict[str, int] = field(default_factory=dict)  # requests answered during the measured run
    master_rss_max: int | None = None
    api_rss_max: int | None = None
    clicks_expected: int | None = None  # redirects wrk saw, warm-up included
    clicks_recorded: int | None = None
    clicks_slack: int = 0  # requests cut off when wrk stopped may still have been redirected and recorded
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core during the measured run, per process

    @property
    def rps(self) -> float:
        return self.wrk["requests"] / (self.wrk["duration_us"] / 1e6)

    @property
    def errors(self) -> int:
        return sum(self.wrk["errors"].values())

    @property
    def balance(self) -> float | None:
        """Busiest over idlest API worker, by requests answered during the run."""
        if len(self.worker_requests) < 2:
            return None
        counts = self.worker_requests.values()
        return max(counts) / min(counts) if min(counts) else float("inf")


# -- processes: everything started is stopped, however the run ends ---------------------------------------


class ProcessGroups:
    """Process groups this run started; kill_all() is the last resort that leaves nothing behind."""

    def __init__(self) -> None:
        self.groups: set[int] = set()

    def add(self, pgid: int) -> None:
        self.groups.add(pgid)

    def kill(self, pgid: int, grace: float = 10.0, leader: subprocess.Popen[Any] | None = None) -> None:
        """SIGTERM the group; SIGKILL whatever is left of it once it is over or grace seconds have passed.

        leader: our own child heading the group, reaped here (a zombie would keep the group "alive").
        """
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if leader is not None:
                    if leader.poll() is not None:
                        break
                else:
                    os.killpg(pgid, 0)  # raises ProcessLookupError once the group is empty
                time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self.groups.discard(pgid)

    def kill_all(self) -> None:
        for pgid in list(self.groups):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.groups.discard(pgid)


STARTED = ProcessGroups()


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without BOLTLINK_* settings (they would change what is measured), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOLTLINK_")}
    env["BENCH_SLUG_COUNT"] = str(SLUG_COUNT)
    env.update(extra)
    return env


class Cluster:
    """A boltlink cluster started with start-cluster (detached) for one round."""

    def __init__(self, command: list[str], data_dir: Path, env: dict[str, str], instances: int) -> None:
        self.command = [*command, "--data-dir", str(data_dir)]
        self.config = Config(data_dir=str(data_dir))
        self.env = env
        self.instances = instances
        self.master_pid: int | None = None
        self.url = ""

    def start(self) -> float:
        """start-cluster; the seconds until it returned, i.e. until every worker was ready."""
        port = support.free_port()
        started = time.monotonic()
        proc = subprocess.run([*self.command, "start-cluster", "-i", str(self.instances), "--port", str(port)],
                              cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=START_TIMEOUT)
        elapsed = time.monotonic() - started
        pid = self._running_pid()
        if pid is not None:
            self.master_pid = pid
            STARTED.add(pid)  # a detached master leads its own process group; its workers are in it
        if proc.returncode != 0:
            raise RuntimeError(f"start-cluster failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        self.url = f"http://127.0.0.1:{port}/"
        return elapsed

    def _running_pid(self) -> int | None:
        from boltlink.cluster.runfiles import RunFiles

        return RunFiles(self.config.run_path).running_pid()

    def status(self) -> dict[str, Any]:
        from boltlink.cluster import control
        from boltlink.cluster.runfiles import RunFiles

        return control.request(RunFiles(self.config.run_path), "status", timeout=5)

    def processes(self) -> dict[str, psutil.Process]:
        rows = self.status()["processes"]
        return {"master": psutil.Process(self.master_pid), **{p["name"]: psutil.Process(p["pid"]) for p in rows}}

    def api_requests(self) -> dict[str, int]:
        return {p["name"]: p["requests"] for p in self.status()["processes"] if p["role"] == "api"}

    def settled_api_requests(self, timeout: float = 6.0) -> dict[str, int]:
        """Requests per API worker once the last ones are reported (workers report about once a second)."""
        last = self.api_requests()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(1.1)
            now = self.api_requests()
            if now == last:
                break
            last = now
        return last

    def stop(self) -> None:
        # start() may have been interrupted after the master started but before it learnt the pid.
        pid = self.master_pid or self._running_pid()
        with contextlib.suppress(subprocess.TimeoutExpired):  # the group is killed below
            subprocess.run([*self.command, "stop"], cwd=ROOT, env=self.env, capture_output=True, timeout=60)
        if pid is not None:
            STARTED.kill(pid, grace=5)


class Baseline:
    """One of benchmarks/ under hypercorn or uvicorn, in a process group of its own."""

    def __init__(self, contender: Contender, env: dict[str, str], log: Path) -> None:
        self.contender = contender
        self.env = env
        self.log = log  # the server's output, shown when it does not start
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> float:
        port = support.free_port()
        args = [part.format(port=port) for part in self.contender.command]
        started = time.monotonic()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        STARTED.add(self.proc.pid)
        self.url = f"http://127.0.0.1:{port}/"
        deadline = started + START_TIMEOUT
        while not _redirects(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                output = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.contender.label} did not start:\n{output}")
            time.sleep(0.1)
        return time.monotonic() - started

    def processes(self) -> dict[str, psutil.Process]:
        assert self.proc is not None
        parent = psutil.Process(self.proc.pid)
        children = parent.children(recursive=True)
        return {"parent": parent, **{f"child-{i}": child for i, child in enumerate(children)}}

    def stop(self) -> None:
        if self.proc is not None:
            STARTED.kill(self.proc.pid, leader=self.proc)
            self.proc.wait(timeout=10)


def _redirects(port: int) -> bool:
    """Does the server answer a known slug with a redirect yet?"""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", f"/{slug(0)}")
        return 300 <= conn.getresponse().status < 400
    except OSError:
        return False
    finally:
        conn.close()


# -- load ---------------------------------------------------------------------------------------------------


def run_wrk(url: str, seconds: int, connections: int, env: dict[str, str] | None = None,
            sample: Any = None) -> dict[str, Any]:
    """wrk with random_slug.lua; its done() JSON. sample(), if given, is called about once a second meanwhile."""
    threads = min(WRK_THREADS, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s",
               "-H", f"User-Agent: {USER_AGENT}", "-s", str(LUA_SCRIPT), url]
    wrk_env = {**os.environ, "BENCH_SLUG_COUNT": str(SLUG_COUNT), "BENCH_THREADS": str(threads), **(env or {})}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=wrk_env,
                            start_new_session=True)
    STARTED.add(proc.pid)
    deadline = time.monotonic() + seconds + 30
    try:
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"wrk did not finish within {seconds + 30} s")
            if sample is not None:
                sample()
            time.sleep(1.0 if sample is not None else 0.1)
        stdout, stderr = proc.communicate()
    finally:
        STARTED.kill(proc.pid, grace=1, leader=proc)
    for line in stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line.removeprefix("BENCH_JSON "))
    raise RuntimeError(f"wrk printed no result (exit {proc.returncode}):\n{stdout}{stderr}")


def run_measured(processes: dict[str, psutil.Process], url: str, seconds: int, connections: int,
                 sample: Any = None) -> tuple[dict[str, Any], dict[str, float]]:
    """run_wrk, and the CPU each server process and wrk itself used meanwhile (% of one core)."""
    before = _cpu_seconds(processes)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child reaped meanwhile
    started = time.monotonic()
    result = run_wrk(url, seconds, connections, sample=sample)
    elapsed = time.monotonic() - started
    after = _cpu_seconds(processes)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {name: 100 * (after[name] - before[name]) / elapsed for name in after if name in before}
    cpu["wrk"] = 100 * (children.ru_utime + children.ru_stime - children_before.ru_utime
                        - children_before.ru_stime) / elapsed
    return result, {name: round(value, 1) for name, value in cpu.items()}


def _cpu_seconds(processes: dict[str, psutil.Process]) -> dict[str, float]:
    seconds = {}
    for name, proc in processes.items():
        with contextlib.suppress(psutil.Error):  # a process that is gone is left out
            times = proc.cpu_times()
            seconds[name] = times.user + times.system
    return seconds


def redirects_seen(result: dict[str, Any]) -> int:
    """Every slug exists, so each complete response that was not a status error is a redirect."""
    return result["requests"] - result["errors"]["status"]


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: apt-get install -y wrk", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]
        if subprocess.run(install, env=env).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
            subprocess.run(install, env=env, check=True)
        return
    raise SystemExit("wrk is missing: install it with `sudo apt-get install wrk` (Debian, Ubuntu), then run again")


def check_python_servers(keys: list[str]) -> None:
    needed = {"hypercorn", "uvloop"} if {"c", "d"} & set(keys) else set()
    if "e" in keys:
        needed |= {"uvicorn", "httptools", "uvloop"}
    missing = sorted(name for name in needed if importlib.util.find_spec(name) is None)
    if missing:
        raise SystemExit(f"missing for the baselines: {', '.join(missing)}. Install them with "
                         f"`pip install -e '.[bench]'` (or `pip install {' '.join(missing)}`), "
                         "or leave those contenders out with --only")


# -- boltlink's data: links, clicks ------------------------------------------------------------------------


async def create_links(config: Config) -> None:
    """The benchmark's links, straight through the store API (the CLI, a process per link, takes minutes)."""
    from boltlink.store import create_store
    from boltlink.store.base import NewLink

    store = create_store(config)
    await store.open()
    pending = iter(links().items())

    async def writer() -> None:
        for name, url in pending:  # one shared iterator: each link is taken by exactly one writer
            await store.create_link(NewLink(slug=name, url=url))

    try:
        # PostgreSQL answers each insert over a round trip: several at once fill its connection pool.
        await asyncio.gather(*(writer() for _ in range(LINK_WRITERS)))
    finally:
        await store.close()


async def recorded_clicks(config: Config) -> int:
    """Clicks across every link as the statistics API sees them."""
    from boltlink.store import create_store

    store = create_store(config)
    await store.open(migrate=False)
    try:
        stats = await store.global_stats(datetime(2000, 1, 1, tzinfo=timezone.utc),
                                         datetime(2100, 1, 1, tzinfo=timezone.utc), top=1)
        return stats.total
    finally:
        await store.close()


async def wait_for_clicks(config: Config, expected: int, slack: int) -> int:
    """Poll until expected clicks are recorded and the count holds still (late requests land too)."""
    deadline = time.monotonic() + CLICKS_TIMEOUT
    last, steady_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = await recorded_clicks(config)
        if count != last:
            last, steady_since = count, time.monotonic()
        elif count >= expected and time.monotonic() - steady_since >= 1.0:
            return count
        if count > expected + slack:
            return count
        await asyncio.sleep(0.25)
    return last


@contextlib.contextmanager
def fresh_redis(url: str) -> Iterator[str]:
    """Redis database `url` emptied before and after: the distributed cluster's stream starts empty."""
    import redis

    support.check_loopback(url)
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    try:
        yield url
    finally:
        with redis.Redis.from_url(url) as client:
            client.flushdb()


# -- one run --------------------------------------------------------------------------------------------------


@dataclass
class Setup:
    args: argparse.Namespace
    work: Path
    boltlink: list[str]
    data_dirs: dict[bool, Path]  # distributed? -> data dir
    envs: dict[bool, dict[str, str]]
    stores: dict[bool, Config]


async def measure(setup: Setup, contender: Contender, round_number: int) -> Run:
    args = setup.args
    load_before = os.getloadavg()
    if contender.is_boltlink:
        server: Cluster | Baseline = Cluster(setup.boltlink, setup.data_dirs[contender.distributed],
                                             setup.envs[contender.distributed], contender.instances)
        clicks_before = await recorded_clicks(setup.stores[contender.distributed])
    else:
        server = Baseline(contender, clean_env(), setup.work / f"{contender.key}.log")
    try:
        startup = server.start()
        warmup = run_wrk(server.url, args.warmup, args.connections) if args.warmup else None
        if isinstance(server, Cluster):
            return await _measure_cluster(setup, contender, round_number, load_before, server, startup, warmup,
                                          clicks_before)
        result, cpu = run_measured(server.processes(), server.url, args.duration, args.connections)
        return Run(contender.key, round_number, load_before, result, cpu=cpu)
    finally:
        server.stop()


async def _measure_cluster(setup: Setup, contender: Contender, round_number: int,
                           load_before: tuple[float, float, float], cluster: Cluster, startup: float,
                           warmup: dict[str, Any] | None, clicks_before: int) -> Run:
    args = setup.args
    before = cluster.settled_api_requests()
    rss = {"master": 0, "api": 0}
    master = psutil.Process(cluster.master_pid)

    def sample() -> None:
        rss["master"] = max(rss["master"], master.memory_info().rss)
        rows = cluster.status()["processes"]
        rss["api"] = max([rss["api"], *(p["memory"] for p in rows if p["role"] == "api")])

    result, cpu = run_measured(cluster.processes(), cluster.url, args.duration, args.connections, sample=sample)
    after = cluster.settled_api_requests()
    run = Run(contender.key, round_number, load_before, result, startup_seconds=startup,
              worker_requests={name: after[name] - before.get(name, 0) for name in after},
              master_rss_max=rss["master"], api_rss_max=rss["api"], cpu=cpu)
    run.warmup_redirects = redirects_seen(warmup) if warmup else 0
    run.clicks_expected = run.warmup_redirects + redirects_seen(result)
    # Requests in flight when wrk stopped, or that it gave up on, may have been answered (and recorded) anyway.
    run.clicks_slack = (2 if warmup else 1) * args.connections + sum(
        r["errors"][k] for r in (warmup, result) if r for k in ("read", "write", "timeout"))
    total = await wait_for_clicks(setup.stores[contender.distributed], clicks_before + run.clicks_expected,
                                  run.clicks_slack)
    run.clicks_recorded = total - clicks_before
    return run


# -- the report ---------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    memory = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        memory = next((int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemTotal")), 0)
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("[")[0].strip()
    return {"cpu": model, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
            "memory_gb": round(memory / 2**30, 1), "python": platform.python_version(),
            "kernel": platform.release(), "wrk": wrk}


def summarize(runs: list[Run]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for key in ORDER:
        mine = [r for r in runs if r.key == key]
        if not mine:
            continue
        summary[key] = {
            "label": CONTENDERS[key].label,
            "rps": statistics.median(r.rps for r in mine),
            "rps_rounds": [round(r.rps) for r in mine],
            "p50_ms": statistics.median(r.wrk["p50_us"] for r in mine) / 1000,
            "p99_ms": statistics.median(r.wrk["p99_us"] for r in mine) / 1000,
            "errors": sum(r.errors for r in mine),
        }
    return summary


def ratio(summary: dict[str, dict[str, Any]], top: str, bottom: str) -> float | None:
    if top not in summary or bottom not in summary or not summary[bottom]["rps"]:
        return None
    return summary[top]["rps"] / summary[bottom]["rps"]


def print_table(summary: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\nwrk -t{min(WRK_THREADS, args.connections)} -c{args.connections} -d{args.duration}s, "
          f"{SLUG_COUNT:,} slugs, {args.rounds} round(s); medians over the rounds, errors summed")
    header = f"{'contender':<34} {'req/s':>8} {'p50':>9} {'p99':>9} {'errors':>7} {'vs (c)':>7}  req/s per round"
    print(header)
    print("-" * len(header))
    for key, row in summary.items():
        versus = ratio(summary, key, "c")
        print(f"{'(' + key + ') ' + row['label']:<34} {row['rps']:>8,.0f} {row['p50_ms']:>6.1f} ms "
              f"{row['p99_ms']:>6.1f} ms {row['errors']:>7,} {'-' if versus is None else f'{versus:.2f}':>7}  "
              + " ".join(f"{x:,}" for x in row["rps_rounds"]))


def goals(summary: dict[str, dict[str, Any]], runs: list[Run], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The issue's goals: (what, met or None when not measured in this run, the figure)."""
    out: list[dict[str, Any]] = []

    def add(what: str, met: bool | None, detail: str) -> None:
        out.append({"goal": what, "met": met, "detail": detail})

    for top, bottom, target in (("a", "c", 1.0), ("a", "d", 2.0), ("a", "e", 1.1), ("b", "a", 0.8),
                                ("a", "a1", 1.8)):
        value = ratio(summary, top, bottom)
        add(f"({top})/({bottom}) >= {target}", None if value is None else value >= target,
            "not measured" if value is None else f"{value:.2f}")
    a_runs = [r for r in runs if r.key == "a"]
    balances = [r.balance for r in a_runs if r.balance is not None]
    if balances:
        worst = max(balances)
        shares = " / ".join(_shares(r) for r in a_runs)
        add("busiest/idlest API worker <= 1.2 for (a)", worst <= 1.2, f"{worst:.2f} worst round; shares {shares}")
    else:
        add("busiest/idlest API worker <= 1.2 for (a)", None, "not measured")
    if "a" in summary:
        p99 = summary["a"]["p99_ms"]
        add(f"p99 of (a) <= 15 ms at {args.connections} connections", p99 <= 15, f"{p99:.1f} ms")
    boltlink_runs = [r for r in runs if CONTENDERS[r.key].is_boltlink]
    if boltlink_runs:
        api = max(r.api_rss_max or 0 for r in boltlink_runs)
        master = max(r.master_rss_max or 0 for r in boltlink_runs)
        add("API worker RSS <= 80 MB under load", api <= 80e6, f"{api / 1e6:.1f} MB max (RSS counts shared pages)")
        add("master RSS <= 40 MB under load", master <= 40e6, f"{master / 1e6:.1f} MB max")
    starts = [r.startup_seconds for r in runs if r.key in ("a", "b") and r.startup_seconds is not None]
    if starts:
        add("start-cluster -i 2 all ready within 2 s", statistics.median(starts) <= 2.0,
            f"median {statistics.median(starts):.2f} s, max {max(starts):.2f} s over {len(starts)} starts")
    if args.pyz:
        size = Path(args.pyz).stat().st_size
        add("pyz under 15 MB", size < 15e6, f"{size / 1e6:.1f} MB")
    for key in ("a", "b", "a1"):
        mine = [r for r in runs if r.key == key and r.clicks_expected is not None]
        if mine:
            expected = sum(r.clicks_expected or 0 for r in mine)
            recorded = sum(r.clicks_recorded or 0 for r in mine)
            ok = all((r.clicks_expected or 0) <= (r.clicks_recorded or 0) <= (r.clicks_expected or 0) + r.clicks_slack
                     for r in mine)
            extra = recorded - expected
            add(f"every redirect of ({key}) recorded as a click", ok,
                f"clicks recorded: {recorded:,} of {expected:,}"
                + (f" (+{extra} answered after wrk stopped counting)" if extra > 0 else ""))
    return out


def _shares(run: Run) -> str:
    total = sum(run.worker_requests.values()) or 1
    return ":".join(f"{100 * n / total:.0f}%" for _, n in sorted(run.worker_requests.items()))


def print_cpu(runs: list[Run]) -> None:
    """Where the two cores went: a contender held back by wrk or by its own side jobs shows here."""
    print("\nCPU during the measured runs, % of one core (median over the rounds):")
    for key in ORDER:
        mine = [r.cpu for r in runs if r.key == key and r.cpu]
        if not mine:
            continue
        names = [name for name in mine[0] if name != "wrk"]
        median = {name: statistics.median(cpu.get(name, 0.0) for cpu in mine) for name in [*names, "wrk"]}
        server = sum(median[name] for name in names)
        print(f"  ({key})".ljust(7) + f"server {server:4.0f}  wrk {median['wrk']:4.0f}   "
              + "  ".join(f"{name} {median[name]:.0f}" for name in names))


def print_goals(results: list[dict[str, Any]]) -> None:
    print("\ngoals (issue #8, this machine, ratios from this run):")
    for g in results:
        mark = {True: "PASS", False: "MISS", None: "n/a "}[g["met"]]
        print(f"  {mark}  {g['goal']:<46} {g['detail']}")


# -- main -----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=support.HelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="times each contender is measured (>= 1)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per measurement")
    parser.add_argument("--connections", type=int, default=64, help="wrk's -c")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before each measurement (0: none)")
    parser.add_argument("--only", default=",".join(ORDER), help="contenders to run, comma-separated")
    parser.add_argument("--pyz", help="run boltlink from this built pyz instead of the source tree")
    parser.add_argument("--json", dest="json_path", help="write every run's raw figures to this file")
    parser.add_argument("--postgres", default=support.POSTGRES_ADMIN_URL,
                        help="PostgreSQL to create (and drop) the scratch database in, for (b)")
    parser.add_argument("--redis", default=REDIS_URL, help="Redis database for (b): FLUSHED before and after")
    parser.add_argument("--max-seconds", type=float, help="give up after this long (default: from the settings)")
    args = parser.parse_args(argv)
    args.keys = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = [k for k in args.keys if k not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contender(s) {', '.join(unknown)}: choose from {', '.join(ORDER)}")
    if args.rounds < 1 or args.duration < 1 or args.connections < 1 or args.warmup < 0:
        parser.error("--rounds, --duration and --connections must be at least 1, --warmup at least 0")
    args.keys = [k for k in ORDER if k in args.keys]
    if args.max_seconds is None:
        args.max_seconds = 120 + args.rounds * len(args.keys) * (args.duration + args.warmup + 45)
    return args


def boltlink_command(pyz: str | None) -> list[str]:
    if pyz is None:
        return [sys.executable, "-m", "boltlink"]
    path = Path(pyz).absolute()
    if not path.is_file():
        raise SystemExit(f"no pyz at {path}")
    # Extract it now: start-up is measured with a warm extraction cache, as a deployed pyz runs.
    subprocess.run(["python3", str(path), "--help"], capture_output=True, check=True, timeout=300)
    return ["python3", str(path)]


async def bench(args: argparse.Namespace, work: Path) -> list[Run]:
    # Ctrl-C raises at once: asyncio.run's own handler would wait for the next await, and most waits
    # here (wrk, start-cluster) block the loop, which is fine as nothing else runs on it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    embedded = work / "embedded"
    setup = Setup(args, work, boltlink_command(args.pyz), {False: embedded}, {False: clean_env()},
                  {False: Config(data_dir=str(embedded))})
    async with contextlib.AsyncExitStack() as stack:
        if any(CONTENDERS[k].is_boltlink and not CONTENDERS[k].distributed for k in args.keys):
            started = time.monotonic()
            await create_links(setup.stores[False])
            print(f"{SLUG_COUNT:,} links written to SQLite in {time.monotonic() - started:.1f} s", flush=True)
        if "b" in args.keys:
            database = await stack.enter_async_context(support.scratch_postgres(args.postgres, tag="bench"))
            redis_url = stack.enter_context(fresh_redis(args.redis))
            distributed = work / "distributed"
            setup.data_dirs[True] = distributed
            setup.envs[True] = clean_env(BOLTLINK_DATABASE_URL=database, BOLTLINK_REDIS_URL=redis_url)
            setup.stores[True] = Config(data_dir=str(distributed), database_url=database)
            started = time.monotonic()
            await create_links(setup.stores[True])
            print(f"{SLUG_COUNT:,} links written to PostgreSQL in {time.monotonic() - started:.1f} s", flush=True)
        runs: list[Run] = []
        for round_number in range(1, args.rounds + 1):
            for key in args.keys:
                contender = CONTENDERS[key]
                run = await measure(setup, contender, round_number)
                runs.append(run)
                print(f"round {round_number} ({key}) {contender.label:<28} {run.rps:>8,.0f} req/s  "
                      f"p99 {run.wrk['p99_us'] / 1000:6.1f} ms  errors {run.errors:<5} "
                      f"load {run.load_before[0]:.2f}" + _cluster_note(run), flush=True)
        return runs


def _cluster_note(run: Run) -> str:
    if run.startup_seconds is None:
        return ""
    note = f"  start {run.startup_seconds:.2f} s"
    if len(run.worker_requests) > 1:
        note += f"  shares {_shares(run)}"
    if run.clicks_expected is not None:
        note += f"  clicks {run.clicks_recorded:,}/{run.clicks_expected:,}"
    return note


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_wrk()
    check_python_servers(args.keys)
    support.bound_run(args.max_seconds)
    info = machine()
    load = os.getloadavg()
    print(f"machine: {info['cpu']}, {info['usable_cores']} usable cores of {info['cores']}, "
          f"{info['memory_gb']} GB RAM, Python {info['python']}, {info['wrk']}", flush=True)
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="boltlink-bench-") as work:
            runs = asyncio.run(bench(args, Path(work)))
    except (RuntimeError, support.BenchTimeout) as exc:
        print(f"bench: broken run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        STARTED.kill_all()
    load_end = os.getloadavg()
    summary = summarize(runs)
    print_table(summary, args)
    print_cpu(runs)
    results = goals(summary, runs, args)
    print_goals(results)
    loads = [r.load_before[0] for r in runs]
    print(f"\nload average (1 min) before each measurement: min {min(loads):.2f}, max {max(loads):.2f} "
          f"on {info['usable_cores']} cores; at the end {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}"
          + ("  (the machine was shared: figures are noisy)" if max(loads) > 1.0 else ""))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({
            "machine": info, "settings": vars(args),
            "runs": [asdict(r) | {"rps": r.rps, "errors_total": r.errors} for r in runs],
            "summary": summary, "goals": results,
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
