#!/usr/bin/env python3
"""Click-to-stats lag under the heaviest redirect load: how long until a redirect shows in the stats API.

    python scripts/bench_click_lag.py [--duration 20] [--interval 0.1] [--loader wrk|loadgen]
                                      [--connections 64] [--instances 2] [--max-seconds 300]

Starts a real cluster from this checkout (`python -m boltlink start-cluster
-i 2`, embedded mode: spool files + SQLite, its own data directory in a temp
dir, a free port on 127.0.0.1), creates an API key, one link for the load and
one link per probe, then for --duration seconds:

  * load: redirects of the load link as fast as the cluster answers them
    (wrk when /usr/bin/wrk exists, else scripts/loadgen.py), each one a click;
  * probes: every --interval seconds one redirect of the next probe link
    (its own link, so its click is unmistakable). From the moment that
    redirect is sent, GET /api/v1/links/{slug}/stats (granularity=hour) is
    polled every --poll seconds until its total is 1; the lag is the time
    from sending the redirect to receiving the stats answer that shows it (an
    upper bound: the click may have shown up to one poll earlier). At most
    --max-polling probes are polled at once (the oldest), so the polling
    itself stays a small, bounded extra load.

Prints p50/p99/max of the lag and the redirect rate achieved, and GOAL MET /
GOAL MISSED for p99 < 2 s. Checks (exit 1 when one fails): every probe click
shows up, exactly once; after the load the load link's total is at least the
redirects the load generator saw answered (none lost) and at most that plus
the connections' requests cut off at the end. The cluster is always stopped
(and killed if it will not stop) and the temp dir removed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bench_support as support
import httpx

GOAL_P99_SECONDS = 2.0
WRK = "/usr/bin/wrk"
BROWSER = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/124.0.0.0 Safari/537.36")
SETTLE_SECONDS = 60.0  # after the load: how long the aggregator may take to catch up before a probe counts as lost


# -- the cluster ---------------------------------------------------------------------------------------------


class Cluster:
    """`python -m boltlink` against a private data dir and port; stop() always leaves nothing running."""

    def __init__(self, work: Path, port: int, instances: int) -> None:
        self.data_dir = work / "data"
        self.config_file = work / "boltlink.toml"
        self.port = port
        self.instances = instances
        self.url = f"http://{support.LOOPBACK}:{port}"
        # Settings from the environment must not leak in (BOLTLINK_DATABASE_URL would leave embedded mode).
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BOLTLINK_")}
        self.env["PYTHONPATH"] = str(support.ROOT)
        # One link per probe (201 by default), created faster than the write rate limit lets a client.
        self.config_file.write_text('log_level = "warning"\nrate_limit_writes = 0\n')
        self.master: int | None = None

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "boltlink", "--data-dir", str(self.data_dir), "--config", str(self.config_file),
             *args], capture_output=True, text=True, timeout=timeout, env=self.env, cwd=support.ROOT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def create_key(self) -> str:
        result = self.run("apikey", "create", "--name", "bench-lag", "--scope", "links:read", "--scope",
                          "links:write", "--scope", "stats:read")  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"apikey create failed: {result.stderr}")
        return result.stdout.strip().splitlines()[-1]

    def start(self) -> None:
        started = time.monotonic()
        result = self.run("start-cluster", "-i", str(self.instances), "--port", str(self.port), timeout=90)
        self.master = self._master_pid()
        if result.returncode != 0:
            raise RuntimeError(f"start-cluster failed ({result.returncode}): {result.stderr}")
        print(f"cluster: started with {self.instances} API workers (+ aggregator, analytics) at {self.url} "
              f"in {time.monotonic() - started:.1f} s, data dir {self.data_dir}", flush=True)

    def _master_pid(self) -> int | None:
        from boltlink.cluster.runfiles import RunFiles

        with contextlib.suppress(Exception):
            return RunFiles(self.data_dir / "run").running_pid()
        return None

    def status(self) -> dict[str, Any] | None:
        import json

        result = self.run("status", "--json", timeout=20)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def stop(self) -> None:
        """stop; if that fails or hangs, SIGKILL the master's process group (its workers share it)."""
        master = self._master_pid() or self.master
        try:
            result = self.run("stop", timeout=60)
            if result.returncode != 0:
                print(f"cluster: stop said ({result.returncode}): {result.stderr.strip()}", file=sys.stderr)
        except subprocess.TimeoutExpired:
            print("cluster: stop timed out", file=sys.stderr)
        if master:
            deadline = time.monotonic() + 10
            while _alive(master) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(master):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(master, signal.SIGKILL)
                print(f"cluster: killed process group {master}", file=sys.stderr)
        print("cluster: stopped", flush=True)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# -- the load ------------------------------------------------------------------------------------------------


@dataclass
class LoadOutcome:
    tool: str
    seconds: float = 0.0
    answered: int = 0  # complete 2xx/3xx responses
    other: int = 0  # errors, non-3xx
    detail: str = ""

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0


class Load:
    """wrk (or loadgen in a thread) against the load link for a bounded time."""

    def __init__(self, tool: str, url: str, connections: int, threads: int, duration: float) -> None:
        self.tool, self.url, self.connections, self.threads, self.duration = tool, url, connections, threads, duration
        self.proc: subprocess.Popen[str] | None = None
        self.background: Any = None
        self.outcome = LoadOutcome(tool)

    def start(self) -> None:
        if self.tool == "wrk":
            self.proc = subprocess.Popen(
                [WRK, "-t", str(self.threads), "-c", str(self.connections), "-d", f"{self.duration:.0f}s",
                 "--timeout", "5s", "-H", f"User-Agent: {BROWSER}", "-H", "Referer: https://news.ycombinator.com/",
                 self.url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        else:
            from loadgen import BackgroundLoad

            self.background = BackgroundLoad(self.url, connections=self.connections, duration=self.duration)
            self.background.start()

    def finish(self) -> LoadOutcome:
        if self.proc is not None:
            try:
                output, _ = self.proc.communicate(timeout=self.duration + 30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                output, _ = self.proc.communicate()
            self.outcome = parse_wrk(output)
        elif self.background is not None:
            result = self.background.stop()
            self.outcome = LoadOutcome("loadgen", result.elapsed, result.ok, result.failed_total,
                                       result.summary())
        return self.outcome

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.background is not None:
            with contextlib.suppress(Exception):
                self.background.stop()


def parse_wrk(output: str) -> LoadOutcome:
    outcome = LoadOutcome("wrk", detail=output.strip())
    done = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", output)
    if done:
        outcome.seconds = float(done.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[done.group(3)]
        total = int(done.group(1))
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
        outcome.other = (int(bad.group(1)) if bad else 0)
        outcome.answered = total - outcome.other
        if errors:
            outcome.other += sum(int(g) for g in errors.groups())
    return outcome


# -- the probes ----------------------------------------------------------------------------------------------


@dataclass
class Probe:
    slug: str
    sent: float = 0.0
    redirected: float | None = None  # the redirect's answer came (the click is durably queued)
    seen: float | None = None  # the stats answer that showed it came
    total: int | None = None
    polls: int = 0

    @property
    def lag(self) -> float:
        assert self.seen is not None
        return self.seen - self.sent


@dataclass
class Prober:
    client: httpx.AsyncClient
    headers: dict[str, str]
    interval: float
    poll: float
    max_polling: int
    probes: list[Probe]
    outstanding: list[Probe] = field(default_factory=list)
    polls: int = 0
    errors: list[str] = field(default_factory=list)

    async def send(self, probe: Probe) -> None:
        probe.sent = time.perf_counter()
        response = await self.client.get(f"/{probe.slug}", headers={"User-Agent": f"{BROWSER} lag-probe"})
        if response.status_code != 302:
            self.errors.append(f"probe redirect /{probe.slug}: HTTP {response.status_code}")
            return
        probe.redirected = time.perf_counter()
        self.outstanding.append(probe)

    async def check(self, probe: Probe) -> None:
        since = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        response = await self.client.get(f"/api/v1/links/{probe.slug}/stats",
                                         params={"granularity": "hour", "from": since}, headers=self.headers)
        self.polls += 1
        probe.polls += 1
        if response.status_code != 200:
            self.errors.append(f"stats of {probe.slug}: HTTP {response.status_code}")
            return
        total = response.json()["totals"]["total"]
        if total:
            probe.seen, probe.total = time.perf_counter(), total
            self.outstanding.remove(probe)

    async def run(self, duration: float, settle: float) -> None:
        """Send a probe every interval for duration; poll until all are seen or settle has passed."""
        started = time.perf_counter()
        sender = asyncio.get_running_loop().create_task(self._send_all(started, duration))
        deadline = started + duration + settle
        while time.perf_counter() < deadline and (not sender.done() or self.outstanding):
            tick = time.perf_counter()
            batch = self.outstanding[: self.max_polling]  # the oldest: they are next to show up
            if batch:
                await asyncio.gather(*(self.check(p) for p in batch), return_exceptions=False)
            await asyncio.sleep(max(0.0, self.poll - (time.perf_counter() - tick)))
        if not sender.done():
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _send_all(self, started: float, duration: float) -> None:
        for i, probe in enumerate(self.probes):
            due = started + i * self.interval
            if due - started >= duration:
                return
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                await self.send(probe)
            except httpx.HTTPError as exc:
                self.errors.append(f"probe redirect /{probe.slug}: {exc!r}")


# -- main ----------------------------------------------------------------------------------------------------


async def _status_later(cluster: Cluster, delay: float) -> dict[str, Any] | None:
    """`status --json` in the middle of the load: what each process was doing."""
    await asyncio.sleep(delay)
    return await asyncio.get_running_loop().run_in_executor(None, cluster.status)


async def create_links(client: httpx.AsyncClient, headers: dict[str, str], slugs: list[str]) -> None:
    for slug in slugs:
        response = await client.post("/api/v1/links", json={"url": f"https://example.com/{slug}", "slug": slug},
                                     headers=headers)
        if response.status_code != 201:
            raise RuntimeError(f"creating link {slug}: HTTP {response.status_code} {response.text[:200]}")


async def link_total(client: httpx.AsyncClient, headers: dict[str, str], slug: str) -> int:
    response = await client.get(f"/api/v1/links/{slug}/stats", params={"granularity": "day"}, headers=headers)
    response.raise_for_status()
    return response.json()["totals"]["total"]


async def measure(args: argparse.Namespace, cluster: Cluster, key: str) -> int:
    headers = {"X-API-Key": key}
    count = int(args.duration / args.interval) + 1
    probes = [Probe(f"probe{i}") for i in range(count)]
    limits = httpx.Limits(max_connections=args.max_polling + 4, max_keepalive_connections=args.max_polling + 4)
    async with httpx.AsyncClient(base_url=cluster.url, timeout=10.0, limits=limits) as client:
        started = time.perf_counter()
        await create_links(client, headers, ["load", *(p.slug for p in probes)])
        print(f"created {count + 1} links in {time.perf_counter() - started:.1f} s", flush=True)

        tool = args.loader if args.loader != "auto" else ("wrk" if os.access(WRK, os.X_OK) else "loadgen")
        load = Load(tool, f"{cluster.url}/load", args.connections, args.threads, args.duration + 1.0)
        prober = Prober(client, headers, args.interval, args.poll, args.max_polling, probes)
        print(f"load: {tool}, {args.connections} connections, {args.duration + 1:.0f} s on /load; "
              f"a probe every {args.interval * 1000:.0f} ms, polled every {args.poll * 1000:.0f} ms", flush=True)
        load.start()
        loop = asyncio.get_running_loop()
        snapshot = loop.create_task(_status_later(cluster, args.duration / 2))
        try:
            await asyncio.sleep(0.5)  # the load is up to speed before the first probe
            await prober.run(args.duration, SETTLE_SECONDS)
            outcome = await asyncio.get_running_loop().run_in_executor(None, load.finish)
        finally:
            load.kill()

        # The load link's clicks once the aggregator has caught up (two equal readings in a row).
        last, settle_deadline = -1, time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < settle_deadline:
            total = await link_total(client, headers, "load")
            if total == last and total >= outcome.answered:
                break
            last = total
            await asyncio.sleep(1.0)
        stats_total = await link_total(client, headers, "load")

    sent = [p for p in probes if p.sent]
    seen = [p for p in sent if p.seen is not None]
    lags = [p.lag for p in seen]
    redirect_ms = [(p.redirected - p.sent) * 1000 for p in sent if p.redirected]
    p50, p99, worst = (support.percentile(lags, q) for q in (0.5, 0.99, 1.0))
    print(f"load: {outcome.answered:,} redirects answered in {outcome.seconds:.1f} s = {outcome.rate:,.0f} "
          f"redirects/s ({outcome.other} errors or non-3xx)")
    print(f"probes: {len(sent)} sent, {len(seen)} seen, {prober.polls} stats polls "
          f"({prober.polls / max(args.duration, 1):.0f}/s); probe redirect p50 "
          f"{support.percentile(redirect_ms, 0.5):.1f} ms, p99 {support.percentile(redirect_ms, 0.99):.1f} ms")
    print(f"click-to-stats lag under load: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"max {worst * 1000:.0f} ms (n={len(lags)})")
    print(f"load link: stats total {stats_total:,}, load generator saw {outcome.answered:,} redirects answered")
    status = snapshot.result() if snapshot.done() and not snapshot.exception() else None
    for row in (status or {}).get("processes", []):
        figures = row.get("counters") or {}
        shown = {k: figures[k] for k in ("events_per_second", "batch_size", "lag", "backlog", "recorded")
                 if k in figures}
        rate = f", {row['requests_per_second']:,.0f} requests/s" if row.get("requests_per_second") else ""
        print(f"  mid-load status: {row.get('name')} ({row.get('role')}) cpu {row.get('cpu')}%{rate}"
              + (f", {shown}" if shown else ""))
    if args.verbose and outcome.detail:
        print(outcome.detail)

    problems = list(prober.errors[:10])
    if len(seen) != len(sent):
        problems.append(f"{len(sent) - len(seen)} probe click(s) never showed in the stats within "
                        f"{SETTLE_SECONDS:g} s after the load")
    if any(p.total != 1 for p in seen):
        problems.append("a probe link shows more than one click: " +
                        ", ".join(f"{p.slug}={p.total}" for p in seen if p.total != 1))
    if stats_total < outcome.answered:
        problems.append(f"lost clicks: the load link shows {stats_total:,} but {outcome.answered:,} redirects "
                        "were answered")
    elif stats_total > outcome.answered + args.connections:
        problems.append(f"the load link shows {stats_total:,} clicks, more than the {outcome.answered:,} "
                        f"answered + {args.connections} cut off at the end")
    for problem in problems:
        print(f"CHECK FAILED: {problem}")
    if not problems:
        print("CHECK OK: every probe click showed up exactly once; no load click lost")
    support.goal(f"click-to-stats lag p99 < {GOAL_P99_SECONDS:g} s under load", bool(lags) and p99 < GOAL_P99_SECONDS,
                 f"p99 {p99 * 1000:.0f} ms at {outcome.rate:,.0f} redirects/s")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=support.HelpFormatter,
        epilog="Goal: p99 < 2 s. Exit 1 when a check fails (a probe click never showed, a click was lost, "
               "the cluster did not start); a missed goal only prints GOAL MISSED.",
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load and probing (max 120)")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between probes")
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between stats polls of a probe")
    parser.add_argument("--max-polling", type=int, default=10, help="probes polled at once (the oldest)")
    parser.add_argument("--loader", choices=("auto", "wrk", "loadgen"), default="auto",
                        help="wrk if /usr/bin/wrk exists, else scripts/loadgen.py")
    parser.add_argument("--connections", type=int, default=64, help="load connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--instances", type=int, default=2, help="API workers (-i)")
    parser.add_argument("--verbose", action="store_true", help="print the load generator's own report")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="hard bound on the whole run")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 120:
        parser.error("--duration must be 1 to 120 s")
    if not 0.01 <= args.interval <= 10 or not 0.005 <= args.poll <= 5:
        parser.error("--interval must be 0.01 to 10 s, --poll 0.005 to 5 s")
    if not 1 <= args.connections <= 1024 or not 1 <= args.instances <= 8:
        parser.error("--connections must be 1 to 1024, --instances 1 to 8")
    if args.loader == "wrk" and not os.access(WRK, os.X_OK):
        parser.error(f"{WRK} is not installed")
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # loadgen
    support.bound_run(args.max_seconds)
    work = Path(tempfile.mkdtemp(prefix="boltlink-bench-lag-"))
    cluster = Cluster(work, support.free_port(), args.instances)
    try:
        key = cluster.create_key()
        cluster.start()
        return asyncio.run(measure(args, cluster, key))
    except (support.BenchTimeout, RuntimeError, httpx.HTTPError) as exc:
        print(f"FAILED: {exc!r}", file=sys.stderr)
        return 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)  # the clean-up below must not be cut short
        try:
            cluster.stop()
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
