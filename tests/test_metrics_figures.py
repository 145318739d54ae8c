"""The arithmetic behind /metrics, status and monit: quantiles, totals, rates over a window."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from boltlink.cluster.telemetry import ClusterTelemetry, ProcessRates
from boltlink.metrics import LATENCY_BUCKETS, Totals, authorized, quantile, render

EMPTY = [0] * (len(LATENCY_BUCKETS) + 1)


def buckets(**at: int) -> list[int]:
    """Bucket counts from {bound in ms: count}, e.g. buckets(ms5=3) -> 3 observations in the <=5 ms bucket."""
    counts = list(EMPTY)
    for key, count in at.items():
        bound = float(key.removeprefix("ms").replace("_", ".")) / 1000
        counts[LATENCY_BUCKETS.index(bound)] += count
    return counts


def test_quantile_interpolates_inside_its_bucket():
    assert quantile(EMPTY, 0.99) is None
    assert quantile(buckets(ms1=100), 0.5) == pytest.approx(0.0005)
    # 98 fast, 2 slow: the 99th percentile is in the (5, 10] ms bucket, halfway.
    assert quantile(buckets(ms1=98, ms10=2), 0.99) == pytest.approx(0.0075)
    over = list(EMPTY)
    over[-1] = 5
    assert quantile(over, 0.99) == LATENCY_BUCKETS[-1]


def test_totals_add_processes_and_keep_what_retired_ones_counted():
    totals = Totals()
    totals.add({"routes": {"/<slug>": {"3xx": 4}}, "latency": buckets(ms1=4), "latency_sum": 0.002,
                "clicks_queued": 4})
    live = [{"routes": {"/<slug>": {"3xx": 6, "4xx": 1}}, "latency": buckets(ms5=7), "clicks_queued": 6},
            {"recorded": 9}]
    summed = totals.plus(live)
    assert summed.routes["/<slug>"] == {"2xx": 0, "3xx": 10, "4xx": 1, "5xx": 0}
    assert sum(summed.latency) == 11 and summed.clicks_queued == 10 and summed.clicks_aggregated == 9
    assert totals.routes["/<slug>"]["3xx"] == 4  # plus() leaves the retired totals alone


def test_process_rates_give_requests_per_second_p99_and_errors_over_the_window():
    rates = ProcessRates()
    rates.add({"requests": 0, "by_class": {"5xx": 0}, "latency": EMPTY}, now=100.0)
    rates.add({"requests": 50, "by_class": {"5xx": 5}, "latency": buckets(ms1=45, ms100=5)}, now=101.0)
    assert rates.requests_per_second == 50.0
    figures = rates.figures()
    assert figures["error_rate"] == 0.1 and 50 < figures["p99_ms"] <= 100
    # Twelve quiet seconds later the window holds no request: no p99, no errors.
    for second in range(102, 114):
        rates.add({"requests": 50, "by_class": {"5xx": 5}, "latency": buckets(ms1=45, ms100=5)}, now=second)
    assert rates.figures() == {"p99_ms": None, "error_rate": 0.0}
    assert rates.requests_per_second == 0.0 and list(rates.history)[:2] == [0.0, 50.0]


def test_cluster_counters_include_retired_workers():
    telemetry = ClusterTelemetry()
    telemetry.retire({"routes": {"/health": {"2xx": 3}}, "latency": buckets(ms1=3)})
    live = ProcessRates()
    live.add({"routes": {"/health": {"2xx": 2}}, "latency": buckets(ms1=2), "in_flight": 1})
    snapshot = telemetry.snapshot([("api", live)], [])
    assert snapshot["http"]["routes"]["/health"]["2xx"] == 5 and snapshot["http"]["in_flight"] == 1
    families = {f.name: f for f in text_string_to_metric_families(render(snapshot))}
    assert families["boltlink_http_request_duration_seconds"].type == "histogram"
    assert families["boltlink_http_requests"].type == "counter"


def test_label_values_are_escaped():
    text = render({"http": {"routes": {'/a"b\\c\nd': {"2xx": 1}}}})
    [sample] = [s for f in text_string_to_metric_families(text) for s in f.samples
                if s.name == "boltlink_http_requests_total"]
    assert sample.labels["route"] == '/a"b\\c\nd'


@pytest.mark.parametrize(("header", "token", "expected"), [
    (None, None, True), (None, "t", False), ("Bearer t", "t", True), ("bearer t", "t", True),
    ("Bearer x", "t", False), ("Basic t", "t", False), ("Bearer", "t", False),
])
def test_authorized(header, token, expected):
    assert authorized(header, token) is expected
