#!/usr/bin/env python3
"""Stats API latency for a link with 10 million recorded clicks, on SQLite and on PostgreSQL.

    python scripts/bench_stats.py [--clicks 10000000] [--days 90] [--requests 200]
                                  [--sqlite-only | --postgres-only] [--max-seconds 900]

Generating 10 million clicks through the aggregator would take minutes, so
this script writes what the aggregator would have written for them, in bulk:

  * clicks_hourly: per hour, the link's total / humans / bots / new visitors,
    and the ALL_LINKS (link 0) row summing every link that hour;
  * breakdown_hourly: per hour and dimension (referrer host, browser, OS,
    device, country), the count of each value, every dimension summing to
    the hour's total, exactly as the aggregator's GROUP BY would;
  * links.clicks_total / humans / bots.

The big link's clicks are spread over --days days up to now with a daily
rhythm; each hour's values are drawn from realistic long-tailed distributions
(~300 referrer hosts, ~35 browsers, ~12 OS, ~80 devices, ~120 countries), so
an hour of ~4,600 clicks has several hundred breakdown rows, as a real one
would. --other-links links share --other-clicks clicks (one hour a day each),
so GET /api/v1/stats has links to rank. Then the analytics worker's jobs run
as they would: rollup_daily (every complete day into clicks_daily /
breakdown_daily, one day per transaction) and retention (hourly rows older
than hourly_retention_days = 35 days deleted). PostgreSQL also gets VACUUM
ANALYZE, as autovacuum would after such a load. Raw visits and the
visitors_daily keys are not generated: no statistics read reads them.

Then `python -m boltlink serve` runs on that data (a free 127.0.0.1 port)
and each endpoint is requested --requests times in a row after a warm-up,
over HTTP with keep-alive:

    30-day daily   GET /api/v1/links/big/stats?granularity=day   (30 days)
    7-day hourly   GET /api/v1/links/big/stats?granularity=hour  (7 days)
    global         GET /api/v1/stats                              (30 days, top 10 links)

and p50/p99/max are printed with GOAL MET / GOAL MISSED for p99 < 50 ms.
The answers are checked against the generated data (totals of each range,
the link's top 10 values of each range, all 10 million clicks over the whole
span, links.clicks): a mismatch exits 1.
The scratch database, the temp dir and the server are always removed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import random
import shutil
import signal
import sqlite3
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

from boltlink.apikeys import new_api_key
from boltlink.store.base import NewLink
from boltlink.store.clicks import DIMENSIONS, DIRECT, UNKNOWN

GOAL_P99_MS = 50.0
HOUR, DAY = 3600, 86400
VISIT_RETENTION_DAYS, HOURLY_RETENTION_DAYS = 90, 35  # the config defaults the analytics worker uses
BIG = "big"


# -- what the clicks look like ---------------------------------------------------------------------------------


def zipf(values: list[str], s: float, head: dict[str, float] | None = None) -> tuple[list[str], list[float]]:
    """Values with probabilities ~ 1/rank**s; `head` pins the share of some values first."""
    head = head or {}
    rest = [v for v in values if v not in head]
    weights = [1 / (k + 1) ** s for k in range(len(rest))]
    left = 1.0 - sum(head.values())
    total = sum(weights)
    return [*head, *rest], [*head.values(), *(left * w / total for w in weights)]


_HOSTS = ["t.co", "google.com", "facebook.com", "l.facebook.com", "linkedin.com", "lnkd.in", "reddit.com",
          "news.ycombinator.com", "duckduckgo.com", "bing.com", "mail.google.com", "github.com", "medium.com",
          "youtube.com", "instagram.com", "l.instagram.com", "discord.com", "slack.com", "teams.microsoft.com",
          "outlook.live.com", "substack.com", "old.reddit.com", "m.facebook.com", "android-app", "yandex.ru"]
_HOSTS += [f"{w}{i}.{tld}" for i, (w, tld) in enumerate(itertools.islice(zip(
    itertools.cycle(("blog", "news", "forum", "shop", "docs", "wiki")),
    itertools.cycle(("com", "org", "io", "net", "de", "fr", "dev")),
), 280))]  # fmt: skip
_BROWSERS = ["Chrome", "Mobile Safari", "Chrome Mobile", "Safari", "Firefox", "Edge", "Samsung Internet",
             "Chrome Mobile iOS", "Chrome Mobile WebView", "Facebook", "Instagram", "Opera", "Firefox Mobile",
             "Googlebot", "bingbot", "Twitterbot", "Slackbot-LinkExpanding", "FacebookBot", "LinkedInBot",
             "WhatsApp", "TelegramBot", "Discordbot", "YandexBot", "AhrefsBot", "SemrushBot", "GPTBot",
             "HeadlessChrome", "Python Requests", "curl", "Go-http-client", "okhttp", "Yandex Browser", "Vivaldi",
             "Brave", "DuckDuckGo Mobile", UNKNOWN]
_OS = ["Windows", "iOS", "Android", "Mac OS X", "Linux", "Chrome OS", "Ubuntu", "iPadOS", "Fedora", "FreeBSD",
       "Windows Phone", UNKNOWN]
_DEVICES = ["Other", "iPhone", "K", "Mac", "iPad", "Spider", "Generic Smartphone", "Pixel 8", "Pixel 7"]
_DEVICES += [f"Samsung SM-{m}" for m in ("S918B", "S911B", "A546B", "A536B", "G991B", "A146P", "S901B", "A256E",
                                         "G781B", "A135F", "F946B", "S928B")]
_DEVICES += [f"{b} {m}" for b, m in itertools.product(("XiaoMi", "Huawei", "Oppo", "Vivo", "Motorola"),
                                                       ("A1", "B2", "C3", "D4", "E5", "F6", "G7", "H8", "J9", "K10",
                                                        "L11", "M12"))]  # fmt: skip
_COUNTRY_CODES = ("US DE GB FR IN BR JP CA NL ES IT PL SE AU KR MX TR ID NG ZA AR CH AT BE DK NO FI IE PT CZ RO HU GR "
              "IL AE SA EG MA KE GH VN TH MY SG PH PK BD LK NZ CL CO PE VE EC UY BO PY CR PA GT DO PR JM TT HN SV "
              "NI CU UA BY RU KZ UZ GE AM AZ LT LV EE SK SI HR RS BA ME MK AL BG MD IS LU MT CY TN DZ LY SD ET TZ "
              "UG RW ZM ZW MZ AO CM CI SN ML BF NE TD MG MU TW HK MO MN NP MM KH LA")
_COUNTRIES = _COUNTRY_CODES.split()

DISTRIBUTIONS: dict[str, tuple[list[str], list[float]]] = {
    "referrer": zipf(_HOSTS, 1.1, {DIRECT: 0.42}),
    "browser": zipf(_BROWSERS, 1.3),
    "os": zipf(_OS, 1.4),
    "device": zipf(_DEVICES, 1.3),
    "country": zipf(_COUNTRIES, 1.2, {UNKNOWN: 0.05}),
}


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam >= 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, product = math.exp(-lam), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def split(rng: random.Random, total: int, dimension: str) -> list[tuple[str, int]]:
    """total clicks over the dimension's values; the counts sum to total exactly, as GROUP BY's would."""
    values, shares = DISTRIBUTIONS[dimension]
    counts = [poisson(rng, total * p) for p in shares]
    counts[0] += total - sum(counts)  # the most common value absorbs the difference (it is never small)
    i = len(counts) - 1
    while counts[0] < 0:  # only for tiny totals: take from the tail
        take = min(counts[i], -counts[0])
        counts[i] -= take
        counts[0] += take
        i -= 1
    return [(v, c) for v, c in zip(values, counts, strict=True) if c > 0]


def single(rng: random.Random, dimension: str) -> str:
    values, shares = DISTRIBUTIONS[dimension]
    return rng.choices(values, weights=shares)[0]


# -- the generated data ------------------------------------------------------------------------------------------


@dataclass
class Data:
    """Rows as the aggregator would have left them (buckets in unix seconds)."""

    big_id: int = 0
    hourly: dict[tuple[int, int], list[int]] = field(default_factory=dict)  # (link, hour) -> counts
    breakdown: list[tuple[int, int, str, str, int]] = field(default_factory=list)
    links: dict[int, list[int]] = field(default_factory=dict)  # link -> total, humans, bots
    big_by_hour: dict[int, int] = field(default_factory=dict)  # the big link's total per hour (for checks)
    all_by_hour: dict[int, int] = field(default_factory=dict)

    def add(self, link: int, hour: int, total: int, bots: int, visitors: int) -> None:
        for key in ((link, hour), (0, hour)):
            counts = self.hourly.setdefault(key, [0, 0, 0, 0])
            counts[0] += total
            counts[1] += total - bots
            counts[2] += bots
            counts[3] += visitors
        per_link = self.links.setdefault(link, [0, 0, 0])
        per_link[0] += total
        per_link[1] += total - bots
        per_link[2] += bots
        self.all_by_hour[hour] = self.all_by_hour.get(hour, 0) + total


def generate(big_id: int, other_ids: list[int], clicks: int, other_clicks: int, days: int, now: float,
             seed: int) -> Data:
    rng = random.Random(seed)
    data = Data(big_id=big_id)
    last_hour = int(now) // HOUR * HOUR
    hours = [last_hour - HOUR * i for i in range(days * 24)][::-1]
    # A daily rhythm (busiest in the afternoon UTC), some noise, and a slow rise over the span.
    weights = [(1.0 + 0.6 * math.sin(2 * math.pi * ((h // HOUR) % 24 - 9) / 24)) * (0.7 + 0.6 * i / len(hours))
               * rng.uniform(0.85, 1.15) for i, h in enumerate(hours)]  # fmt: skip
    total_weight = sum(weights)
    counts = [int(clicks * w / total_weight) for w in weights]
    for i in rng.sample(range(len(hours)), clicks - sum(counts)):
        counts[i] += 1
    for hour, total in zip(hours, counts, strict=True):
        if not total:
            continue
        bots = min(total, poisson(rng, total * 0.12))
        data.add(big_id, hour, total, bots, min(total, round(total * rng.uniform(0.5, 0.6))))
        data.big_by_hour[hour] = total
        for dimension in DISTRIBUTIONS:
            data.breakdown.extend((big_id, hour, dimension, value, c) for value, c in split(rng, total, dimension))
    # Other links: a Zipf share of other_clicks each, in one hour a day, one value per dimension that hour.
    if other_ids:
        shares = [1 / (k + 1) for k in range(len(other_ids))]
        scale = other_clicks / sum(shares)
        day_starts = sorted({h // DAY * DAY for h in hours})
        for link, share in zip(other_ids, shares, strict=True):
            left = int(share * scale)
            per_day = max(1, left // len(day_starts))
            for day in day_starts[::-1]:
                if left <= 0:
                    break
                n = min(left, per_day if day != day_starts[0] else left)
                hour = day + HOUR * rng.randrange(24)
                if hour > last_hour:
                    hour = last_hour
                left -= n
                bots = min(n, poisson(rng, n * 0.12))
                data.add(link, hour, n, bots, max(1, n // 2))
                data.breakdown.extend((link, hour, dimension, single(rng, dimension), n) for dimension in DISTRIBUTIONS)
    return data


# -- loading it into each store -----------------------------------------------------------------------------------


async def load_sqlite(path: Path, data: Data) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO clicks_hourly (link_id, hour, total, humans, bots, visitors) "
                         "VALUES (?, ?, ?, ?, ?, ?)", ((k[0], k[1], *c) for k, c in data.hourly.items()))
        conn.executemany("INSERT INTO breakdown_hourly (link_id, hour, dimension, value, count) VALUES (?, ?, ?, ?, ?)",
                         sorted(data.breakdown))
        conn.executemany("UPDATE links SET clicks_total = ?, clicks_humans = ?, clicks_bots = ? WHERE id = ?",
                         ((*c, link) for link, c in data.links.items()))
        conn.execute("COMMIT")
    finally:
        conn.close()


async def load_postgres(url: str, data: Data) -> None:
    import asyncpg

    def hour(seconds: int) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)

    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "clicks_hourly", columns=["link_id", "hour", "total", "humans", "bots", "visitors"],
                records=[(k[0], hour(k[1]), *c) for k, c in data.hourly.items()],
            )
            await conn.copy_records_to_table(
                "breakdown_hourly", columns=["link_id", "hour", "dimension", "value", "count"],
                records=[(r[0], hour(r[1]), r[2], r[3], r[4]) for r in sorted(data.breakdown)],
            )
            await conn.executemany("UPDATE links SET clicks_total = $1, clicks_humans = $2, clicks_bots = $3 "
                                   "WHERE id = $4", [(*c, link) for link, c in data.links.items()])
    finally:
        await conn.close()


# -- one backend -----------------------------------------------------------------------------------------------


@dataclass
class Backend:
    name: str
    data_dir: Path
    database_url: str | None

    def store(self) -> Any:
        if self.database_url:
            from boltlink.store.postgres import PostgresStore

            return PostgresStore(self.database_url)
        from boltlink.store.sqlite import SqliteStore

        return SqliteStore(self.data_dir / "boltlink.sqlite3")


async def prepare(backend: Backend, args: argparse.Namespace, now: float) -> tuple[str, Data]:
    """Create the links and an API key, write the counters, roll up and prune as the analytics worker would."""
    began = time.perf_counter()
    store = backend.store()
    await store.open()
    try:
        big = await store.create_link(NewLink(slug=BIG, url="https://example.com/launch"))
        others = [(await store.create_link(NewLink(slug=f"other{i}", url=f"https://example.com/{i}"))).id
                  for i in range(args.other_links)]
        key, record = new_api_key("bench-stats", ("stats:read", "links:read"))
        await store.create_api_key(record)
        step = time.perf_counter()
        data = generate(big.id, others, args.clicks, args.other_clicks, args.days, now, args.seed)
        print(f"{backend.name}: generated {sum(data.big_by_hour.values()):,} clicks of /{BIG} over {args.days} days "
              f"+ {_others(data, big.id):,} "
              f"over {len(others)} other links: {len(data.hourly):,} hourly rows, {len(data.breakdown):,} breakdown "
              f"rows in {time.perf_counter() - step:.1f} s", flush=True)
        step = time.perf_counter()
        if backend.database_url:
            await load_postgres(backend.database_url, data)
        else:
            await load_sqlite(backend.data_dir / "boltlink.sqlite3", data)
        print(f"{backend.name}: written in {time.perf_counter() - step:.1f} s", flush=True)

        # The analytics worker's jobs (workers/analytics.py: rollup, then retention), with its default settings.
        step = time.perf_counter()
        today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        days = await store.rollup_daily(today)
        rolled = time.perf_counter() - step
        step = time.perf_counter()
        moment = datetime.fromtimestamp(now, UTC)
        pruned = await store.prune(visits_before=moment - timedelta(days=VISIT_RETENTION_DAYS),
                                   hourly_before=moment - timedelta(days=HOURLY_RETENTION_DAYS))
        print(f"{backend.name}: rollup_daily rolled up {days} days in {rolled:.1f} s; retention deleted "
              f"{pruned[1]:,} hourly rows in {time.perf_counter() - step:.1f} s", flush=True)
    finally:
        await store.close()
    if backend.database_url:
        import asyncpg

        step = time.perf_counter()
        conn = await asyncpg.connect(backend.database_url)
        try:
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()
        print(f"{backend.name}: VACUUM ANALYZE in {time.perf_counter() - step:.1f} s", flush=True)
    await describe(backend)
    print(f"{backend.name}: data ready in {time.perf_counter() - began:.1f} s (generation bound: "
          f"{args.generation_seconds:g} s)", flush=True)
    return key, data


def _others(data: Data, big_id: int) -> int:
    return sum(c[0] for link, c in data.links.items() if link != big_id)


async def describe(backend: Backend) -> None:
    tables = ("clicks_hourly", "clicks_daily", "breakdown_hourly", "breakdown_daily")
    if backend.database_url:
        import asyncpg

        conn = await asyncpg.connect(backend.database_url)
        try:
            counts = [await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables]
            size = await conn.fetchval("SELECT pg_database_size(current_database())")
        finally:
            await conn.close()
    else:
        path = backend.data_dir / "boltlink.sqlite3"
        conn = sqlite3.connect(path)
        try:
            counts = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables]
        finally:
            conn.close()
        size = sum(p.stat().st_size for p in backend.data_dir.glob("boltlink.sqlite3*"))
    print(f"{backend.name}: rows " + ", ".join(f"{t} {c:,}" for t, c in zip(tables, counts, strict=True))
          + f"; database {size / 1e6:,.0f} MB", flush=True)


class Server:
    """`python -m boltlink serve` on a free port, stopped (SIGTERM, then SIGKILL) however the run ends."""

    def __init__(self, backend: Backend) -> None:
        self.port = support.free_port()
        self.url = f"http://{support.LOOPBACK}:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOLTLINK_")}
        env["PYTHONPATH"] = str(support.ROOT)
        env["BOLTLINK_LOG_LEVEL"] = "warning"
        if backend.database_url:
            env["BOLTLINK_DATABASE_URL"] = backend.database_url
        self.log = backend.data_dir / "serve.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "boltlink", "--data-dir", str(backend.data_dir), "serve", "--port",
                 str(self.port)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                cwd=support.ROOT, start_new_session=True,
            )  # fmt: skip

    async def ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"serve exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
                try:
                    if (await client.get(self.url + "/health", timeout=1)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"serve did not answer /health within {timeout:g} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@dataclass
class Endpoint:
    name: str
    path: str
    params: dict[str, str]
    expected: int  # totals.total the answer must show
    expected_top: dict[str, list[dict[str, Any]]] | None = None  # the link's top 10 values, as the answer shows them
    latencies: list[float] = field(default_factory=list)


def endpoints(data: Data, now: float) -> list[Endpoint]:
    end = datetime.fromtimestamp(now, UTC)

    def iso(moment: datetime) -> str:
        return moment.isoformat(timespec="seconds").replace("+00:00", "Z")

    def buckets(start: datetime, step: int) -> tuple[int, int]:
        first = int(start.timestamp()) // step * step
        return first, -(-int(math.ceil(end.timestamp())) // step) * step  # ranges cover every bucket they overlap

    def in_range(by_hour: dict[int, int], start: datetime, step: int) -> int:
        first, stop = buckets(start, step)
        return sum(n for h, n in by_hour.items() if first <= h < stop)

    def top_in_range(start: datetime, step: int) -> dict[str, list[dict[str, Any]]]:
        first, stop = buckets(start, step)
        sums: dict[str, dict[str, int]] = {dim: {} for dim in DIMENSIONS}
        for link, hour, dimension, value, count in data.breakdown:
            if link == data.big_id and first <= hour < stop:
                sums[dimension][value] = sums[dimension].get(value, 0) + count
        return {dim: [{"value": v, "count": c} for v, c in sorted(values.items(), key=lambda vc: (-vc[1], vc[0]))[:10]]
                for dim, values in sums.items()}  # fmt: skip

    month, week = end - timedelta(days=30), end - timedelta(days=7)
    return [
        Endpoint("30-day daily", f"/api/v1/links/{BIG}/stats",
                 {"granularity": "day", "from": iso(month), "to": iso(end)}, in_range(data.big_by_hour, month, DAY),
                 top_in_range(month, DAY)),
        Endpoint("7-day hourly", f"/api/v1/links/{BIG}/stats",
                 {"granularity": "hour", "from": iso(week), "to": iso(end)}, in_range(data.big_by_hour, week, HOUR),
                 top_in_range(week, HOUR)),
        Endpoint("global (30 days)", "/api/v1/stats", {"from": iso(month), "to": iso(end)},
                 in_range(data.all_by_hour, month, DAY)),
    ]


async def measure(backend: Backend, key: str, data: Data, now: float, args: argparse.Namespace) -> list[str]:
    problems: list[str] = []
    server = Server(backend)
    try:
        await server.ready()
        headers = {"X-API-Key": key}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10.0) as client:
            # Everything was recorded: the whole span shows all the clicks, and so does the link's clicks field.
            start = datetime.fromtimestamp(now, UTC) - timedelta(days=args.days + 1)
            whole = (await client.get(f"/api/v1/links/{BIG}/stats", params={
                "granularity": "day", "from": start.isoformat(), "to": datetime.fromtimestamp(now, UTC).isoformat()
            })).json()  # fmt: skip
            link = (await client.get(f"/api/v1/links/{BIG}")).json()
            if whole["totals"]["total"] != args.clicks:
                problems.append(f"the whole span shows {whole['totals']['total']:,} clicks, not {args.clicks:,}")
            if link["clicks"]["total"] != args.clicks:
                problems.append(f"the link's clicks field shows {link['clicks']['total']:,}, not {args.clicks:,}")
            print(f"{backend.name}: /{BIG} shows {whole['totals']['total']:,} clicks over the whole span "
                  f"({whole['totals']['humans']:,} humans, {whole['totals']['bots']:,} bots, "
                  f"{whole['totals']['visitors']:,} visitors); link clicks field {link['clicks']['total']:,}")
            for endpoint in endpoints(data, now):
                for i in range(args.warmup + args.requests):
                    began = time.perf_counter()
                    response = await client.get(endpoint.path, params=endpoint.params)
                    elapsed = time.perf_counter() - began
                    if response.status_code != 200:
                        problems.append(f"{endpoint.name}: HTTP {response.status_code} {response.text[:200]}")
                        break
                    if i == 0:
                        body = response.json()
                        got = body["totals"]["total"]
                        if got != endpoint.expected:
                            problems.append(f"{endpoint.name}: total {got:,}, generated {endpoint.expected:,}")
                        if endpoint.expected_top is not None and body["top"] != endpoint.expected_top:
                            problems.append(f"{endpoint.name}: top values differ from the generated breakdown")
                        shape = (f"{len(body['series'])} points, top values "
                                 f"{sum(len(v) for v in body['top'].values())}" if "series" in body
                                 else f"{len(body['top_links'])} top links of {body['links']}")
                        print(f"{backend.name}: {endpoint.name}: total {got:,} ({shape}), {len(response.content):,} "
                              "bytes", flush=True)
                    if i >= args.warmup:
                        endpoint.latencies.append(elapsed * 1000)
                lat = endpoint.latencies
                p50, p99, worst = (support.percentile(lat, q) for q in (0.5, 0.99, 1.0))
                print(f"{backend.name}: {endpoint.name:<17} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  max {worst:6.1f} ms "
                      f"(n={len(lat)})", flush=True)
                support.goal(f"{backend.name} {endpoint.name} stats p99 < {GOAL_P99_MS:g} ms at "
                             f"{args.clicks / 1e6:g}M clicks", bool(lat) and p99 < GOAL_P99_MS, f"p99 {p99:.1f} ms")
    finally:
        server.stop()
    return problems


async def run_backend(name: str, work: Path, url: str | None, args: argparse.Namespace) -> list[str]:
    backend = Backend(name, work / name.lower(), url)
    backend.data_dir.mkdir(parents=True)
    now = time.time()
    began = time.perf_counter()
    key, data = await asyncio.wait_for(prepare(backend, args, now), args.generation_seconds)
    print(f"{name}: generation took {time.perf_counter() - began:.1f} s in all", flush=True)
    problems = await measure(backend, key, data, now, args)
    for problem in problems:
        print(f"{name}: CHECK FAILED: {problem}")
    if not problems:
        print(f"{name}: CHECK OK: every answer's totals and top values equal the generated clicks")
    return problems


async def main_async(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="boltlink-bench-stats-"))
    problems: list[str] = []
    try:
        if not args.postgres_only:
            problems += await run_backend("SQLite", work, None, args)
        if not args.sqlite_only:
            async with support.scratch_postgres(tag="bench_stats") as url:
                problems += await run_backend("PostgreSQL", work, url, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=support.HelpFormatter,
        epilog="Goal: p99 < 50 ms for each endpoint. Exit 1 when an answer does not match the generated data "
               "(or generation failed); a missed goal only prints GOAL MISSED.",
    )
    parser.add_argument("--clicks", type=int, default=10_000_000, help="recorded clicks of the big link")
    parser.add_argument("--days", type=int, default=90, help="days the big link's clicks span, up to now")
    parser.add_argument("--other-links", type=int, default=1000, help="other links (for /api/v1/stats)")
    parser.add_argument("--other-clicks", type=int, default=2_000_000, help="clicks shared by the other links")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per endpoint")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured requests first, per endpoint")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--sqlite-only", action="store_true")
    only.add_argument("--postgres-only", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--generation-seconds", type=float, default=300.0,
                        help="fail when making one backend's data takes longer")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="hard bound on the whole run")
    args = parser.parse_args(argv)
    if not 1 <= args.clicks <= 100_000_000 or not 2 <= args.days <= 3000:
        parser.error("--clicks must be 1 to 100,000,000 and --days 2 to 3000")
    if args.requests < 1 or args.other_links < 0:
        parser.error("--requests must be at least 1, --other-links at least 0")
    support.bound_run(args.max_seconds)
    try:
        return asyncio.run(main_async(args))
    except (support.BenchTimeout, RuntimeError, TimeoutError) as exc:
        print(f"FAILED: {exc!r}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
