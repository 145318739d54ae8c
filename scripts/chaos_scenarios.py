"""The scenarios of scripts/chaos.py, one function each: scenario(lab, duration) -> Outcome.

They only use the cluster methods tests/pipeline's PipelineCluster has too (prepare, start,
processes, pids, respawned, all_online, api, totals, log_tail, url, data_dir), so tests/chaos
runs them on the test harness's clusters. Every wait is a poll with a timeout; the sleeps
that remain are the chaos's own schedule (a kill every 2 s, an outage of a few seconds).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos_lab import TARGET, Lab, readiness
from chaos_servers import Tmpfs, wait_for
from loadgen import BackgroundLoad, LoadResult

from boltlink.events.model import decode_many

SLUG = "chaos"
CONNECTIONS = 8
CATCH_UP = 60.0  # seconds the aggregator has, after the load, to count every click
SETTLE = 2.0  # a count must stay put this long to be final
ANSWERS = 6  # /ready asked this many times (new connections) to hear from every worker
LOAD_BOUND = 600.0  # no load outlives its scenario, even one that stopped short of stopping it


@dataclass
class Outcome:
    """What one scenario did and found: the table line, and each check with its detail."""

    name: str
    sent: int = 0
    ok: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # loadgen's kinds; refusals by HTTP status
    expected: int = 0  # redirects answered 302: each must be one click
    recorded: int | None = None
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None
    seconds: float = 0.0

    def add_load(self, result: LoadResult) -> None:
        self.sent += result.sent
        self.ok += result.ok
        for kind, count in result.failed.items():
            if count and kind != "bad_status":
                self.failed[kind] = self.failed.get(kind, 0) + count
        for status, count in result.statuses.items():
            if status >= 400:
                self.failed[f"http {status}"] = self.failed.get(f"http {status}", 0) + count
        self.expected += result.statuses.get(302, 0)

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    def check(self, what: str, ok: bool, detail: object = "") -> bool:
        self.checks.append((what, bool(ok), str(detail)))
        return bool(ok)

    @property
    def passed(self) -> bool:
        return self.skipped is not None or (self.error is None and all(ok for _, ok, _ in self.checks))

    @property
    def verdict(self) -> str:
        return "SKIP" if self.skipped is not None else "PASS" if self.passed else "FAIL"

    def line(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.failed.items())) or "-"
        recorded = "-" if self.recorded is None else str(self.recorded)
        return (f"{self.name:<11} {self.sent:>8} {self.ok:>8} {self.failed_total:>7}  {kinds:<34} "
                f"{self.expected:>9} {recorded:>9}  {self.verdict}")

    def details(self) -> str:
        lines = [f"{'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail else "")
                 for what, ok, detail in self.checks]
        if self.skipped is not None:
            lines.append(f"SKIP {self.skipped}")
        if self.error is not None:
            lines.append(f"FAIL {self.error}")
        lines.append(f"{self.name}: {self.verdict} in {self.seconds:.0f} s")
        return "\n".join(lines)

    def failures(self) -> str:
        """The failed checks, for a test's assertion message."""
        return "\n".join([*(f"{what}: {detail}" for what, ok, detail in self.checks if not ok),
                          *([self.error] if self.error else [])])


def header() -> str:
    return (f"{'scenario':<11} {'sent':>8} {'ok':>8} {'failed':>7}  {'failed by kind':<34} "
            f"{'expected':>9} {'recorded':>9}  result")


# -- shared steps -------------------------------------------------------------------------------------------


def load(cluster: Any, pause: float = 0.005) -> BackgroundLoad:
    """Constant load on /SLUG until stopped (LOAD_BOUND at most)."""
    return BackgroundLoad(cluster.url + "/" + SLUG, connections=CONNECTIONS, duration=LOAD_BOUND, pause=pause,
                          timeout=5.0)


def more_ok(load_: BackgroundLoad, count: int, timeout: float = 20.0) -> bool:
    """Wait for `count` more successful redirects than now."""
    target = load_.result.ok + count
    return load_.wait_until(lambda r: r.ok >= target, timeout=timeout)


def settled_total(cluster: Any, low: int, high: int, timeout: float = CATCH_UP) -> int:
    """The link's click total once it is within [low, high] and has not moved for SETTLE s; at once if
    it passes high (a click counted twice never comes back down); the last seen at timeout."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while True:
        total = cluster.totals(SLUG)["total"]
        now = time.monotonic()
        if total > high:
            return total
        if total != last:
            last, since = total, now
        elif total >= low and now - since >= SETTLE:
            return total
        if now >= deadline:
            return total
        time.sleep(0.2)  # poll interval


def count_exactly(outcome: Outcome, cluster: Any) -> None:
    outcome.recorded = settled_total(cluster, outcome.expected, outcome.expected)
    outcome.check("every 302 is exactly one click", outcome.recorded == outcome.expected,
                  f"{outcome.recorded} recorded for {outcome.expected} redirects")


def every_worker(cluster: Any, predicate: Callable[[int, dict[str, Any]], bool], seen: list[Any]) -> bool:
    """ANSWERS answers of /ready (each on a new connection, so every worker gets asked) all satisfy predicate."""
    answers = [readiness(cluster.url) for _ in range(ANSWERS)]
    seen.extend((code, doc.get("status")) for code, doc in answers)
    return all(predicate(code, doc) for code, doc in answers)


def post_link(cluster: Any, prefix: str) -> Any:
    return cluster.api("POST", "/api/v1/links", json={"url": TARGET, "slug": f"{prefix}-{uuid.uuid4().hex[:8]}"})


def is_503_problem(response: Any, problem: str) -> bool:
    return (response.status_code == 503 and response.headers.get("content-type", "").startswith(
        "application/problem+json") and response.json().get("type", "").endswith(":" + problem))


def brief(result: LoadResult) -> str:
    failed = ", ".join(f"{k} {v}" for k, v in result.failed.items() if v) or "none failed"
    return f"sent {result.sent}, ok {result.ok}, {failed}"


def describe(response: Any) -> str:
    return f"{response.status_code} {response.headers.get('content-type', '')} {response.text[:200]}"


# -- a. API workers killed ----------------------------------------------------------------------------------


def api_kills(lab: Lab, duration: float, interval: float = 2.0) -> Outcome:
    outcome = Outcome("api-kills")
    cluster = lab.cluster()
    cluster.prepare(SLUG)
    cluster.start("-i", "2")
    kills = 0
    with load(cluster, pause=0.002) as running:
        outcome.check("the load runs", more_ok(running, 200), brief(running.result))
        end = time.monotonic() + duration
        next_kill = time.monotonic()
        while time.monotonic() < end:
            online = [row["pid"] for row in cluster.processes("api") if row["status"] == "online" and row["pid"]]
            if online:
                os.kill(random.choice(online), signal.SIGKILL)
                kills += 1
            next_kill += interval
            time.sleep(max(0.0, next_kill - time.monotonic()))  # the kill schedule, not a poll
        wait_for(lambda: cluster.all_online(2, role="api"), 30, what="two API workers online after the kills")
        outcome.check("redirects answer after the kills", more_ok(running, 200), brief(running.result))
    outcome.add_load(running.result)
    failed = running.result.failed
    cut = failed["reset"] + failed["no_response"] + failed["incomplete"]
    outcome.check(f"{kills} workers killed", kills >= duration / interval - 1)
    outcome.check("the port never refused a connection", failed["refused"] == 0, failed["refused"])
    outcome.check("no request failed but the ones in flight on a killed worker",
                  cut == outcome.failed_total and cut <= kills * CONNECTIONS,
                  f"{cut} cut off by {kills} kills ({CONNECTIONS} connections); by kind: {outcome.failed}")
    # A request cut off after its click was queued is counted although it got no answer: one per cut, at most.
    outcome.recorded = settled_total(cluster, outcome.expected, outcome.expected + cut)
    outcome.check("every 302 is one click (and a cut-off request at most one)",
                  outcome.expected <= outcome.recorded <= outcome.expected + cut,
                  f"{outcome.recorded} recorded for {outcome.expected} redirects and {cut} cut off")
    return outcome


# -- b. Redis restarted -------------------------------------------------------------------------------------


def redis_restart(lab: Lab, duration: float) -> Outcome:
    outcome = Outcome("redis")
    redis = lab.redis()
    cluster = lab.cluster(redis=redis, database_url=lab.database())
    cluster.prepare(SLUG)
    cluster.start("-i", "2")
    outage = min(max(3.0, duration / 6), 15.0)
    seen: list[Any] = []
    with load(cluster, pause=0.01) as running:
        outcome.check("the load runs", more_ok(running, 200), brief(running.result))
        redis.stop(save=True)  # SHUTDOWN SAVE: what the stream held comes back with it
        wait_for(lambda: every_worker(cluster, lambda c, d: (c, d["status"]) == (200, "degraded"), seen), 20,
                 what="/ready to say degraded")
        outage_end = time.monotonic() + outage
        outcome.check("redirects answer while Redis is down", more_ok(running, 100), brief(running.result))
        time.sleep(max(0.0, outage_end - time.monotonic()))  # the outage lasts its time
        spooled = sum(p.stat().st_size for p in (cluster.data_dir / "spool").glob("*.events"))
        outcome.check("the outage's clicks wait in the local spool", spooled > 0, f"{spooled} bytes")
        redis.start()
        wait_for(lambda: every_worker(cluster, lambda c, d: (c, d["status"]) == (200, "ready"), seen), 30,
                 what="/ready to say ready again")
        outcome.check("redirects answer after the restart", more_ok(running, 200), brief(running.result))
    outcome.add_load(running.result)
    outcome.check("no request failed", outcome.failed_total == 0, outcome.failed)
    outcome.check("/ready: 200 degraded during the outage, 200 ready after",
                  {code for code, _ in seen} == {200} and ("degraded" in {s for _, s in seen}), sorted(set(seen)))
    count_exactly(outcome, cluster)
    return outcome


# -- c. PostgreSQL restarted --------------------------------------------------------------------------------


def postgres_restart(lab: Lab, duration: float) -> Outcome:
    outcome = Outcome("postgres")
    postgres = lab.postgres()
    cluster = lab.cluster(redis=lab.redis(), database_url=postgres.url)
    cluster.prepare(SLUG)
    cluster.start("-i", "2")
    outage = min(max(3.0, duration / 6), 15.0)
    seen: list[Any] = []
    with load(cluster, pause=0.01) as running:
        outcome.check("the load runs", more_ok(running, 200), brief(running.result))
        before = post_link(cluster, "before")
        outcome.check("a link write before the outage", before.status_code == 201, describe(before))
        postgres.stop("fast")
        outage_end = time.monotonic() + outage
        down = wait_for(lambda: (r := post_link(cluster, "down")).status_code != 201 and r, 15,
                        what="a link write to fail")
        outcome.check("a link write while PostgreSQL is down is a 503 problem",
                      is_503_problem(down, "store-unavailable"), describe(down))
        outcome.check("cached links redirect while PostgreSQL is down", more_ok(running, 100),
                      brief(running.result))
        wait_for(lambda: every_worker(cluster, lambda c, d: (c, d["status"]) == (200, "degraded"), seen), 15,
                 what="/ready to say degraded")
        # A process that starts while the database is down must wait for it, not give up for good.
        aggregator = cluster.pids("aggregator")[0]
        os.kill(aggregator, signal.SIGKILL)
        time.sleep(max(0.0, outage_end - time.monotonic()))  # the outage lasts its time
        postgres.start()
        after = wait_for(lambda: (r := post_link(cluster, "after")).status_code == 201 and r, 30,
                         what="a link write to succeed again")
        outcome.check("link writes succeed again after the restart", after.status_code == 201, describe(after))
        try:
            wait_for(lambda: cluster.respawned("aggregator", aggregator), 30, what="a new aggregator")
            outcome.check("the aggregator killed during the outage is back", True)
        except TimeoutError as exc:
            outcome.check("the aggregator killed during the outage is back", False,
                          f"{exc}\n{cluster.log_tail('master', 10)}")
        wait_for(lambda: every_worker(cluster, lambda c, d: (c, d["status"]) == (200, "ready"), seen), 30,
                 what="/ready to say ready again")
        outcome.check("redirects answer after the restart", more_ok(running, 200), brief(running.result))
    outcome.add_load(running.result)
    outcome.check("no redirect failed", outcome.failed_total == 0, outcome.failed)
    outcome.check("/ready stays 200 (degraded) through the outage", {code for code, _ in seen} == {200},
                  sorted(set(seen)))
    count_exactly(outcome, cluster)
    return outcome


# -- d. the aggregator killed -------------------------------------------------------------------------------


def aggregator_kills(lab: Lab, duration: float, kills: int = 3) -> Outcome:
    outcome = Outcome("aggregator")
    cluster = lab.cluster()
    cluster.prepare(SLUG)
    cluster.start("-i", "2")
    with load(cluster, pause=0.005) as running:
        outcome.check("the load runs", more_ok(running, 200), brief(running.result))
        started = time.monotonic()
        spacing = duration / 2 / kills  # the kills spread over half the duration
        for number in range(kills):
            time.sleep(max(0.0, started + number * spacing - time.monotonic()))  # the kill schedule
            aggregator = cluster.pids("aggregator")[0]
            counted = cluster.totals(SLUG)["total"]
            wait_for(lambda counted=counted: cluster.totals(SLUG)["total"] > counted, 20, interval=0.05,
                     what=f"aggregator {aggregator} to count more than {counted}")  # killed mid-stream
            os.kill(aggregator, signal.SIGKILL)
            wait_for(lambda old=aggregator: cluster.respawned("aggregator", old), 20, what="a new aggregator")
            outcome.check(f"aggregator {aggregator} killed and respawned", True)
        outcome.check("redirects answer after the kills", more_ok(running, 500), brief(running.result))
    outcome.add_load(running.result)
    outcome.check("no request failed", outcome.failed_total == 0, outcome.failed)
    count_exactly(outcome, cluster)
    return outcome


# -- e. disk full, read-only spool --------------------------------------------------------------------------

DISK_SIZE = "64m"  # the SQLite database and WAL of a scenario take a few MB
SPOOL_FILE_SIZE = 32768  # writers start new files often, so a read-only directory shows within a second


def disk_trouble(lab: Lab, duration: float) -> Outcome:
    outcome = Outcome("disk")
    why_not = Tmpfs.mount_error(lab.work)
    if why_not is not None:
        outcome.skipped = f"cannot mount a tmpfs here ({why_not}): run as root where mount is permitted"
        return outcome
    cluster = lab.cluster(spool_file_size=SPOOL_FILE_SIZE)
    disk = lab.tmpfs(lab.work / "disk", DISK_SIZE)
    # The database and the spool on the small disk; logs/ and run/ stay where the logs can say what happened.
    data, spool, database = cluster.data_dir, disk.path / "spool", disk.path / "boltlink.sqlite3"
    data.mkdir(mode=0o700)
    spool.mkdir(mode=0o700)
    (data / "spool").symlink_to(spool)
    (data / "boltlink.sqlite3").symlink_to(database)
    cluster.prepare(SLUG)
    cluster.start("-i", "2")
    seen: list[Any] = []
    hold = min(max(2.0, duration / 10), 10.0)

    # 1. The disk fills up under load.
    with load(cluster) as running:
        outcome.check("the load runs", more_ok(running, 200), brief(running.result))
        filler = disk.path / "filler"
        disk.fill(filler)
        wait_for(lambda: every_worker(cluster, lambda c, d: c == 503 and "No space left" in d["events"], seen), 20,
                 what="/ready to fail with the reason")
        outcome.check("/ready: 503 with the reason on every worker", True, sorted(set(seen))[-1:])
        refused = running.wait_until(lambda r: r.statuses.get(503, 0) >= 50, timeout=15)
        outcome.check("a click that cannot be queued gets a 503, not a 302", refused, brief(running.result))
        write = post_link(cluster, "full")
        outcome.check("a link write on the full disk is a 503 problem", is_503_problem(write, "store-unavailable"),
                      describe(write))
        time.sleep(hold)  # the disk stays full a while
    outcome.add_load(running.result)
    logged = _logs_mention(cluster.data_dir / "logs", "No space left on device")
    outcome.check("the logs say the disk is full", logged, logged)
    _check_files(outcome, database, spool, refused=running.result.statuses.get(503, 0))

    # 2. Room again: /ready recovers with no redirect coming through, then redirects and writes work.
    filler.unlink()
    wait_for(lambda: every_worker(cluster, lambda c, d: c == 200, seen), 20, what="/ready 200 once there is room")
    outcome.check("/ready is 200 again before any redirect", True)
    write = post_link(cluster, "room")
    outcome.check("link writes work again", write.status_code == 201, describe(write))

    # 3. The spool directory read-only under load (see README: a live remount,ro is refused while
    # files are open for writing, so an empty read-only tmpfs is mounted over it), then writable again.
    with load(cluster) as running:
        outcome.check("redirects work again", more_ok(running, 200), brief(running.result))
        disk.overlay_read_only(spool)
        wait_for(lambda: every_worker(cluster, lambda c, d: c == 503 and "Read-only" in d["events"], seen), 20,
                 what="/ready to fail with read-only")
        outcome.check("/ready: 503 read-only file system", True, sorted(set(seen))[-1:])
        time.sleep(hold)
        disk.remove_overlay(spool)
        wait_for(lambda: every_worker(cluster, lambda c, d: c == 200, seen), 20, what="/ready 200 when writable")
        outcome.check("redirects work once writable again", more_ok(running, 200), brief(running.result))
    outcome.add_load(running.result)
    logged = _logs_mention(cluster.data_dir / "logs", "Read-only file system")
    outcome.check("the logs say the spool is read-only", logged, logged)

    # 4. The whole disk read-only across a restart (a remount,ro is refused while files are open).
    stopped = cluster.run("stop")
    outcome.check("the cluster stops", stopped.returncode == 0, stopped.stderr[-300:])
    disk.remount(read_only=True)
    refused_start = cluster.run("start-cluster", "--port", str(cluster.port), "-i", "2")
    outcome.check("start-cluster on a read-only database fails with the reason",
                  refused_start.returncode != 0 and "SQLite database" in refused_start.stderr,
                  refused_start.stderr.strip().splitlines()[-1:] or refused_start.returncode)
    disk.remount(read_only=False)
    cluster.start("-i", "2")
    with load(cluster) as running:
        outcome.check("redirects work after the restart on a writable disk", more_ok(running, 200),
                      brief(running.result))
    outcome.add_load(running.result)

    failures = {k: v for k, v in outcome.failed.items() if k != "http 503"}
    outcome.check("no failure but 503 refusals", not failures, outcome.failed)
    count_exactly(outcome, cluster)
    _check_files(outcome, database, spool, refused=outcome.failed.get("http 503", 0))
    return outcome


def _logs_mention(logs: Path, text: str) -> str:
    """The first log line that says text ('' if none)."""
    for path in sorted(logs.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if text in line:
                return f"{path.name}: {line[:200]}"
    return ""


def _check_files(outcome: Outcome, database: Path, spool: Path, refused: int) -> None:
    """The database passes integrity_check; every spool line decodes but the torn lines of refused clicks."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    outcome.check("the SQLite database passes PRAGMA integrity_check", integrity == "ok", integrity)
    decoded = malformed = 0
    for path in spool.glob("*.events"):
        lines = path.read_bytes().split(b"\n")[:-1]  # a last line with no end yet is still being written
        events = decode_many(lines)
        decoded += sum(e is not None for e in events)
        malformed += sum(e is None for e in events)
    outcome.check("the spool files decode (a refused click's torn line aside)", malformed <= refused,
                  f"{decoded} events, {malformed} torn lines, {refused} clicks refused")


SCENARIOS: dict[str, Callable[[Lab, float], Outcome]] = {
    "api-kills": api_kills,
    "redis": redis_restart,
    "postgres": postgres_restart,
    "aggregator": aggregator_kills,
    "disk": disk_trouble,
}
