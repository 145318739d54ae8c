"""How fast ClickStore.record_clicks takes batches: a speed check, not a test (pytest does not collect it).

    python tests/store/bench_record_clicks.py [--sqlite PATH] [--postgres URL] [--events N] [--batch N]

Records synthetic visits over ~1,000 links, roughly in time order as the
aggregator would hand them over, and prints events/s per backend. The
SQLite file and the PostgreSQL database should be fresh (tables get
created; nothing is cleaned up). The end-to-end benchmark through the real
aggregator is scripts/bench_aggregator.py.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from boltlink.store.base import NewLink
from boltlink.store.clicks import ClickStore, Visit
from boltlink.store.postgres import PostgresStore
from boltlink.store.sqlite import SqliteStore

AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
HOSTS = [None, "google.com", "t.co", "news.ycombinator.com", "reddit.com", "bing.com", "duckduckgo.com",
         *(f"blog{i}.example" for i in range(14))]  # fmt: skip
BROWSERS = ["Chrome", "Firefox", "Safari", "Edge", "Chrome Mobile", "Mobile Safari", "Opera", None]
SYSTEMS = ["Windows", "Mac OS X", "Linux", "Android", "iOS", None]
DEVICES = ["Other", "iPhone", "Samsung SM-G991B", None]
COUNTRIES = [None, "US", "DE", "FR", "GB", "IN", "BR", "JP", "CA", "NL", "ES", "IT", "PL", "SE", "AU"]


def synthetic(link_ids: list[int], count: int, start: datetime, seed: int = 1, zipf: float = 0.0) -> list[Visit]:
    """Visits over the links, uniformly or (zipf > 0) with link k getting a share ~ 1 / k**zipf."""
    rng = random.Random(seed)
    span = timedelta(hours=2) / count  # the events of ~2 hours, in time order
    weights = [1 / (k + 1) ** zipf for k in range(len(link_ids))]
    chosen = rng.choices(link_ids, weights=weights, k=count)
    visits = []
    for i in range(count):
        at = start + span * i
        host = rng.choice(HOSTS)
        visits.append(Visit(
            event_id=f"{seed:016x}{i:x}", link_id=chosen[i], at=at,
            referrer=f"https://{host}/some/page?q={i % 97}" if host else None, referrer_host=host,
            user_agent=AGENT,
            browser=rng.choice(BROWSERS), os=rng.choice(SYSTEMS), device=rng.choice(DEVICES), bot=rng.random() < 0.1,
            ip=f"10.{rng.randrange(256)}.{rng.randrange(256)}.0", country=rng.choice(COUNTRIES),
            visitor=f"{rng.randrange(50_000):016x}",
        ))  # fmt: skip
    return visits


async def bench(name: str, store: ClickStore, events: int, batch: int, links: int, zipf: float) -> float:
    await store.open()  # type: ignore[attr-defined]
    try:
        link_ids = [(await store.create_link(NewLink(slug=f"b{i}", url="https://example.com/"))).id  # type: ignore[attr-defined]
                    for i in range(links)]  # fmt: skip
        visits = synthetic(link_ids, events, datetime(2025, 3, 1, 9, 40, tzinfo=UTC), zipf=zipf)
        started = time.perf_counter()
        recorded = 0
        for i in range(0, events, batch):
            recorded += await store.record_clicks(visits[i : i + batch], source="bench", offsets={"f": i + batch})
        elapsed = time.perf_counter() - started
        assert recorded == events, recorded
        shape = f"zipf {zipf}" if zipf else "uniform"
        print(f"{name}: {events} events over {links} links ({shape}) in batches of {batch}:"
              f" {elapsed:.2f} s = {events / elapsed:,.0f} events/s")
        return events / elapsed
    finally:
        await store.close()  # type: ignore[attr-defined]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sqlite", type=Path, default=Path(tempfile.mkdtemp()) / "bench.sqlite3")
    parser.add_argument("--postgres", default=None, help="URL of an empty database")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--links", type=int, default=1_000)
    parser.add_argument("--zipf", type=float, default=0.0, help="skew of the link choice (0: uniform)")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    if not args.skip_sqlite:
        await bench("SQLite", SqliteStore(args.sqlite), args.events, args.batch, args.links, args.zipf)
    if args.postgres:
        await bench("PostgreSQL", PostgresStore(args.postgres), args.events, args.batch, args.links, args.zipf)


if __name__ == "__main__":
    asyncio.run(main())
