"""ClickEvent -> Visit: what the aggregator works out, so that redirects don't have to."""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime, timezone
from functools import lru_cache
from urllib.parse import urlsplit

from boltlink.events.model import REFERRER_MAX, USER_AGENT_MAX, ClickEvent
from boltlink.store.clicks import Visit


@lru_cache(maxsize=20_000)
def parse_user_agent(user_agent: str | None) -> tuple[str | None, str | None, str | None]:
    """(browser, OS, device) families; parsing costs ~0.5 ms, and the same few agents repeat."""
    if not user_agent:
        return None, None, None
    from ua_parser import parse  # loads its regex table on first use: only the aggregator pays

    result = parse(user_agent)
    return (
        result.user_agent.family if result.user_agent else None,
        result.os.family if result.os else None,
        result.device.family if result.device else None,
    )


# An http(s) URL whose host is plain ASCII letters, digits, dots and dashes, with no user info and at
# most a numeric port: urlsplit() would give that host (lower-cased) too, at ~6 us against ~0.4 us.
# Anything else (brackets, "@", tabs, another scheme...) goes through urlsplit(). test_enrich.py
# compares the two.
_PLAIN_HOST = re.compile(r"https?://([A-Za-z0-9.-]+)(?::[0-9]*)?(?:[/?#]|\Z)")


# Cached (speed only; the result depends on the string alone): a referrer is mostly a bare origin
# ("https://t.co/": browsers send only the origin to other sites by default), so the same few strings
# repeat. Bounded: at most 8,192 strings of <= 1,024 characters.
@lru_cache(maxsize=8192)
def referrer_host(referrer: str | None) -> str | None:
    if not referrer:
        return None
    plain = _PLAIN_HOST.match(referrer)
    if plain is not None:
        host: str | None = plain.group(1)
    else:
        try:
            host = urlsplit(referrer).hostname
        except ValueError:
            return None
    return host.lower().removeprefix("www.") if host else None


def visitor_key(ip: str | None, user_agent: str | None, day: str) -> str:
    """Who clicked, as far as unique-visitor counts need: a daily hash, never the address itself."""
    digest = hashlib.blake2b(f"{ip or '-'}\x00{user_agent or '-'}\x00{day}".encode(), digest_size=8)
    return digest.hexdigest()


@lru_cache(maxsize=64)
def _day_text(day: date) -> str:
    """The visitor key's day, formatted once per day: strftime cost ~1.4 us an event, and a batch's
    events fall on one or two days. Same text as at.strftime("%Y-%m-%d") (only the date part is used)."""
    return day.strftime("%Y-%m-%d")


def to_visit(event: ClickEvent) -> Visit:
    at = datetime.fromtimestamp(event.at, timezone.utc)
    user_agent = event.user_agent[:USER_AGENT_MAX] if event.user_agent else None
    referrer = event.referrer[:REFERRER_MAX] if event.referrer else None
    browser, os_family, device = parse_user_agent(user_agent)
    return Visit(
        event_id=event.id, link_id=event.link_id, at=at, referrer=referrer, referrer_host=referrer_host(referrer),
        user_agent=user_agent, browser=browser, os=os_family, device=device, bot=event.bot, ip=event.ip,
        country=event.country, visitor=visitor_key(event.ip, user_agent, _day_text(at.date())),
    )
