"""Turning a redirect request into a ClickEvent: who (anonymized), from where, with what."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Sequence

from quart import Request

from boltlink.config import Config
from boltlink.events.model import REFERRER_MAX, USER_AGENT_MAX, ClickEvent, new_event_id
from boltlink.store.base import Link
from boltlink.useragent import is_bot

log = logging.getLogger("boltlink.web")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(config: Config) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in config.trusted_proxies)


def client_address(request: Request, trusted: Sequence[Network]) -> str | None:
    """The visitor's address: X-Forwarded-For is believed only as far as it passes trusted proxies."""
    peer = request.remote_addr
    if not trusted or not peer or not _is_trusted(peer, trusted):
        return peer
    forwarded = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
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


def country_of(request: Request, config: Config) -> str | None:
    if not config.trusted_country_header:
        return None
    value = request.headers.get(config.trusted_country_header, "").strip().upper()
    # Fix: isascii() too, or "ÄÖ" (any two non-ASCII letters) passed as a country code.
    return value if len(value) == 2 and value.isascii() and value.isalpha() and value not in ("XX", "ZZ") else None


def click_event(request: Request, link: Link, config: Config, trusted: Sequence[Network]) -> ClickEvent:
    user_agent = request.headers.get("User-Agent")
    referrer = request.headers.get("Referer")
    return ClickEvent(
        id=new_event_id(),
        link_id=link.id,
        at=time.time(),
        referrer=referrer[:REFERRER_MAX] if referrer else None,
        user_agent=user_agent[:USER_AGENT_MAX] if user_agent else None,
        bot=is_bot(user_agent),
        ip=anonymize(client_address(request, trusted), config.ip_anonymization),
        country=country_of(request, config),
    )
