"""What the click-pipeline benchmarks share (scripts/bench_aggregator.py, bench_click_lag.py, bench_stats.py).

Not a benchmark itself: realistic synthetic click traffic, a scratch PostgreSQL
database and a private Redis stream that are always removed again, a bound on
how long a script may run, percentiles, and the GOAL MET / GOAL MISSED lines.

Everything here talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python scripts/X.py` runs boltlink from this checkout, not an installed copy
    sys.path.insert(0, str(ROOT))

from boltlink.events.model import ClickEvent  # noqa: E402
from boltlink.useragent import is_bot  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get("BOLTLINK_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BOLTLINK_BENCH_REDIS", "redis://127.0.0.1:6379/0")
LOOPBACK = "127.0.0.1"


# -- bounds and cleanup ---------------------------------------------------------------------------------------


class BenchTimeout(Exception):
    """The script ran past its --max-seconds: it stops, cleans up and exits non-zero."""


def bound_run(max_seconds: float, timeout_error: type[Exception] = BenchTimeout) -> None:
    """SIGALRM after max_seconds (timeout_error), and SIGTERM/SIGHUP (KeyboardInterrupt), raise in the
    main thread so every finally runs."""

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise timeout_error(f"ran longer than {max_seconds:g} s")

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    signal.setitimer(signal.ITIMER_REAL, max_seconds)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def check_loopback(url: str) -> None:
    """The benchmarks only ever touch this machine."""
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname
    if host not in (LOOPBACK, "localhost", "::1"):
        raise SystemExit(f"refusing a non-loopback address: {url}")


@contextlib.asynccontextmanager
async def scratch_postgres(admin_url: str = POSTGRES_ADMIN_URL, tag: str = "bench") -> AsyncIterator[str]:
    """A brand-new database boltlink_<tag>_<random>, dropped (WITH FORCE) however the block ends."""
    import asyncpg

    check_loopback(admin_url)
    name = f"boltlink_{tag}_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = admin_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@contextlib.contextmanager
def private_stream(redis_url: str = REDIS_URL) -> Iterator[str]:
    """Point boltlink's Redis stream and consumer group at names of our own; delete the stream after."""
    import redis

    from boltlink.events import redis as redis_events

    check_loopback(redis_url)
    name = f"boltlink-bench:clicks:{uuid.uuid4().hex}"
    saved = redis_events.STREAM, redis_events.GROUP  # read at each call (the sink's XADDs go through add_lines)
    redis_events.STREAM = name
    redis_events.GROUP = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        redis_events.STREAM, redis_events.GROUP = saved
        with redis.Redis.from_url(redis_url) as client:
            client.delete(name)


# -- figures --------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, int(-(-fraction * len(ordered) // 1)))  # ceil(fraction * n), at least 1
    return ordered[min(rank, len(ordered)) - 1]


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help shows the script's docstring as written, and every option's default."""


def goal(what: str, met: bool, detail: str) -> bool:
    print(f"GOAL {'MET' if met else 'MISSED'}: {what} ({detail})", flush=True)
    return met


# -- realistic synthetic traffic ------------------------------------------------------------------------------

_CHROME_OS = [
    "Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 10_15_7", "X11; Linux x86_64",
    "X11; CrOS x86_64 14541.0.0",
]
_ANDROID = ["Linux; Android 10; K", "Linux; Android 13; SM-S911B", "Linux; Android 14; Pixel 8",
            "Linux; Android 12; SM-A525F", "Linux; Android 13; 2201116SG", "Linux; Android 11; moto g(30)"]
_IOS = ["16_6", "17_0", "17_1_2", "17_2", "17_4", "17_5_1", "18_0", "18_1"]
BOT_AGENTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Twitterbot/1.0",
    "WhatsApp/2.23.20.0",
    "TelegramBot (like TwitterBot)",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.0.0 Safari/537.36",
    "python-requests/2.31.0", "curl/8.4.0", "Go-http-client/1.1", "okhttp/4.12.0",
    "",  # no User-Agent at all: counted as a bot
]


def user_agents() -> tuple[list[str], list[str]]:
    """(human browsers, bots): ~330 distinct strings, the variety a real link sees in a day."""
    humans = []
    for version, system in itertools.product(range(112, 132), _CHROME_OS):
        humans.append(f"Mozilla/5.0 ({system}) AppleWebKit/537.36 (KHTML, like Gecko) "
                      f"Chrome/{version}.0.0.0 Safari/537.36")
    for version, system in itertools.product(range(118, 132, 2), _ANDROID):
        humans.append(f"Mozilla/5.0 ({system}) AppleWebKit/537.36 (KHTML, like Gecko) "
                      f"Chrome/{version}.0.0.0 Mobile Safari/537.36")
    for version, device in itertools.product(_IOS, ("iPhone; CPU iPhone OS", "iPad; CPU OS")):
        short = ".".join(version.split("_")[:2])
        humans.append(f"Mozilla/5.0 ({device} {version} like Mac OS X) AppleWebKit/605.1.15 "
                      f"(KHTML, like Gecko) Version/{short} Mobile/15E148 Safari/604.1")
        humans.append(f"Mozilla/5.0 ({device} {version} like Mac OS X) AppleWebKit/605.1.15 "
                      "(KHTML, like Gecko) CriOS/124.0.6367.111 Mobile/15E148 Safari/604.1")
    for version, system in itertools.product(range(115, 133), ("Windows NT 10.0; Win64; x64; rv:{v}.0",
                                                                 "X11; Linux x86_64; rv:{v}.0",
                                                                 "Macintosh; Intel Mac OS X 10.15; rv:{v}.0")):
        humans.append(f"Mozilla/5.0 ({system.format(v=version)}) Gecko/20100101 Firefox/{version}.0")
    for version in range(118, 131):
        humans.append("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                      f"Chrome/{version}.0.0.0 Safari/537.36 Edg/{version}.0.2210.91")
    for major, minor in itertools.product((16, 17, 18), (0, 1, 2, 3, 4, 5, 6)):
        humans.append(f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                      f"Version/{major}.{minor} Safari/605.1.15")
    for version in ("22.0", "23.0", "24.0", "25.0", "26.0"):
        humans.append("Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
                      f"SamsungBrowser/{version} Chrome/115.0.0.0 Mobile Safari/537.36")
    for app in ("Instagram 312.0.0.32.112", "FBAN/FBIOS;FBAV/452.0.0.43.109", "LinkedInApp/9.29.6418"):
        humans.append("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
                      f"(KHTML, like Gecko) Mobile/15E148 {app}")
    return humans, BOT_AGENTS


REFERRER_HOSTS = (
    ["www.google.com", "www.google.de", "www.google.co.uk", "t.co", "www.facebook.com", "l.facebook.com",
     "www.reddit.com", "old.reddit.com", "news.ycombinator.com", "www.linkedin.com", "lnkd.in", "duckduckgo.com",
     "www.bing.com", "mail.google.com", "outlook.live.com", "github.com", "medium.com", "substack.com",
     "www.youtube.com", "m.youtube.com", "discord.com", "web.whatsapp.com", "web.telegram.org"]
    + [f"blog{i}.example.{tld}" for i, tld in zip(range(180), itertools.cycle(("com", "org", "net", "io", "dev")))]
)
COUNTRIES = ["US", "US", "US", "DE", "GB", "FR", "IN", "BR", "JP", "CA", "NL", "ES", "IT", "PL", "SE", "AU", "KR",
             "MX", "TR", "ID", "NG", "ZA", "AR", "CH", "AT", "BE", "DK", "NO", "FI", "IE"]


@dataclass
class Traffic:
    """A reproducible source of click events: a skewed choice of links, visitors with stable agents."""

    link_ids: list[int]
    seed: int = 1
    zipf: float = 1.0  # link k gets a share ~ 1 / k**zipf
    bot_share: float = 0.12
    visitors: int = 60_000

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        humans, bots = user_agents()
        self.humans, self.bots = humans, bots
        # A visitor is an (anonymized IP, agent) pair that keeps its agent; popular agents are more common.
        human_weights = [1 / (k + 1) ** 0.8 for k in range(len(humans))]
        agents = rng.choices(humans, weights=human_weights, k=self.visitors)
        ips = []
        for _ in range(self.visitors):
            if rng.random() < 0.15:
                ips.append(f"2001:db8:{rng.randrange(65536):x}::")  # IPv6, anonymized to /48
            else:
                ips.append(f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.0")
        self.people = list(zip(ips, agents, strict=True))
        self.link_weights = list(itertools.accumulate(1 / (k + 1) ** self.zipf for k in range(len(self.link_ids))))
        self.rng = rng
        self.prefix = os.urandom(6).hex()
        self.counter = itertools.count(1)

    def events(self, count: int, start: float, end: float) -> list[ClickEvent]:
        """count events spread evenly over [start, end) unix seconds, in time order."""
        rng = self.rng
        links = rng.choices(self.link_ids, cum_weights=self.link_weights, k=count)
        step = (end - start) / max(count, 1)
        out = []
        for i in range(count):
            if rng.random() < self.bot_share:
                agent: str | None = rng.choice(self.bots)
                ip = f"{rng.choice((66, 157, 40, 52, 34))}.{rng.randrange(256)}.{rng.randrange(256)}.0"
            else:
                ip, agent = self.people[int(rng.paretovariate(1.2) * 97) % self.visitors]
            roll = rng.random()
            if roll < 0.45:
                referrer = None
            else:
                host = REFERRER_HOSTS[min(int(rng.expovariate(0.08)), len(REFERRER_HOSTS) - 1)]
                # Browsers send only the origin to other sites by default (strict-origin-when-cross-origin);
                # some pages opt into full URLs.
                path = "" if rng.random() < 0.7 else f"{'search?q=' if 'google' in host else 'p/'}{rng.randrange(5000)}"
                referrer = f"https://{host}/{path}"
            out.append(ClickEvent(
                id=f"{self.prefix}{next(self.counter):x}", link_id=links[i], at=start + step * i + rng.random() * step,
                referrer=referrer, user_agent=agent or None, bot=is_bot(agent or None), ip=ip,
                country=rng.choice(COUNTRIES) if rng.random() < 0.8 else None,
            ))  # fmt: skip
        return out


def run(main: object) -> int:
    """asyncio.run, on uvloop as boltlink's workers run (boltlink.workers.bootstrap.run_async)."""
    from boltlink.workers.bootstrap import run_async

    return run_async(main)  # type: ignore[arg-type]


__all__ = ["BenchTimeout", "HelpFormatter", "Traffic", "bound_run", "free_port", "goal", "percentile",
           "private_stream", "run", "scratch_postgres"]
