"""ClickEvent -> Visit: what the aggregator derives for the stats breakdowns and unique visitors."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boltlink.events.enrich import referrer_host, to_visit
from boltlink.events.model import ClickEvent

CHROME_WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/124.0.0.0 Safari/537.36")
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                 "Version/17.4 Mobile/15E148 Safari/604.1")
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def click(**fields: object) -> ClickEvent:
    values: dict[str, object] = dict(id="e1", link_id=3, at=at("2024-05-01T12:00:00"), referrer=None,
                                     user_agent=CHROME_WINDOWS, bot=False, ip="203.0.113.0", country="FR")
    values.update(fields)
    return ClickEvent(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("user_agent", "browser", "os_family", "device"), [
    (CHROME_WINDOWS, "Chrome", "Windows", None),
    (SAFARI_IPHONE, "Mobile Safari", "iOS", "iPhone"),
    (GOOGLEBOT, "Googlebot", None, "Spider"),
    (None, None, None, None),
])
def test_user_agent_families(user_agent, browser, os_family, device):
    visit = to_visit(click(user_agent=user_agent))
    assert (visit.browser, visit.os, visit.device) == (browser, os_family, device)
    assert visit.dimension("browser") == (browser or "(unknown)")


def test_the_visit_keeps_the_events_facts():
    event = click(bot=True, country="DE")
    visit = to_visit(event)
    assert (visit.event_id, visit.link_id, visit.bot, visit.ip, visit.country) == ("e1", 3, True, "203.0.113.0", "DE")
    assert visit.at == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


def test_a_long_referrer_is_cut_to_1024_and_keeps_its_host():
    referrer = "https://WWW.News.Example.COM/story?" + "q" * 3000
    visit = to_visit(click(referrer=referrer))
    assert visit.referrer == referrer[:1024]
    assert visit.referrer_host == "news.example.com"
    assert visit.dimension("referrer") == "news.example.com"


@pytest.mark.parametrize(("referrer", "host"), [
    ("https://www.example.com/", "example.com"),
    ("http://sub.www.example.com:8080/x", "sub.www.example.com"),  # only a leading "www." goes
    ("android-app://com.google.android.gm/", "com.google.android.gm"),
    ("not a url", None),
    ("http://[::1", None),  # urlsplit refuses it: no host, no crash
    (None, None),
])
def test_referrer_host(referrer, host):
    visit = to_visit(click(referrer=referrer))
    assert visit.referrer_host == host
    assert visit.dimension("referrer") == (host or "(direct)")


def _by_urlsplit(referrer: str) -> str | None:
    try:
        host = urlsplit(referrer).hostname
    except ValueError:
        return None
    return host.lower().removeprefix("www.") if host else None


# Referrers the plain-host shortcut in referrer_host() must either read as urlsplit() does or leave to it.
_TRICKY = [
    "https://t.co", "https://t.co/", "https://T.CO?x=1", "https://t.co#top", "http://a.b:80", "http://a.b:",
    "http://a.b:80/x", "http://a.b:8x/", "http://a.b:80\n", "https://u@h.com/", "https://u:p@h.com:1/",
    "http://[::1]:80/", "http://a\tb.com/", "http://ab.com\t/", " http://ab.com/", "http://ab.com /",
    "HTTP://AB.com/", "https:///x", "https://", "http:/ab.com/", "https://.../", "https://-a-.b./c",
    "https://a_b.com/", "https://www./", "https://www.", "https://xn--bcher-kva.example/", "https://bücher.de/",
    "ftp://files.example/", "https://a.com\\b.com/", "https://a.com;x/", "https://a.com%2F@b.com/",
]


@pytest.mark.parametrize("referrer", _TRICKY)
def test_referrer_host_reads_as_urlsplit_does(referrer):
    referrer_host.cache_clear()
    assert referrer_host(referrer) == _by_urlsplit(referrer)


@settings(max_examples=500, deadline=None)
@given(st.from_regex(r"\A(https?|HTTP|ftp)(://|:/|:)[A-Za-z0-9.\-_@:\[\]%\t /?#\\]{0,30}\Z"))
def test_referrer_host_reads_any_url_as_urlsplit_does(referrer):
    referrer_host.cache_clear()
    assert referrer_host(referrer) == _by_urlsplit(referrer)


def test_the_visitor_hash_is_stable_within_a_day_and_changes_the_next():
    morning = to_visit(click(at=at("2024-05-01T00:05:00"))).visitor
    night = to_visit(click(at=at("2024-05-01T23:55:00"))).visitor
    next_day = to_visit(click(at=at("2024-05-02T00:05:00"))).visitor
    assert morning == night
    assert next_day != morning
    assert to_visit(click(ip="198.51.100.0")).visitor != to_visit(click()).visitor
    assert to_visit(click(user_agent=SAFARI_IPHONE)).visitor != to_visit(click()).visitor


def test_the_visitor_hash_holds_no_address():
    visitor = to_visit(click(ip="203.0.113.0")).visitor
    assert re.fullmatch(r"[0-9a-f]{16}", visitor)  # a short digest: no dotted or colon address fits in it
    v6 = to_visit(click(ip="2001:db8:85a3::")).visitor
    assert re.fullmatch(r"[0-9a-f]{16}", v6) and v6 != visitor
    assert to_visit(click(ip=None)).visitor != visitor  # dropped addresses still hash, without one
