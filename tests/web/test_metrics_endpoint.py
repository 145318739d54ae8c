"""GET /metrics from one process (`serve`): Prometheus text that parses, counting what was sent."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from boltlink.config import Config
from boltlink.shortener import LinkDraft, LinkRules, create_link
from boltlink.web import create_app

HUMAN = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, through prometheus_client's own parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(parsed: dict, name: str, **labels: str) -> float:
    return parsed.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_requests_by_route_and_class_and_parse(client, store, config):
    await create_link(store, LinkDraft(url="https://example.com", slug="go"), LinkRules.for_config(config))
    for _ in range(5):
        assert (await client.get("/go", headers=HUMAN)).status_code == 302
    await client.head("/go")
    assert (await client.get("/nope")).status_code == 404
    assert (await client.get("/no/such/path")).status_code == 404
    assert (await client.get("/health")).status_code == 200

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    parsed = samples(await response.get_data(as_text=True))
    total = "boltlink_http_requests_total"
    assert value(parsed, total, route="/<slug>", status_class="3xx") == 6  # HEAD is answered too
    assert value(parsed, total, route="/<slug>", status_class="4xx") == 1
    assert value(parsed, total, route="unmatched", status_class="4xx") == 1  # no route: no path as a label
    assert value(parsed, total, route="/health", status_class="2xx") == 1
    assert value(parsed, "boltlink_redirects_total") == 6
    assert value(parsed, "boltlink_click_events_queued_total") == 5  # GETs only: HEAD is not a click
    assert value(parsed, "boltlink_http_request_duration_seconds_count") == 9
    assert value(parsed, "boltlink_http_request_duration_seconds_bucket", le="+Inf") == 9
    assert value(parsed, "boltlink_http_request_duration_seconds_sum") > 0
    assert value(parsed, "boltlink_process_up", process="serve", role="api") == 1
    assert value(parsed, "boltlink_process_resident_memory_bytes", process="serve", role="api") > 10_000_000
    assert any(name == "boltlink_build_info" for name, _ in parsed)


@pytest.mark.parametrize("config", ["sqlite"], indirect=True)
async def test_a_metrics_token_is_required_when_set(tmp_path, store):
    config = Config(data_dir=str(tmp_path), metrics_token="s3cret")
    client = create_app(config, store).test_client()
    refused = await client.get("/metrics")
    assert refused.status_code == 401
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})).status_code == 200


@pytest.mark.parametrize("config", ["sqlite"], indirect=True)
async def test_metrics_moved_to_their_own_port_are_not_on_the_api_port(tmp_path, store):
    client = create_app(Config(data_dir=str(tmp_path), metrics_port=9101), store).test_client()
    response = await client.get("/metrics")
    assert response.status_code == 404
    assert "9101" in (await response.get_json())["detail"]
