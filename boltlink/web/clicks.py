"""Turning a redirect request into a ClickEvent: who (anonymized), from where, with what."""

from __future__ import annotations

import functools
import ipaddress
import logging
import time
from collections.abc import Sequence
from typing import Any

from boltlink.config import Config
from boltlink.events.model import REFERRER_MAX, USER_AGENT_MAX, ClickEvent, new_event_id
from boltlink.store.base import Link
from boltlink.useragent import is_bot

log = logging.getLogger("boltlink.web")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(config: Config) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in config.trusted_proxies)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str | None:
    """The visitor's address: X-Forwarded-For is believed only as far as it passes trusted proxies."""
    if not trusted or not peer or not _is_trusted(peer, trusted):
        return peer
    forwarded = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    for hop in reversed(forwarded):  # the right end was added by the proxy nearest to us
        if not _is_trusted(hop, trusted):
            # Fix: a hop that is no address ("unknown", a typo) was returned as the client's address.
            # It ends the walk: what lies left of it came through a hop nobody can vouch for.
            return hop if _is_address(hop) else None
    return forwarded[0] if forwarded else peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


# Cached: parsing and masking with ipaddress is ~4% of an API worker's time per redirect, and a
# visitor's clicks come from the same address. The answer depends on the arguments alone.
@functools.lru_cache(maxsize=4096)
def anonymize(address: str | None, mode: str) -> str | None:
    """IPv4 keeps its /24, IPv6 its /48 (mode "anonymize"); "full" keeps it; "drop" forgets it."""
    if address is None or mode == "drop":
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if mode == "full":
        return str(ip)
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def country_of(header: str | None) -> str | None:
    """The two-letter code from the trusted proxy's country header, when it is one."""
    value = (header or "").strip().upper()
    # Fix: isascii() too, or "ÄÖ" (any two non-ASCII letters) passed as a country code.
    return value if len(value) == 2 and value.isascii() and value.isalpha() and value not in ("XX", "ZZ") else None


def click_event(scope: dict[str, Any], link: Link, config: Config, trusted: Sequence[Network]) -> ClickEvent:
    """The click of one redirect, from its ASGI scope (Quart's request.scope, or the fast path's)."""
    wanted = {b"user-agent": None, b"referer": None, b"x-forwarded-for": None}
    country_header = config.trusted_country_header.lower().encode("latin-1") if config.trusted_country_header else None
    if country_header is not None:
        wanted[country_header] = None
    for name, value in scope["headers"]:
        if name in wanted and wanted[name] is None:  # the first one, as Quart's headers.get() answers
            wanted[name] = value.decode("latin-1")
    user_agent, referrer = wanted[b"user-agent"], wanted[b"referer"]
    client = scope.get("client")
    peer = client[0] if client else None
    return ClickEvent(
        id=new_event_id(),
        link_id=link.id,
        at=time.time(),
        referrer=referrer[:REFERRER_MAX] if referrer else None,
        user_agent=user_agent[:USER_AGENT_MAX] if user_agent else None,
        bot=is_bot(user_agent),
        ip=anonymize(client_address(peer, wanted[b"x-forwarded-for"], trusted), config.ip_anonymization),
        country=country_of(wanted[country_header]) if country_header is not None else None,
    )
