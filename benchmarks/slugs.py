"""The one slug set every contender of scripts/bench.py serves: boltlink's links and the baselines' dicts.

s00000 … s09999 -> https://example.com/landing/<i>, deterministic so that a
baseline started by hypercorn or uvicorn in another process builds exactly the
links bench.py wrote into boltlink's store. BENCH_SLUG_COUNT changes the count
for every one of them (benchmarks/random_slug.lua reads it too).
"""

from __future__ import annotations

import os

SLUG_COUNT = int(os.environ.get("BENCH_SLUG_COUNT", "10000"))
SLUG_FORMAT = "s{:05d}"  # random_slug.lua builds the same paths with "/s%05d"


def slug(index: int) -> str:
    return SLUG_FORMAT.format(index)


def target(index: int) -> str:
    return f"https://example.com/landing/{index}"


def links(count: int = SLUG_COUNT) -> dict[str, str]:
    """slug -> target URL for the first `count` slugs."""
    return {slug(i): target(i) for i in range(count)}
