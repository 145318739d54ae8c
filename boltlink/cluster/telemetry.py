"""What the master makes of its workers' heartbeats: rates, p99, error rates, history, cluster totals.

A heartbeat carries counts since the worker started (boltlink.metrics); rates
come from the difference between heartbeats. p99 and error rate look at the
last WINDOW_SECONDS, so they show what is happening now, not since the start.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable, Mapping
from typing import Any

from boltlink.metrics import LATENCY_BUCKETS, Totals, build_info, quantile

WINDOW_SECONDS = 10.0  # p99 and error rate: over the last this long
HISTORY_LENGTH = 60  # requests/s samples kept for sparklines (one a second)


class ProcessRates:
    """One worker's rates, from its heartbeats."""

    def __init__(self) -> None:
        self.counts: dict[str, Any] = {}  # the latest heartbeat
        self.requests_per_second = 0.0
        self.history: collections.deque[float] = collections.deque(maxlen=HISTORY_LENGTH)
        # (monotonic time, requests, 5xx, latency bucket counts) per heartbeat within the window
        self._samples: collections.deque[tuple[float, int, int, list[int]]] = collections.deque()

    def add(self, counts: dict[str, Any], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.counts = counts
        requests = int(counts.get("requests", 0))
        errors = int((counts.get("by_class") or {}).get("5xx", 0))
        latency = [int(n) for n in counts.get("latency") or ()] or [0] * (len(LATENCY_BUCKETS) + 1)
        if self._samples:
            then, before = self._samples[-1][:2]
            if now > then:
                self.requests_per_second = max(0.0, (requests - before) / (now - then))
        self.history.append(round(self.requests_per_second, 1))
        self._samples.append((now, requests, errors, latency))
        while len(self._samples) > 2 and self._samples[1][0] <= now - WINDOW_SECONDS:
            self._samples.popleft()  # the oldest kept sample is the window's start

    def window(self) -> tuple[int, int, list[int]]:
        """Requests, 5xx answers and latency bucket counts within the window."""
        if len(self._samples) < 2:
            return 0, 0, [0] * (len(LATENCY_BUCKETS) + 1)
        _, requests0, errors0, latency0 = self._samples[0]
        _, requests1, errors1, latency1 = self._samples[-1]
        return requests1 - requests0, errors1 - errors0, [b - a for a, b in zip(latency0, latency1, strict=True)]

    def figures(self) -> dict[str, Any]:
        return window_figures([self.window()])


def window_figures(windows: Iterable[tuple[int, int, list[int]]]) -> dict[str, Any]:
    """p99 (ms, None when idle) and error rate (0..1) over the summed windows of some processes."""
    requests = errors = 0
    latency = [0] * (len(LATENCY_BUCKETS) + 1)
    for window_requests, window_errors, window_latency in windows:
        requests += window_requests
        errors += window_errors
        latency = [a + b for a, b in zip(latency, window_latency, strict=True)]
    p99 = quantile(latency, 0.99)
    return {"p99_ms": round(p99 * 1000, 2) if p99 is not None else None,
            "error_rate": round(errors / requests, 4) if requests else 0.0}


class ClusterTelemetry:
    """Totals that survive worker replacement, and the cluster's requests/s history."""

    def __init__(self) -> None:
        self.retired = Totals()  # what workers that are gone had counted
        self.history: collections.deque[float] = collections.deque(maxlen=HISTORY_LENGTH)

    def retire(self, counts: Mapping[str, Any]) -> None:
        """A worker exited: keep its last counts in the totals."""
        self.retired.add(counts)

    def tick(self, rates: Iterable[ProcessRates]) -> None:
        """Once a second: the cluster's requests/s for the history."""
        self.history.append(round(sum(r.requests_per_second for r in rates), 1))

    def summary(self, rates: list[ProcessRates]) -> dict[str, Any]:
        """The cluster row of status and monit."""
        return {
            "requests_per_second": round(sum(r.requests_per_second for r in rates), 1),
            "in_flight": sum(int(r.counts.get("in_flight", 0)) for r in rates),
            **window_figures(r.window() for r in rates),
            "history": list(self.history),
        }

    def snapshot(self, live: list[tuple[str, ProcessRates]], rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Everything /metrics shows (boltlink.metrics.render): live (role, rates) pairs, status rows."""
        totals = self.retired.plus(r.counts for _, r in live)
        aggregator = next((r.counts for role, r in live if role == "aggregator" and r.counts), None)
        return {
            "build": build_info(),
            "http": {**totals.as_counts(), "in_flight": sum(int(r.counts.get("in_flight", 0)) for _, r in live)},
            "clicks_queued": totals.clicks_queued,
            "clicks_aggregated": totals.clicks_aggregated,
            "aggregator": None if aggregator is None else {
                key: aggregator.get(key) for key in ("lag", "events_per_second", "backlog", "batch_size")
            },
            "processes": [{key: row.get(key) for key in ("name", "role", "pid", "status", "cpu", "memory",
                                                         "restarts")} for row in rows],
        }
