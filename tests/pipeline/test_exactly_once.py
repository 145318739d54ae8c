"""Every redirect is one click in the stats, exactly once: under load, through crashes, through a Redis outage.

Each test runs a real cluster (start-cluster from the source tree: API workers,
the aggregator, the analytics worker), embedded (SQLite + spool files) or
distributed (PostgreSQL + a redis-server of the test's own), loads a real 302
redirect with scripts/loadgen.py, and reads the counts back from the stats API
as a user would: /api/v1/links/{slug}/stats, the link's `clicks` field and
/api/v1/stats must all reach exactly the number of redirects answered, and
still say so a while later (a click counted twice fails at once).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest
from pipeline_support import (
    BackgroundLoad,
    PipelineCluster,
    RedisServer,
    assert_clean_load,
    run_load,
    wait_for,
)

from boltlink.events.redis import GROUP, STREAM

pytestmark = pytest.mark.slow

CLICKS = 2000
STREAM_CLICKS = 3000  # paced, so that the stream lasts a few seconds
PACE = {"connections": 8, "pause": 0.01, "duration": 60.0}


def load_ok(load: BackgroundLoad, count: int, what: str) -> None:
    assert load.wait_until(lambda r: r.ok >= count, timeout=30), f"{what}: {load.result.summary()}"


def finish(load: BackgroundLoad) -> None:
    """Let the load run to its request count (leaving the `with` block early would cut it short)."""
    assert load.wait_until(lambda r: r.finished, timeout=60), load.result.summary()


def kill_the_aggregator_while_it_counts(cluster: PipelineCluster, load: BackgroundLoad) -> None:
    """SIGKILL the aggregator once it is committing batches of the running load; wait for its successor."""
    aggregator = cluster.pids("aggregator")[0]
    counted = cluster.totals("x")["total"]
    wait_for(lambda: cluster.totals("x")["total"] > counted, 15, interval=0.05,
             what=f"aggregator {aggregator} to count more than {counted}")
    assert not load.result.finished, "the load ended before the kill: make it longer"
    os.kill(aggregator, signal.SIGKILL)
    wait_for(lambda: cluster.respawned("aggregator", aggregator), 15, what="a new aggregator")


def test_n_redirects_show_as_exactly_n_clicks(pipeline: PipelineCluster) -> None:
    pipeline.prepare("x")
    pipeline.start("-i", "2")
    result = run_load(pipeline.url + "/x", connections=16, requests=CLICKS)
    assert_clean_load(result, CLICKS)
    pipeline.assert_exactly("x", CLICKS)


def test_an_aggregator_killed_mid_stream_is_respawned_and_counts_every_click_once(pipeline: PipelineCluster) -> None:
    pipeline.prepare("x")
    pipeline.start("-i", "2")
    with BackgroundLoad(pipeline.url + "/x", requests=STREAM_CLICKS, **PACE) as load:
        kill_the_aggregator_while_it_counts(pipeline, load)
        kill_the_aggregator_while_it_counts(pipeline, load)  # the respawned one too
        finish(load)
    assert_clean_load(load.result, STREAM_CLICKS)
    pipeline.assert_exactly("x", STREAM_CLICKS)


def test_api_workers_killed_right_after_answering_lose_no_click(pipeline: PipelineCluster) -> None:
    pipeline.prepare("x")
    pipeline.start("-i", "2")
    api_pids = pipeline.pids("api")
    aggregator = pipeline.pids("aggregator")[0]
    # A paused aggregator keeps every click of the load in the queue (spool or stream) until the workers
    # are dead: only what they made durable before answering can be counted.
    os.kill(aggregator, signal.SIGSTOP)
    try:
        result = run_load(pipeline.url + "/x", connections=16, requests=CLICKS)
        for pid in api_pids:
            os.kill(pid, signal.SIGKILL)
        assert_clean_load(result, CLICKS)
        wait_for(lambda: (set(pipeline.pids("api")).isdisjoint(api_pids)
                          and pipeline.all_online(2, role="api")), 15, what="two new API workers")
        assert pipeline.totals("x")["total"] == 0  # nothing was counted before the kill
    finally:
        os.kill(aggregator, signal.SIGCONT)
    pipeline.assert_exactly("x", CLICKS)


def test_redis_stopped_during_a_burst_and_started_again_loses_no_click_and_counts_none_twice(
    private_redis: RedisServer, postgres_url: str, make_pipeline: Callable[..., PipelineCluster],
) -> None:
    cluster = make_pipeline(redis=private_redis, database_url=postgres_url)
    cluster.prepare("x")
    cluster.start("-i", "2")
    with BackgroundLoad(cluster.url + "/x", requests=STREAM_CLICKS, **PACE) as load:
        load_ok(load, STREAM_CLICKS // 4, "a quarter of the burst before the outage")
        private_redis.stop(save=True)  # SHUTDOWN SAVE: what was in the stream comes back with it
        readiness: list[tuple[int, str]] = []

        def every_worker_degraded() -> bool:
            answers = [cluster.ready() for _ in range(6)]
            readiness.extend(answers)
            return all(answer == (200, "degraded") for answer in answers)

        wait_for(every_worker_degraded, 10, what="/ready to say degraded")
        assert {code for code, _ in readiness} == {200}, readiness  # never out of service for it
        down_at = load.result.ok
        load_ok(load, down_at + STREAM_CLICKS // 4, "redirects while Redis is down")
        assert cluster.spool_bytes() > 0  # the outage's clicks wait in the local spool
        private_redis.start()
        finish(load)
    assert_clean_load(load.result, STREAM_CLICKS)  # every redirect answered 302, outage or not
    cluster.assert_exactly("x", STREAM_CLICKS)
    assert cluster.ready() == (200, "ready")
    assert cluster.spool_bytes() == 0  # all shipped
    with private_redis.client() as client:
        assert client.xpending(STREAM, GROUP)["pending"] == 0


def test_redis_restarted_empty_gets_a_new_consumer_group_and_every_click_arrives(
    private_redis: RedisServer, postgres_url: str, make_pipeline: Callable[..., PipelineCluster],
) -> None:
    cluster = make_pipeline(redis=private_redis, database_url=postgres_url)
    cluster.prepare("x")
    cluster.start("-i", "2")
    before = 500
    assert_clean_load(run_load(cluster.url + "/x", connections=8, requests=before), before)
    cluster.assert_exactly("x", before, also_global=False)
    # Counted and acknowledged: a Redis without persistence that dies now takes no click with it
    # (what it would take while the stream holds unread entries, no application can get back).
    with private_redis.client() as client:
        wait_for(lambda: client.xpending(STREAM, GROUP)["pending"] == 0, 10, what="every entry acknowledged")
    private_redis.crash()
    with BackgroundLoad(cluster.url + "/x", requests=STREAM_CLICKS, **PACE) as load:
        load_ok(load, STREAM_CLICKS // 3, "redirects while Redis is down")
        assert cluster.ready() == (200, "degraded")
        private_redis.start()  # empty: no stream, no consumer group
        finish(load)
    assert_clean_load(load.result, STREAM_CLICKS)
    cluster.assert_exactly("x", before + STREAM_CLICKS)
    assert cluster.spool_bytes() == 0
