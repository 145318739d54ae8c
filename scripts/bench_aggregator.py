#!/usr/bin/env python3
"""End-to-end speed of the click aggregator, through the real code path, for SQLite and for PostgreSQL.

    python scripts/bench_aggregator.py [--events 200000] [--sqlite-only | --postgres-only] [--batch N]
                                       [--links 1000] [--profile] [--max-seconds 600]

SQLite (embedded mode): the synthetic events are written as spool files by
two SpoolWriters (two API workers, one write() per event as a redirect does),
then boltlink.workers.aggregator.run_aggregator consumes them, exactly as the
`aggregator` role does, until every event is recorded.

PostgreSQL (distributed mode): the events are XADDed to a Redis stream (a
private stream key and consumer group, deleted afterwards), then
run_aggregator consumes them through RedisStreamSource into a scratch
PostgreSQL database (created, and dropped afterwards).

Events: ~1,000 links chosen with a Zipf skew, ~270 distinct user agents
(browsers on every platform, crawlers, preview fetchers, HTTP libraries,
~10% bots), ~200 referrer hosts or none, ~30,000 anonymized IPv4/IPv6
visitors, countries; spread over the last --span-minutes, in time order.

events/s is end to end: from the moment the aggregator is ready to consume
(store opened, source opened) until the commit of the batch holding the last
event. Producing the input (spool writes, XADDs) is timed apart. After the
run the stored figures are checked against the events fed: visits, totals,
humans, bots, per-link totals, links.clicks_*, breakdown sums per
dimension, unique visitors per (link, day) and for all links, and that the
spool was emptied / nothing is left pending in the stream. A mismatch exits
1; a missed speed goal only prints GOAL MISSED.

--phases prints the wall time per aggregator phase (read + decode, enrich,
record, ack), at a small cost. --profile adds cProfile over the consumption
(the event loop thread, and the SQLite store's worker thread apart) and
prints the top functions; profiled runs are much slower: take events/s from
a run without it.

The machine may be shared: the load average is printed before each run, and
the aggregator process's own CPU time beside the wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import io
import logging
import os
import pstats
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_support as support

from boltlink.config import Config
from boltlink.events import enrich
from boltlink.events import redis as redis_events
from boltlink.events.enrich import parse_user_agent, visitor_key
from boltlink.events.model import ClickEvent
from boltlink.events.spool import SpoolWriter, spool_files
from boltlink.store.base import NewLink
from boltlink.store.clicks import DIMENSIONS
from boltlink.workers import aggregator
from boltlink.workers.runtime import Telemetry

GOAL_EVENTS_PER_SECOND = 50_000
API_WORKERS = 2  # spool writers, as `start-cluster -i 2` would have
XADD_CHUNK = 2_000


# -- measuring the aggregator from inside ------------------------------------------------------------------


class _Figures(dict[str, Any]):
    """telemetry.figures: the aggregator updates it after every committed (and acked) batch."""

    def __init__(self, watch: BenchTelemetry) -> None:
        super().__init__()
        self.watch = watch

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().update(*args, **kwargs)
        self.watch.progress(self.get("recorded", 0))


@dataclass
class BenchTelemetry(Telemetry):
    """Times the run: ready() when consumption starts, the batch that records the last event ends it."""

    expected: int = 0
    stop: asyncio.Event | None = None
    ready_at: float | None = None
    done_at: float | None = None
    cpu_ready: float = 0.0  # process CPU time (every thread: the SQLite store's worker too)
    cpu_done: float = 0.0
    last_progress: float = 0.0
    recorded: int = 0
    batches: int = 0
    watch_figures: _Figures = field(init=False)

    def __post_init__(self) -> None:
        self.figures = self.watch_figures = _Figures(self)

    def ready(self) -> None:
        self.ready_at = self.last_progress = time.perf_counter()
        self.cpu_ready = time.process_time()

    def progress(self, recorded: int) -> None:
        now = time.perf_counter()
        if recorded != self.recorded:
            self.last_progress = now
            self.batches += 1
        self.recorded = recorded
        if recorded >= self.expected and self.done_at is None:
            self.done_at = now
            self.cpu_done = time.process_time()
            assert self.stop is not None
            self.stop.set()


@dataclass
class Phases:
    """Wall time per aggregator phase (only with --profile)."""

    seconds: collections.Counter[str] = field(default_factory=collections.Counter)

    def timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started

        return wrapper

    def timed_sync(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started

        return wrapper


class Profiling:
    """cProfile on the event loop thread and, for SQLite, on the store's worker thread; phase timers."""

    def __init__(self, cprofile: bool = True) -> None:
        self.cprofile = cprofile
        self.loop_profile = cProfile.Profile()
        self.thread_profile = cProfile.Profile()
        self.phases = Phases()
        self._saved: dict[str, Any] = {}

    def install(self) -> None:
        """Wrap what run_aggregator creates: the source's read/ack, the store's record_clicks, to_visit."""
        phases = self.phases
        real_store, real_source, real_to_visit = aggregator.create_store, aggregator.create_source, aggregator.to_visit
        self._saved = {"create_store": real_store, "create_source": real_source, "to_visit": real_to_visit}
        thread_profile = self.thread_profile

        def create_store(config: Config) -> Any:
            store = real_store(config)
            store.record_clicks = phases.timed("record (store.record_clicks)", store.record_clicks)
            if self.cprofile and hasattr(store, "_run"):  # SQLite: profile the jobs on its worker thread too
                real_run = store._run
                store._run = lambda job: thread_profile.runcall(real_run, job)
            return store

        def create_source(config: Config, store: Any) -> Any:
            source = real_source(config, store)
            source.read = phases.timed("read + decode (source.read)", source.read)
            source.ack = phases.timed("ack (source.ack)", source.ack)
            return source

        aggregator.create_store = create_store
        aggregator.create_source = create_source
        aggregator.to_visit = phases.timed_sync("enrich (to_visit)", real_to_visit)

    def uninstall(self) -> None:
        for name, value in self._saved.items():
            setattr(aggregator, name, value)

    def report(self, elapsed: float, top: int = 22) -> None:
        print(f"  time per phase (of {elapsed:.2f} s wall):")
        for name, seconds in self.phases.seconds.most_common():
            print(f"    {name:<32} {seconds:7.2f} s  {100 * seconds / elapsed:5.1f}%")
        for title, profile in (("event loop thread", self.loop_profile), ("store worker thread", self.thread_profile)):
            if not self.cprofile or not profile.getstats():  # PostgreSQL: no worker thread
                continue
            stream = io.StringIO()
            stats = pstats.Stats(profile, stream=stream)
            stats.strip_dirs().sort_stats("tottime").print_stats(top)
            print(f"  cProfile, {title}, top {top} by own time:")
            lines = stream.getvalue().splitlines()
            start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
            for line in lines[max(0, start - 1):]:
                if line.strip():
                    print("    " + line)


# -- the two runs ------------------------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    events: int
    produce_seconds: float
    consume_seconds: float
    cpu_seconds: float
    batches: int
    problems: list[str]

    @property
    def rate(self) -> float:
        return self.events / self.consume_seconds if self.consume_seconds else 0.0


async def create_links(store: Any, count: int) -> list[int]:
    return [(await store.create_link(NewLink(slug=f"bench{i}", url=f"https://example.com/landing/{i}"))).id
            for i in range(count)]


async def consume(config: Config, expected: int, profiling: Profiling | None, stall_seconds: float) -> BenchTelemetry:
    """run_aggregator until the last event is committed; fail if it stops making progress."""
    print("  load average before consuming: " + " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    stop = asyncio.Event()
    telemetry = BenchTelemetry(expected=expected, stop=stop)
    for cached in (parse_user_agent, enrich.referrer_host, getattr(enrich, "_day_text", None)):
        if hasattr(cached, "cache_clear"):  # a fresh aggregator process starts with cold caches
            cached.cache_clear()
    if profiling:
        profiling.install()
        if profiling.cprofile:
            profiling.loop_profile.enable()
    task = asyncio.get_running_loop().create_task(aggregator.run_aggregator(config, stop, telemetry))
    try:
        while not task.done():
            await asyncio.wait([task], timeout=0.5)
            if telemetry.ready_at is not None and time.perf_counter() - telemetry.last_progress > stall_seconds:
                stop.set()
                await task
                raise RuntimeError(f"the aggregator made no progress for {stall_seconds:g} s "
                                   f"({telemetry.recorded} of {expected} recorded)")
        task.result()
    finally:
        if profiling:
            if profiling.cprofile:
                profiling.loop_profile.disable()
            profiling.uninstall()
        if not task.done():
            stop.set()
            await task
    if telemetry.done_at is None:
        raise RuntimeError(f"the aggregator stopped after {telemetry.recorded} of {expected} events")
    return telemetry


async def run_sqlite(args: argparse.Namespace, work: Path) -> Result:
    from boltlink.store.sqlite import SqliteStore

    config = Config(data_dir=str(work / "sqlite"), **_batch(args))
    store = SqliteStore(config.sqlite_path)
    await store.open()
    try:
        link_ids = await create_links(store, args.links)
    finally:
        await store.close()
    events = _events(args, link_ids)

    started = time.perf_counter()
    writers = [SpoolWriter(config.spool_path, f"api-{i}", config.spool_file_size) for i in range(API_WORKERS)]
    for writer in writers:
        await writer.open()
    for i, event in enumerate(events):  # the two API workers take turns, one write() per event
        writers[i % API_WORKERS].write(event.encode())
    for writer in writers:
        await writer.close()  # releases the lock: the aggregator may delete the files once consumed
    produced = time.perf_counter() - started
    files = len(spool_files(config.spool_path))
    print(f"SQLite: {len(events):,} events written to {files} spool files in {produced:.2f} s "
          f"({len(events) / produced:,.0f}/s; not counted below)", flush=True)

    profiling = _profiling(args)
    telemetry = await consume(config, len(events), profiling, args.stall_seconds)
    elapsed = telemetry.done_at - telemetry.ready_at  # type: ignore[operator]
    if profiling:
        profiling.report(elapsed)

    problems = verify(events, sqlite_rows(config.sqlite_path))
    left = spool_files(config.spool_path)
    if left:
        problems.append(f"{len(left)} spool file(s) left after everything was consumed: {[p.name for p in left]}")
    return Result("SQLite", len(events), produced, elapsed, telemetry.cpu_done - telemetry.cpu_ready,
                  telemetry.batches, problems)


async def run_postgres(args: argparse.Namespace, work: Path) -> Result:
    import redis.asyncio as aioredis

    from boltlink.events.redis import add_lines
    from boltlink.store.postgres import PostgresStore

    async with support.scratch_postgres(tag="bench_agg") as url:
        with support.private_stream(args.redis) as stream:
            config = Config(data_dir=str(work / "postgres"), database_url=url, redis_url=args.redis, **_batch(args))
            store = PostgresStore(url)
            await store.open()
            try:
                link_ids = await create_links(store, args.links)
            finally:
                await store.close()
            events = _events(args, link_ids)

            client = aioredis.from_url(args.redis)
            try:
                started = time.perf_counter()
                for i in range(0, len(events), XADD_CHUNK):  # as the API workers' XADDs (pipelined here)
                    await add_lines(client, [e.encode() for e in events[i : i + XADD_CHUNK]])
                produced = time.perf_counter() - started
                length = await client.xlen(stream)
                print(f"PostgreSQL: {len(events):,} events XADDed to Redis stream {stream} ({length:,} entries) in "
                      f"{produced:.2f} s ({len(events) / produced:,.0f}/s; not counted below)", flush=True)

                profiling = _profiling(args)
                telemetry = await consume(config, len(events), profiling, args.stall_seconds)
                elapsed = telemetry.done_at - telemetry.ready_at  # type: ignore[operator]
                if profiling:
                    profiling.report(elapsed)

                problems = verify(events, await postgres_rows(url))
                pending = await client.xpending(stream, redis_events.GROUP)
                if pending["pending"]:
                    problems.append(f"{pending['pending']} stream entries left pending (not acknowledged)")
            finally:
                await client.aclose()
    return Result("PostgreSQL", len(events), produced, elapsed, telemetry.cpu_done - telemetry.cpu_ready,
                  telemetry.batches, problems)


def _profiling(args: argparse.Namespace) -> Profiling | None:
    if args.profile or args.phases:
        return Profiling(cprofile=args.profile)
    return None


def _batch(args: argparse.Namespace) -> dict[str, Any]:
    return {"aggregator_batch_size": args.batch} if args.batch else {}


def _events(args: argparse.Namespace, link_ids: list[int]) -> list[ClickEvent]:
    started = time.perf_counter()
    now = time.time()
    events = support.Traffic(link_ids, seed=args.seed, zipf=args.zipf).events(
        args.events, now - args.span_minutes * 60, now
    )
    print(f"  generated {len(events):,} synthetic events over {len(link_ids)} links in "
          f"{time.perf_counter() - started:.2f} s", flush=True)
    return events


# -- checking what was stored ------------------------------------------------------------------------------


@dataclass
class Stored:
    visits: int
    all_links: tuple[int, int, int, int]  # clicks_hourly link 0: total, humans, bots, visitors
    per_link: dict[int, tuple[int, int]]  # link -> (total, visitors) from clicks_hourly
    link_columns: dict[int, tuple[int, int, int]]  # links.clicks_total, clicks_humans, clicks_bots
    breakdown: dict[str, int]  # dimension -> sum of counts
    breakdown_values: dict[tuple[str, str], int]  # (dimension, value) -> count, all links


_QUERIES = {
    "visits": "SELECT count(*) FROM visits",
    "all": "SELECT sum(total), sum(humans), sum(bots), sum(visitors) FROM clicks_hourly WHERE link_id = 0",
    "per_link": "SELECT link_id, sum(total), sum(visitors) FROM clicks_hourly WHERE link_id <> 0 GROUP BY link_id",
    "links": "SELECT id, clicks_total, clicks_humans, clicks_bots FROM links",
    "breakdown": "SELECT dimension, value, sum(count) FROM breakdown_hourly GROUP BY dimension, value",
}


def sqlite_rows(path: Path) -> Stored:
    conn = sqlite3.connect(path)
    try:
        q = {name: conn.execute(sql).fetchall() for name, sql in _QUERIES.items()}
    finally:
        conn.close()
    return _stored(q)


async def postgres_rows(url: str) -> Stored:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        q = {name: [tuple(r) for r in await conn.fetch(sql)] for name, sql in _QUERIES.items()}
    finally:
        await conn.close()
    return _stored(q)


def _stored(q: dict[str, list[tuple[Any, ...]]]) -> Stored:
    breakdown: collections.Counter[str] = collections.Counter()
    values = {}
    for dim, value, count in q["breakdown"]:
        breakdown[dim] += int(count)
        values[(dim, value)] = int(count)
    return Stored(
        visits=q["visits"][0][0],
        all_links=tuple(int(v or 0) for v in q["all"][0]),  # type: ignore[arg-type]
        per_link={r[0]: (int(r[1]), int(r[2])) for r in q["per_link"]},
        link_columns={r[0]: (r[1], r[2], r[3]) for r in q["links"]},
        breakdown=dict(breakdown),
        breakdown_values=values,
    )


def verify(events: list[ClickEvent], stored: Stored) -> list[str]:
    """Every figure the aggregator stores, counted again from the events themselves."""
    n = len(events)
    bots = sum(e.bot for e in events)
    per_link: collections.Counter[int] = collections.Counter(e.link_id for e in events)
    humans_by_link: collections.Counter[int] = collections.Counter(e.link_id for e in events if not e.bot)
    day_visitors, link_day_visitors = set(), set()
    values: collections.Counter[tuple[str, str]] = collections.Counter()
    for e in events:
        day = time.strftime("%Y-%m-%d", time.gmtime(e.at))
        key = visitor_key(e.ip, e.user_agent, day)
        day_visitors.add((day, key))
        link_day_visitors.add((e.link_id, day, key))
        values[("country", e.country or "(unknown)")] += 1
    visitors_by_link = collections.Counter(link for link, _, _ in link_day_visitors)

    problems = []

    def check(what: str, got: object, want: object) -> None:
        if got != want:
            problems.append(f"{what}: stored {got}, fed {want}")

    check("visits rows", stored.visits, n)
    check("all-links total, humans, bots, visitors", stored.all_links, (n, n - bots, bots, len(day_visitors)))
    check("per-link totals and visitors", stored.per_link,
          {link: (count, visitors_by_link[link]) for link, count in per_link.items()})
    check("links.clicks_total/humans/bots",
          {k: v for k, v in stored.link_columns.items() if v != (0, 0, 0)},
          {link: (count, humans_by_link[link], count - humans_by_link[link]) for link, count in per_link.items()})
    check("breakdown sums per dimension", stored.breakdown, dict.fromkeys(DIMENSIONS, n))
    check("country breakdown", {k: v for k, v in stored.breakdown_values.items() if k[0] == "country"}, dict(values))
    return problems


# -- main ----------------------------------------------------------------------------------------------------


def report(result: Result) -> bool:
    ok = not result.problems
    print(f"{result.backend}: {result.events:,} events consumed in {result.consume_seconds:.2f} s "
          f"({result.batches} commits) = {result.rate:,.0f} events/s end to end "
          f"[aggregator process CPU {result.cpu_seconds:.2f} s; input produced in {result.produce_seconds:.2f} s, "
          "excluded]", flush=True)
    if ok:
        print(f"{result.backend}: CHECK OK: visits, totals, humans, bots, per-link totals and visitors, "
              "links.clicks_*, breakdowns all equal the events fed")
    for problem in result.problems:
        print(f"{result.backend}: CHECK FAILED: {problem}")
    support.goal(f"{result.backend} aggregator >= {GOAL_EVENTS_PER_SECOND:,} events/s",
                 result.rate >= GOAL_EVENTS_PER_SECOND, f"{result.rate:,.0f} events/s")
    return ok


async def main_async(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="boltlink-bench-agg-"))
    results = []
    try:
        if not args.postgres_only:
            results.append(await run_sqlite(args, work))
            report(results[-1])
        if not args.sqlite_only:
            results.append(await run_postgres(args, work))
            report(results[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if len(results) == 2:
        print("summary: " + ", ".join(f"{r.backend} {r.rate:,.0f} events/s" for r in results))
    return 1 if any(r.problems for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=support.HelpFormatter,
        epilog="Goal on the 2-core machine: >= 50,000 events/s for each store. Exit 1 when the stored figures "
               "do not match the events fed (or the run failed), 0 otherwise; a missed goal prints GOAL MISSED.",
    )
    parser.add_argument("--events", type=int, default=200_000, help="synthetic click events per store")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--sqlite-only", action="store_true", help="embedded mode only (spool -> SQLite)")
    only.add_argument("--postgres-only", action="store_true", help="distributed mode only (Redis -> PostgreSQL)")
    parser.add_argument("--batch", type=int, default=None,
                        help="aggregator_batch_size (default: the config's, 20,000)")
    parser.add_argument("--links", type=int, default=1_000, help="links the clicks go to")
    parser.add_argument("--zipf", type=float, default=1.0, help="skew of the link choice: link k ~ 1/k**zipf")
    parser.add_argument("--span-minutes", type=float, default=60.0, help="the events' timestamps span this long")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--redis", default=support.REDIS_URL, help="Redis URL (127.0.0.1 only)")
    parser.add_argument("--profile", action="store_true", help="cProfile + time per phase (slows the run)")
    parser.add_argument("--phases", action="store_true", help="time per phase only (a small overhead)")
    parser.add_argument("--stall-seconds", type=float, default=60.0, help="fail when nothing is recorded this long")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="hard bound on the whole run")
    args = parser.parse_args(argv)
    if not 1 <= args.events <= 5_000_000:
        parser.error("--events must be 1 to 5,000,000")
    if args.batch is not None and not 1 <= args.batch <= 50_000:
        parser.error("--batch must be 1 to 50,000 (aggregator_batch_size)")
    support.check_loopback(args.redis)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    support.bound_run(args.max_seconds)
    aggregator.configure_process()  # as the aggregator role's process is
    try:
        return support.run(main_async(args))
    except (support.BenchTimeout, RuntimeError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
