"""/metrics under a real cluster: figures summed over every worker, never going backwards.

Each test starts its own master (cluster_harness.py kills whatever it started)
and polls with a timeout: workers report their counts about once a second.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from cluster_harness import Cluster, free_port, wait_for
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

MakeCluster = Callable[..., Cluster]
REDIRECTS = "boltlink_http_requests_total", (("route", "/<slug>"), ("status_class", "3xx"))


def scrape(url: str, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def redirect(cluster: Cluster, count: int) -> None:
    for _ in range(count):  # a new connection each: the workers share them out
        assert cluster.get("/go").status_code == 302


def test_metrics_sum_every_api_worker_and_survive_a_reload(cluster: Cluster):
    cluster.start("-i", "2")
    created = cluster.run("links", "create", "https://example.com/landing", "--slug", "go")
    assert created.returncode == 0, created.stderr
    redirect(cluster, 60)
    seen: list[float] = []

    def redirects_counted() -> float:
        value = scrape(cluster.url + "/metrics").get(REDIRECTS, 0.0)
        seen.append(value)
        return value

    wait_for(lambda: redirects_counted() == 60, timeout=20, what="60 redirects in /metrics")
    workers = cluster.api_workers()
    assert len(workers) == 2 and all(w["requests"] > 0 for w in workers), workers  # both served some

    old = cluster.api_pids()
    reload = cluster.run("reload")
    assert reload.returncode == 0, reload.stderr
    assert cluster.api_pids().isdisjoint(old)  # every API worker was replaced
    assert redirects_counted() >= 60  # the replaced workers' counts are kept
    redirect(cluster, 40)
    wait_for(lambda: redirects_counted() == 100, timeout=20, what="100 redirects in /metrics after the reload")
    assert seen == sorted(seen), f"the counter went backwards: {seen}"

    figures = scrape(cluster.url + "/metrics")
    assert figures[("boltlink_redirects_total", ())] == 100
    assert figures[("boltlink_click_events_queued_total", ())] == 100
    wait_for(lambda: scrape(cluster.url + "/metrics")[("boltlink_click_events_aggregated_total", ())] == 100,
             timeout=20, what="the aggregator's 100 clicks in /metrics")
    for name in ("api-0", "api-1", "aggregator", "analytics"):
        role = name.split("-")[0]
        assert figures[("boltlink_process_up", (("process", name), ("role", role)))] == 1
        assert figures[("boltlink_process_resident_memory_bytes", (("process", name), ("role", role)))] > 0


def test_metrics_on_their_own_port_behind_a_token(make_cluster: MakeCluster):
    port = free_port()
    cluster = make_cluster(metrics_port=port, metrics_token="s3cret")
    cluster.start("-i", "1")
    url = f"http://127.0.0.1:{port}/metrics"
    refused = httpx.get(url, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["www-authenticate"].startswith("Bearer")
    for _ in range(5):
        cluster.get("/health")
    wait_for(lambda: scrape(url, Authorization="Bearer s3cret").get(
        ("boltlink_http_requests_total", (("route", "/health"), ("status_class", "2xx")))) == 5,
        timeout=20, what="5 /health requests on the metrics port")
    assert cluster.get("/metrics").status_code == 404  # moved off the API port
    assert httpx.get(f"http://127.0.0.1:{port}/other", timeout=10).status_code == 404


def test_a_cluster_of_api_workers_only(make_cluster: MakeCluster):
    cluster = make_cluster(env={"BOLTLINK_ROLES": "api"})  # as the Kubernetes API pods run it
    cluster.start("-i", "2")
    assert sorted(row["name"] for row in cluster.processes()) == ["api-0", "api-1"]
    assert cluster.get("/health").status_code == 200
