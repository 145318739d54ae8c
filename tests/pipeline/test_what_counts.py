"""What a click is and what is kept of it, end to end: HEAD and bots, IP anonymization, do-not-track, retention.

Each test runs a real embedded cluster (start-cluster -i 1: one API worker,
the aggregator, the analytics worker) and reads the results through the stats
API. With a single API worker every event lands in one spool file in request
order, and the aggregator consumes it in that order: once a click sent last is
counted, everything sent before it has been through the aggregator too, so
"nothing was recorded" is known, not merely not yet seen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pipeline_support import TARGET, PipelineCluster, holds, wait_for

from boltlink.config import load_config
from boltlink.events.model import ClickEvent, new_event_id
from boltlink.events.spool import SpoolWriter
from boltlink.store import create_store

pytestmark = pytest.mark.slow

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/130.0.0.0 Safari/537.36")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.5 Mobile/15E148 Safari/604.1")
PEOPLE = (CHROME, FIREFOX, IPHONE)
BOTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",  # link previews
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "WhatsApp/2.23.20.0 A",
    "Twitterbot/1.0",
)


def follow(client: httpx.Client, cluster: PipelineCluster, slug: str, method: str = "GET",
           **headers: str) -> None:
    """One redirect, which must work whatever is or is not recorded of it (user_agent= is User-Agent)."""
    response = client.request(method, f"{cluster.url}/{slug}",
                              headers={name.replace("_", "-"): value for name, value in headers.items()})
    assert response.status_code == 302, f"{method} /{slug}: {response.status_code} {response.text}"
    assert response.headers["Location"] == TARGET


def test_head_requests_and_bots_are_not_human_clicks(make_pipeline: Callable[..., PipelineCluster]) -> None:
    cluster = make_pipeline()
    cluster.prepare("h", "preview")
    cluster.start("-i", "1")
    humans, bots = 30, 12  # per user agent
    with httpx.Client(timeout=10) as client:
        for i in range(40):  # first: link previews that only look (HEAD), at both links
            follow(client, cluster, "h", "HEAD", user_agent=PEOPLE[i % len(PEOPLE)])
            follow(client, cluster, "preview", "HEAD", user_agent=BOTS[i % len(BOTS)])
        for i in range(max(humans, bots)):
            for agent in (PEOPLE if i < humans else ()) + (BOTS if i < bots else ()):
                follow(client, cluster, "h", user_agent=agent)
    cluster.assert_exactly("h", humans * len(PEOPLE) + bots * len(BOTS),
                           humans=humans * len(PEOPLE), bots=bots * len(BOTS))
    visits = cluster.visits("h")
    assert len(visits) == humans * len(PEOPLE) + bots * len(BOTS)
    assert {v["user_agent"] for v in visits if v["bot"]} == set(BOTS)
    assert {v["user_agent"] for v in visits if not v["bot"]} == set(PEOPLE)
    # The HEADs were sent before every GET above, so they would have been counted by now.
    assert cluster.totals("preview") == {"total": 0, "humans": 0, "bots": 0, "visitors": 0}
    assert cluster.visits("preview") == []


def test_ip_addresses_are_anonymized_and_a_do_not_track_link_records_nothing(
    make_pipeline: Callable[..., PipelineCluster],
) -> None:
    cluster = make_pipeline(trusted_proxies=["127.0.0.1"])  # ip_anonymization stays the default
    cluster.prepare("t")
    cluster.start("-i", "1")
    assert cluster.create_link("quiet", do_not_track=True)["do_not_track"] is True
    with httpx.Client(timeout=10) as client:
        for agent in PEOPLE + BOTS:
            follow(client, cluster, "quiet", user_agent=agent)  # first: redirects, and nothing else
        follow(client, cluster, "t", user_agent=CHROME)  # from 127.0.0.1 itself
        follow(client, cluster, "t", user_agent=CHROME, x_forwarded_for="203.0.113.77")
        follow(client, cluster, "t", user_agent=CHROME, x_forwarded_for="2001:db8:abcd:12:3456::1")
    cluster.assert_exactly("t", 3)
    assert sorted(v["ip"] for v in cluster.visits("t")) == ["127.0.0.0", "2001:db8:abcd::", "203.0.113.0"]
    assert cluster.totals("quiet")["total"] == 0
    assert cluster.link_clicks("quiet") == {"total": 0, "humans": 0, "bots": 0}
    assert cluster.visits("quiet") == []


def test_ip_anonymization_drop_stores_no_address(make_pipeline: Callable[..., PipelineCluster]) -> None:
    cluster = make_pipeline(ip_anonymization="drop")
    cluster.prepare("t")
    cluster.start("-i", "1")
    with httpx.Client(timeout=10) as client:
        for agent in PEOPLE:
            follow(client, cluster, "t", user_agent=agent)
    cluster.assert_exactly("t", len(PEOPLE))
    visits = cluster.visits("t")
    assert len(visits) == len(PEOPLE)
    assert [v["ip"] for v in visits] == [None] * len(PEOPLE)


def test_do_not_track_for_the_whole_deployment_records_nothing(make_pipeline: Callable[..., PipelineCluster]) -> None:
    cluster = make_pipeline(do_not_track=True)
    cluster.prepare("t")
    cluster.start("-i", "1")
    with httpx.Client(timeout=10) as client:
        for _ in range(20):
            for agent in PEOPLE + BOTS:
                follow(client, cluster, "t", user_agent=agent)
    # An event would be in the spool before its redirect answered; the aggregator counts it within
    # a fraction of a second (as the other tests show): neither may happen.
    holds(lambda: cluster.totals("t")["total"] == 0 and cluster.spool_bytes() == 0, 2.0, interval=0.1,
          what="no click recorded or queued")
    assert cluster.link_clicks("t") == {"total": 0, "humans": 0, "bots": 0}
    assert cluster.global_totals()["total"] == 0
    assert cluster.visits("t") == []


def test_retention_removes_old_raw_visits_and_keeps_the_counters(make_pipeline: Callable[..., PipelineCluster]) -> None:
    cluster = make_pipeline()  # visit_retention_days: the default, 90
    cluster.prepare("r")
    cluster.start("-i", "1")
    # The cluster's analytics worker runs every job once at start, then retention again an hour later:
    # once its first round is over, only the --once run below can remove anything.
    analytics = cluster.pids("analytics")[0]
    wait_for(lambda: f"analytics[{analytics}] boltlink.analytics: job spool:" in cluster.log_tail("analytics"),
             15, what="the analytics worker's first round of jobs")

    # Old clicks come the way every click comes, as events in the spool, dated 100 days ago.
    old_day = (datetime.now(UTC) - timedelta(days=100)).replace(hour=12, minute=0, second=0, microsecond=0)
    old, recent = 40, 25
    link_id = asyncio.run(_link_id(cluster, "r"))
    config = load_config(config_file=cluster.config_file, flags={"data_dir": str(cluster.data_dir)}, environ={})
    writer = SpoolWriter(config.spool_path, "retention-test", 1 << 20)
    for i in range(old):
        writer.write(ClickEvent(id=new_event_id(), link_id=link_id, at=old_day.timestamp() + i, referrer=None,
                                user_agent=CHROME, bot=False, ip="198.51.100.0", country=None).encode())
    writer.finish_file()
    with httpx.Client(timeout=10) as client:
        for i in range(recent):
            follow(client, cluster, "r", user_agent=PEOPLE[i % len(PEOPLE)])

    since = {"from": (old_day - timedelta(days=20)).isoformat()}
    cluster.assert_exactly("r", old + recent, since=since)
    before = _old_and_new(cluster.visits("r"))
    assert (len(before["old"]), len(before["new"])) == (old, recent)
    daily = cluster.read("/api/v1/links/r/stats", granularity="day", **since)
    assert _day_total(daily, old_day) == old

    cluster.ok("worker", "analytics", "--once")

    after = _old_and_new(cluster.visits("r"))
    assert after == {"old": [], "new": before["new"]}  # the raw visits past retention are gone, no others
    expected = {"total": old + recent, "humans": old + recent, "bots": 0}
    assert cluster.link_clicks("r") == expected  # the counters are kept
    assert {k: cluster.totals("r", **since)[k] for k in expected} == expected
    assert {k: cluster.global_totals(**since)[k] for k in expected} == expected
    daily = cluster.read("/api/v1/links/r/stats", granularity="day", **since)
    assert _day_total(daily, old_day) == old


async def _link_id(cluster: PipelineCluster, slug: str) -> int:
    config = load_config(config_file=cluster.config_file, flags={"data_dir": str(cluster.data_dir)}, environ={})
    store = create_store(config)
    await store.open()
    try:
        link = await store.get_link(slug)
    finally:
        await store.close()
    assert link is not None
    return link.id


def _old_and_new(visits: list[dict[str, object]]) -> dict[str, list[str]]:
    """Event ids of the visits older than 90 days, and of the others."""
    cutoff = time.time() - 90 * 86400
    split: dict[str, list[str]] = {"old": [], "new": []}
    for visit in visits:
        at = datetime.fromisoformat(str(visit["at"]).replace("Z", "+00:00")).timestamp()
        split["old" if at < cutoff else "new"].append(str(visit["event_id"]))
    return {key: sorted(ids) for key, ids in split.items()}


def _day_total(stats: dict[str, object], day: datetime) -> int:
    start = day.replace(hour=0).strftime("%Y-%m-%dT%H:%M:%S")
    points = [p for p in stats["series"] if str(p["start"]).startswith(start)]  # type: ignore[attr-defined, index]
    assert len(points) == 1, f"no series point for {start}"
    return int(points[0]["total"])
