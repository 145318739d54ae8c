"""Rules every backend shares, so memory, SQLite and PostgreSQL cannot drift apart."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from boltlink.errors import InvalidInput
from boltlink.store.base import SORT_KEYS, UPDATABLE_FIELDS, LinkQuery

# Sort key (without its "-") -> column. "clicks" means all clicks, bots included.
SORT_COLUMNS = {"created_at": "created_at", "slug": "slug", "url": "url", "clicks": "clicks_total"}

LIKE_ESCAPE = "\\"


def utc(value: datetime) -> datetime:
    """The same instant in UTC. A naive datetime is taken to be UTC already (boltlink's convention)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def now() -> datetime:
    return datetime.now(UTC)


def unique_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags in the order given, repeats dropped (a link has a tag or not)."""
    return tuple(dict.fromkeys(tags))


def check_query(query: LinkQuery) -> tuple[str, bool]:
    """Validate a LinkQuery; return the sort column and whether it sorts descending."""
    if query.sort not in SORT_KEYS:
        raise InvalidInput.field("sort", f"must be one of {', '.join(SORT_KEYS)}")
    if query.page < 1:
        raise InvalidInput.field("page", "must be at least 1")
    if query.limit < 1:
        raise InvalidInput.field("limit", "must be at least 1")
    descending = query.sort.startswith("-")
    return SORT_COLUMNS[query.sort.lstrip("-")], descending


def like_pattern(q: str) -> str:
    """A LIKE pattern matching q literally anywhere: % and _ in q are not wildcards."""
    escaped = q.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%")
    return "%" + escaped.replace("_", LIKE_ESCAPE + "_") + "%"


def check_changes(changes: dict[str, object]) -> dict[str, object]:
    """The changes with normalised values; InvalidInput for a field that may not change."""
    unknown = sorted(set(changes) - set(UPDATABLE_FIELDS))
    if unknown:
        raise InvalidInput.field(unknown[0], "cannot be changed")
    clean = dict(changes)
    if "tags" in clean:
        clean["tags"] = unique_tags(clean["tags"] or ())  # type: ignore[arg-type]
    if "expires_at" in clean:
        clean["expires_at"] = utc_or_none(clean["expires_at"])  # type: ignore[arg-type]
    for flag in ("forward_query", "do_not_track"):
        if flag in clean:
            clean[flag] = bool(clean[flag])
    return clean
