"""What a link may contain: target URLs, slugs, tags and titles.

The API and the operator CLI both call these, so a link is held to the same
rules however it is made. Each check raises InvalidInput naming the field.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

from boltlink.errors import InvalidInput

SLUG_MAX_LENGTH = 64
SLUG_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# No look-alikes: 0/O/o, 1/l/I are left out so a slug read aloud or printed is unambiguous.
GENERATED_SLUG_ALPHABET = "23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"

# First path segments the app owns or will own; refused as slugs in any letter case.
RESERVED_SLUGS = frozenset(
    {
        "api",
        "health",
        "ready",
        "metrics",
        "docs",
        "openapi.json",
        "static",
        "ui",
        "favicon.ico",
        "robots.txt",
        "login",
        "logout",
        "admin",
        "assets",
        "__test__",
    }
)

REDIRECT_STATUSES = (301, 302, 307, 308)
TITLE_MAX_LENGTH = 512
TAG_MAX_LENGTH = 64
MAX_TAGS = 20
MAX_CLICKS_LIMIT = 2**31 - 1  # the PostgreSQL column is an integer; a larger limit failed there (and in SQLite)
# Far past any real list of links, and (page - 1) * limit stays a 64-bit OFFSET: a larger page was a 500.
MAX_PAGE = 1_000_000_000

_LABEL_RE = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class OwnHost:
    """A host name (and non-default port, if any) that short links are served on."""

    host: str
    port: int | None = None

    @classmethod
    def from_url(cls, url: str) -> OwnHost | None:
        parts = urlsplit(url if "//" in url else f"//{url}")
        if not parts.hostname:
            return None
        try:
            port = parts.port
        except ValueError:
            port = None
        if port == _DEFAULT_PORTS.get(parts.scheme or "http"):
            port = None
        # The same spelling check_url compares against: IDNA for names, canonical for IP literals.
        try:
            host = _normalise_host(parts.hostname, "base_url")
        except InvalidInput:
            host = parts.hostname.lower().rstrip(".")
        return cls(host, port)

    def matches(self, host: str, port: int) -> bool:
        return host == self.host and (self.port is None or self.port == port)


def check_slug(slug: str) -> str:
    if not SLUG_RE.fullmatch(slug):
        if not slug:
            raise InvalidInput.field("slug", "must not be empty")
        if len(slug) > SLUG_MAX_LENGTH:
            raise InvalidInput.field("slug", f"must be at most {SLUG_MAX_LENGTH} characters")
        raise InvalidInput.field("slug", "may contain only letters A-Z a-z, digits, '-' and '_'")
    if slug.lower() in RESERVED_SLUGS:
        raise InvalidInput.field("slug", f"'{slug}' is reserved")
    return slug


def generate_slug(length: int) -> str:
    while True:
        slug = "".join(secrets.choice(GENERATED_SLUG_ALPHABET) for _ in range(length))
        # The alphabet spells "ready", "admin", "static", "assets", "metrics": a route would shadow such a link.
        if slug.lower() not in RESERVED_SLUGS:
            return slug


def check_url(
    url: str,
    *,
    max_length: int,
    own_hosts: Iterable[OwnHost] = (),
    blocked_domains: Iterable[str] = (),
    field: str = "url",
) -> str:
    """The target URL, trimmed of surrounding spaces, or InvalidInput saying why not."""
    url = url.strip(" ")
    if not url:
        raise InvalidInput.field(field, "must not be empty")
    if len(url) > max_length:
        raise InvalidInput.field(field, f"must be at most {max_length} characters")
    # Browsers drop tabs and newlines inside URLs ("java\tscript:"), so any
    # control or whitespace character is refused rather than cleaned.
    if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in url):
        raise InvalidInput.field(field, "must not contain spaces or control characters")
    if "\\" in url:
        raise InvalidInput.field(field, "must not contain backslashes")
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced "[" in the host
        raise InvalidInput.field(field, "has an invalid host name") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidInput.field(field, "must be an http or https URL")
    if not parts.netloc or not parts.hostname:
        raise InvalidInput.field(field, "must have a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput.field(field, "must not contain a user name or password")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:  # out of range, not a number, or 0, which no server listens on
        raise InvalidInput.field(field, "has an invalid port")
    port = port or _DEFAULT_PORTS[scheme]
    host = _normalise_host(parts.hostname, field)
    if any(own.matches(host, port) for own in own_hosts):
        raise InvalidInput.field(field, "must not point at this link shortener")
    for domain in blocked_domains:
        domain = domain.lower().strip(".")
        try:  # hosts are compared in IDNA form, so a domain configured as "bücher.de" must be too
            ascii_domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            ascii_domain = domain
        if domain and (host == ascii_domain or host.endswith("." + ascii_domain)):
            raise InvalidInput.field(field, f"the domain {domain} is blocked")
    return url


def _normalise_host(hostname: str, field: str) -> str:
    host = hostname.lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidInput.field(field, "has an invalid host name") from None
    if len(ascii_host) > 253 or not all(_LABEL_RE.fullmatch(label) for label in ascii_host.split(".")):
        raise InvalidInput.field(field, "has an invalid host name")
    return ascii_host


def check_title(title: str | None) -> str | None:
    if title is None:
        return None
    title = title.strip()
    if len(title) > TITLE_MAX_LENGTH:
        raise InvalidInput.field("title", f"must be at most {TITLE_MAX_LENGTH} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in title):
        raise InvalidInput.field("title", "must not contain control characters")
    return title or None


def check_tags(tags: Iterable[str] | None) -> tuple[str, ...]:
    cleaned: list[str] = []
    for tag in tags or ():
        tag = tag.strip()
        if not tag or len(tag) > TAG_MAX_LENGTH:
            raise InvalidInput.field("tags", f"each tag must be 1 to {TAG_MAX_LENGTH} characters")
        if any(ch.isspace() or ch == "," or unicodedata.category(ch) == "Cc" for ch in tag):
            raise InvalidInput.field("tags", f"tag '{tag}' must not contain spaces or commas")
        if tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > MAX_TAGS:
        raise InvalidInput.field("tags", f"at most {MAX_TAGS} tags")
    return tuple(cleaned)


def check_redirect_status(status: int) -> int:
    if status not in REDIRECT_STATUSES:
        raise InvalidInput.field("redirect_status", "must be one of 301, 302, 307, 308")
    return status


def check_max_clicks(max_clicks: int | None) -> int | None:
    if max_clicks is not None and max_clicks < 1:
        raise InvalidInput.field("max_clicks", "must be at least 1")
    if max_clicks is not None and max_clicks > MAX_CLICKS_LIMIT:
        raise InvalidInput.field("max_clicks", f"must be at most {MAX_CLICKS_LIMIT}")
    return max_clicks


def as_utc(moment: datetime | None) -> datetime | None:
    """Naive datetimes are taken as UTC; aware ones are converted to it.

    A moment that falls outside years 1 to 9999 once in UTC (0001-01-01T00:00+14:00) becomes the
    first or last one datetime holds, which every check then handles like any very early or late one.
    """
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=timezone.utc)


def check_expiry_in_future(expires_at: datetime | None, now: datetime) -> datetime | None:
    expires_at = as_utc(expires_at)
    if expires_at is not None and expires_at <= now:
        raise InvalidInput.field("expires_at", "must be in the future")
    return expires_at
