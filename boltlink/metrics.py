"""The figures /metrics, `status` and `monit` show, and their Prometheus text format.

Every process counts from zero when it starts (boltlink.web.telemetry for the
API, the aggregator's telemetry figures), and sends its counts to the master
about once a second. The master adds them up with Totals: the live processes'
latest counts plus what the processes that are gone had counted, so a
cluster-wide counter never goes backwards when a worker is replaced.

A snapshot (what render() takes) is a plain dict, so it crosses the control
socket as JSON:

    {"build": {"version", "build"},
     "http": {"routes": {route: {class: n}}, "latency": [n per bucket, + over], "latency_sum": s,
              "in_flight": n},
     "clicks_queued": n, "clicks_aggregated": n,
     "aggregator": {"lag": s, "events_per_second": x, "backlog": n | None} | None,
     "processes": [{"name", "role", "pid", "status", "cpu", "memory", "restarts"}]}
"""

from __future__ import annotations

import hmac
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psutil

from boltlink import __version__, build_id

# Upper bounds in seconds, as Prometheus' client libraries default to, plus 1 ms for redirects.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
REDIRECT_ROUTE = "/<slug>"


class Totals:
    """Counts summed over processes; add() the ones that are gone once, and the live ones per snapshot."""

    def __init__(self) -> None:
        self.routes: dict[str, dict[str, int]] = {}
        self.latency = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.clicks_queued = 0
        self.clicks_aggregated = 0

    def add(self, counts: Mapping[str, Any]) -> Totals:
        """Add one process's counters (its heartbeat: see RequestCounters.snapshot and the aggregator)."""
        for route, classes in (counts.get("routes") or {}).items():
            into = self.routes.setdefault(route, dict.fromkeys(STATUS_CLASSES, 0))
            for status_class, count in classes.items():
                into[status_class] = into.get(status_class, 0) + int(count)
        latency = counts.get("latency") or ()
        if len(latency) == len(self.latency):
            self.latency = [a + int(b) for a, b in zip(self.latency, latency, strict=True)]
        self.latency_sum += float(counts.get("latency_sum", 0.0))
        self.clicks_queued += int(counts.get("clicks_queued", 0))
        self.clicks_aggregated += int(counts.get("recorded", 0))
        return self

    def plus(self, more: Iterable[Mapping[str, Any]]) -> Totals:
        """A copy with more processes' counters added."""
        total = Totals().add(self.as_counts())
        for counts in more:
            total.add(counts)
        return total

    def as_counts(self) -> dict[str, Any]:
        """The same shape as one process's counters, so Totals add up like processes do."""
        return {"routes": self.routes, "latency": self.latency, "latency_sum": self.latency_sum,
                "clicks_queued": self.clicks_queued, "recorded": self.clicks_aggregated}


def build_info() -> dict[str, str]:
    return {"version": __version__, "build": build_id()}


def this_process(name: str, role: str) -> dict[str, Any]:
    """The processes row for a process that serves its own /metrics (`serve`, or a role alone)."""
    with _self.oneshot():
        cpu, memory = _self.cpu_percent(None), _self.memory_info().rss
    return {"name": name, "role": role, "pid": os.getpid(), "status": "online", "cpu": cpu, "memory": memory,
            "restarts": 0}


_self = psutil.Process()
_self.cpu_percent(None)  # the first call always says 0.0: prime it


def authorized(header: str | None, token: str | None) -> bool:
    """Whether an Authorization header carries the metrics token (always, when no token is set)."""
    if token is None:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def quantile(latency: Sequence[int], q: float) -> float | None:
    """The q-quantile in seconds from bucket counts, interpolated in its bucket (as histogram_quantile does).

    None without observations; the highest bound when it falls over the top bucket.
    """
    count = sum(latency)
    if count == 0:
        return None
    rank = q * count
    seen = 0
    for index, in_bucket in enumerate(latency):
        if in_bucket and seen + in_bucket >= rank:
            if index == len(LATENCY_BUCKETS):
                return LATENCY_BUCKETS[-1]
            low = LATENCY_BUCKETS[index - 1] if index else 0.0
            return low + (LATENCY_BUCKETS[index] - low) * (rank - seen) / in_bucket
        seen += in_bucket
    return LATENCY_BUCKETS[-1]


# -- the Prometheus text format (version 0.0.4) -------------------------------------------------------

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render(snapshot: Mapping[str, Any]) -> str:
    out = _Writer()
    build = snapshot.get("build") or {}
    out.family("boltlink_build_info", "gauge", "The running version and build (always 1).")
    out.sample("boltlink_build_info", 1, version=build.get("version", ""), build=build.get("build", ""))

    http = snapshot.get("http") or {}
    routes: Mapping[str, Mapping[str, int]] = http.get("routes") or {}
    out.family("boltlink_http_requests_total", "counter", "HTTP requests answered, by route and status class.")
    for route in sorted(routes):
        for status_class in STATUS_CLASSES:
            count = routes[route].get(status_class, 0)
            if count:
                out.sample("boltlink_http_requests_total", count, route=route, status_class=status_class)
    latency = list(http.get("latency") or [0] * (len(LATENCY_BUCKETS) + 1))
    out.family("boltlink_http_request_duration_seconds", "histogram",
               "Time from a request's arrival to the end of its response, every route.")
    cumulative = 0
    for bound, count in zip((*LATENCY_BUCKETS, math.inf), latency, strict=True):
        cumulative += count
        out.sample("boltlink_http_request_duration_seconds_bucket", cumulative, le=_number(bound))
    out.sample("boltlink_http_request_duration_seconds_sum", float(http.get("latency_sum", 0.0)))
    out.sample("boltlink_http_request_duration_seconds_count", cumulative)
    out.family("boltlink_http_requests_in_flight", "gauge", "Requests being handled now.")
    out.sample("boltlink_http_requests_in_flight", int(http.get("in_flight", 0)))

    redirects = sum(count for status_class, count in (routes.get(REDIRECT_ROUTE) or {}).items()
                    if status_class == "3xx")
    out.family("boltlink_redirects_total", "counter", "Visitors sent on to a link's target.")
    out.sample("boltlink_redirects_total", redirects)
    out.family("boltlink_click_events_queued_total", "counter", "Click events queued by redirects.")
    out.sample("boltlink_click_events_queued_total", int(snapshot.get("clicks_queued", 0)))
    out.family("boltlink_click_events_aggregated_total", "counter",
               "Click events recorded into the statistics by the aggregator.")
    out.sample("boltlink_click_events_aggregated_total", int(snapshot.get("clicks_aggregated", 0)))
    aggregator = snapshot.get("aggregator")
    if aggregator is not None:
        out.family("boltlink_aggregator_lag_seconds", "gauge",
                   "Age of the oldest click event in the aggregator's last batch when it was committed.")
        out.sample("boltlink_aggregator_lag_seconds", float(aggregator.get("lag") or 0.0))
        out.family("boltlink_aggregator_events_per_second", "gauge", "Click events recorded per second.")
        out.sample("boltlink_aggregator_events_per_second", float(aggregator.get("events_per_second") or 0.0))

    processes = snapshot.get("processes") or []
    for name, kind, help_text, key in (
        ("boltlink_process_up", "gauge", "1 while the process is online.", None),
        ("boltlink_process_cpu_percent", "gauge", "CPU use over the last second (100 = one core).", "cpu"),
        ("boltlink_process_resident_memory_bytes", "gauge",
         "Resident memory; pages shared with other processes count in each.", "memory"),
        ("boltlink_process_restarts_total", "counter", "Times the process's slot was restarted.", "restarts"),
    ):
        out.family(name, kind, help_text)
        for process in processes:
            value = (1 if process.get("status") == "online" else 0) if key is None else process.get(key) or 0
            out.sample(name, value, process=process.get("name", ""), role=process.get("role", ""))
    return out.text()


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: str) -> None:
        if labels:
            pairs = ",".join(f'{key}="{_escape(str(text))}"' for key, text in labels.items())
            self.lines.append(f"{name}{{{pairs}}} {_number(value)}")
        else:
            self.lines.append(f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, float):
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return str(value)
