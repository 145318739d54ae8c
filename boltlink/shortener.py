"""The rules for making and changing links, shared by the API and the operator CLI.

Handlers and commands parse their input into a LinkDraft or a dict of changes,
then call these; every check from validation.py runs here, once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from boltlink.config import Config
from boltlink.errors import FieldError, InvalidInput, SlugTaken
from boltlink.store.base import UPDATABLE_FIELDS, Link, LinkStore, NewLink
from boltlink.validation import (
    OwnHost,
    as_utc,
    check_expiry_in_future,
    check_max_clicks,
    check_redirect_status,
    check_slug,
    check_tags,
    check_title,
    check_url,
    generate_slug,
)

# With 56^7 possible slugs a collision is rare; a few retries make it vanishingly so.
GENERATE_ATTEMPTS = 8


@dataclass(frozen=True)
class LinkDraft:
    """A link as a client asked for it, before any rule is applied."""

    url: str
    slug: str | None = None
    title: str | None = None
    tags: tuple[str, ...] = ()
    expires_at: datetime | None = None
    max_clicks: int | None = None
    redirect_status: int = 302
    forward_query: bool = False
    do_not_track: bool = False


@dataclass(frozen=True)
class LinkRules:
    """What a link is checked against: the config and the hosts we serve short links on."""

    config: Config
    own_hosts: tuple[OwnHost, ...] = field(default_factory=tuple)

    @classmethod
    def for_config(cls, config: Config, request_host: str | None = None) -> LinkRules:
        hosts = [OwnHost.from_url(url) for url in (config.base_url, request_host) if url]
        return cls(config, tuple(h for h in hosts if h is not None))

    def url(self, url: str) -> str:
        return check_url(
            url,
            max_length=self.config.max_url_length,
            own_hosts=self.own_hosts,
            blocked_domains=self.config.blocked_domains,
        )


def _check(errors: list[FieldError], check: Callable[..., Any], *args: Any) -> Any:
    """Run one check, adding its complaint to errors, so a client sees every bad field at once."""
    try:
        return check(*args)
    except InvalidInput as exc:
        errors.extend(exc.errors)
        return None


async def create_link(store: LinkStore, draft: LinkDraft, rules: LinkRules) -> Link:
    """Validate the draft and store it, generating a slug when none was asked for."""
    now = datetime.now(timezone.utc)
    errors: list[FieldError] = []
    url = _check(errors, rules.url, draft.url)
    if draft.slug is not None:
        _check(errors, check_slug, draft.slug)
    title = _check(errors, check_title, draft.title)
    tags = _check(errors, check_tags, draft.tags)
    expires_at = _check(errors, check_expiry_in_future, draft.expires_at, now)
    _check(errors, check_max_clicks, draft.max_clicks)
    _check(errors, check_redirect_status, draft.redirect_status)
    if errors:
        raise InvalidInput(errors)

    def new_link(slug: str) -> NewLink:
        return NewLink(
            slug=slug,
            url=url,
            title=title,
            tags=tags,
            expires_at=expires_at,
            max_clicks=draft.max_clicks,
            redirect_status=draft.redirect_status,
            forward_query=draft.forward_query,
            do_not_track=draft.do_not_track,
        )

    if draft.slug is not None:
        return await store.create_link(new_link(draft.slug))
    for _ in range(GENERATE_ATTEMPTS):
        try:
            return await store.create_link(new_link(generate_slug(rules.config.slug_length)))
        except SlugTaken:
            continue
    raise SlugTaken("(generated)")


async def update_link(store: LinkStore, slug: str, changes: Mapping[str, Any], rules: LinkRules) -> Link | None:
    """Validate and apply a partial update; None when the link does not exist."""
    checked: dict[str, Any] = {}
    checks = {
        "url": lambda v: rules.url(_not_null("url", v)),
        "title": check_title,
        "tags": lambda v: check_tags(v or ()),
        "expires_at": as_utc,  # a past expiry is allowed: it is how a link is switched off
        "max_clicks": check_max_clicks,
        "redirect_status": lambda v: check_redirect_status(_not_null("redirect_status", v)),
        "forward_query": lambda v: bool(_not_null("forward_query", v)),
        "do_not_track": lambda v: bool(_not_null("do_not_track", v)),
    }
    errors: list[FieldError] = []
    for key, value in changes.items():
        if key not in UPDATABLE_FIELDS:
            errors.append(FieldError(key, "cannot be changed"))
            continue
        checked[key] = _check(errors, checks[key], value)
    if errors:
        raise InvalidInput(errors)
    if not checked:
        return await store.get_link(slug)
    return await store.update_link(slug, checked)


def _not_null(field_name: str, value: Any) -> Any:
    if value is None:
        raise InvalidInput.field(field_name, "must not be null")
    return value
