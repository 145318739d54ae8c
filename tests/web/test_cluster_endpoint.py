"""GET /api/v1/cluster: the master's status for the web UI, under a cluster only."""

from __future__ import annotations

import pytest

from boltlink.errors import MasterUnavailable

STATUS = {
    "master": {"pid": 10, "version": "1.0", "build": "abc", "phase": "running", "uptime": 12.5,
               "address": "http://127.0.0.1:5000", "data_dir": "/srv/secret/data"},
    "processes": [
        {"name": "api-0", "id": 0, "role": "api", "pid": 11, "status": "online", "cpu": 3.5, "memory": 50_000_000,
         "restarts": 1, "uptime": 12.0, "requests_per_second": 4.2, "requests": 90, "p99_ms": 8.1,
         "error_rate": 0.0, "history": [1.0, 4.2], "figures": {}, "version": "1.0", "build": "abc", "reason": None},
        {"name": "aggregator", "id": 1, "role": "aggregator", "pid": None, "status": "starting", "cpu": 0.0,
         "memory": 0, "restarts": 0, "uptime": 0.0, "requests_per_second": 0.0, "requests": 0, "p99_ms": None,
         "error_rate": 0.0, "history": [], "figures": {}, "version": None, "build": None, "reason": None},
    ],
    "cluster": {"requests_per_second": 4.2, "in_flight": 0, "p99_ms": 8.1, "error_rate": 0.0, "history": [1.0, 4.2]},
}


def under_cluster(app, answer):
    async def ask():
        if isinstance(answer, Exception):
            raise answer
        return answer

    app.extensions["boltlink"].cluster_status = ask


async def test_under_serve_it_is_a_404_problem(client, auth):
    response = await client.get("/api/v1/cluster", headers=auth)

    assert response.status_code == 404
    assert "not running under a cluster" in (await response.get_json())["detail"]


async def test_under_a_cluster_it_lists_processes_and_rates(app, client, auth):
    under_cluster(app, STATUS)

    response = await client.get("/api/v1/cluster", headers=auth)

    assert response.status_code == 200
    body = await response.get_json()
    assert [p["name"] for p in body["processes"]] == ["api-0", "aggregator"]
    assert body["processes"][0]["requests_per_second"] == 4.2
    assert body["cluster"]["history"] == [1.0, 4.2]
    assert "/srv/secret" not in await response.get_data(as_text=True)  # server paths stay on the server


async def test_a_master_that_does_not_answer_is_a_503(app, client, auth):
    under_cluster(app, MasterUnavailable("the cluster master did not answer (status): timed out"))

    response = await client.get("/api/v1/cluster", headers=auth)

    assert response.status_code == 503


@pytest.mark.parametrize("config", ["sqlite"], indirect=True)
async def test_it_needs_a_key_with_stats_read(app, client, store, make_key):
    under_cluster(app, STATUS)
    links_only = await make_key(store, "links:write")

    assert (await client.get("/api/v1/cluster")).status_code == 401
    assert (await client.get("/api/v1/cluster", headers={"X-API-Key": links_only})).status_code == 403


@pytest.mark.parametrize("config", ["sqlite"], indirect=True)
async def test_it_is_in_the_openapi_document_with_security(client):
    spec = await (await client.get("/openapi.json")).get_json()

    operation = spec["paths"]["/api/v1/cluster"]["get"]
    assert {"200", "401", "403", "404"} <= set(operation["responses"])
    assert operation["security"] == [{"apiKey": []}, {"bearer": []}]
