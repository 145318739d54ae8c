"""The analytics worker: scheduled, idempotent housekeeping that keeps statistics fast and small.

    rollup      every 5 min   complete days: hourly counters -> daily counters
    retention   every hour    raw visits past visit_retention_days, hourly rows past hourly_retention_days
    spool       every hour    temporary spool files abandoned by crashed writers

Each run is logged with its duration. Running a job twice changes nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from boltlink.config import Config
from boltlink.errors import BoltlinkError
from boltlink.store import create_store
from boltlink.store.clicks import ClickStore
from boltlink.workers.runtime import Telemetry

log = logging.getLogger("boltlink.analytics")

STALE_TEMP_SECONDS = 3600


@dataclass(frozen=True)
class Job:
    name: str
    every: float  # seconds
    run: Callable[[Config, ClickStore], Awaitable[str]]  # returns what it did, for the log


async def rollup(config: Config, store: ClickStore) -> str:
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    days = await store.rollup_daily(today)
    return f"rolled up {days} day(s)"


async def retention(config: Config, store: ClickStore) -> str:
    now = datetime.now(timezone.utc)
    visits, hourly = await store.prune(
        visits_before=now - timedelta(days=config.visit_retention_days),
        hourly_before=now - timedelta(days=config.hourly_retention_days),
    )
    return f"deleted {visits} raw visit(s) and {hourly} hourly row(s)"


async def spool_temp_files(config: Config, store: ClickStore) -> str:
    removed = 0
    cutoff = time.time() - STALE_TEMP_SECONDS
    for path in config.spool_path.glob(".*.tmp"):  # a writer died between create and rename
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return f"removed {removed} abandoned temporary file(s)"


JOBS = (Job("rollup", 300, rollup), Job("retention", 3600, retention), Job("spool", 3600, spool_temp_files))


async def run_jobs_once(config: Config, store: ClickStore) -> None:
    for job in JOBS:
        await _run_job(job, config, store)


async def _run_job(job: Job, config: Config, store: ClickStore) -> bool:
    started = time.monotonic()
    try:
        outcome = await job.run(config, store)
    except BoltlinkError as exc:
        log.error("job %s failed after %.2f s: %s", job.name, time.monotonic() - started, exc.detail)
        return False
    log.info("job %s: %s in %.3f s", job.name, outcome, time.monotonic() - started)
    return True


async def run_analytics(config: Config, stop: asyncio.Event, telemetry: Telemetry) -> None:
    store = create_store(config)
    await store.open()
    telemetry.ready()
    due = {job.name: 0.0 for job in JOBS}  # everything runs once at start
    try:
        while not stop.is_set():
            now = time.monotonic()
            for job in JOBS:
                if now >= due[job.name]:
                    ok = await _run_job(job, config, store)
                    # A failed job is tried again in a minute, not at its next slot.
                    due[job.name] = time.monotonic() + (job.every if ok else 60)
                    telemetry.figures[f"{job.name}_ok"] = ok
            next_due = min(due.values()) - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.1, next_due))
    finally:
        await store.close()
        log.info("stopped")
