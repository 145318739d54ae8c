"""API key checks for /api/v1: who is calling, and may they do this?"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from functools import wraps
from typing import Any, TypeVar

from quart import g, request
from quart_schema import document_response

from boltlink import apikeys
from boltlink.errors import Forbidden, Unauthorized
from boltlink.web.models import Problem
from boltlink.web.state import app_state

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def presented_key() -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key.strip()
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


async def authenticate(scope: str) -> None:
    """Raise Unauthorized or Forbidden unless the request carries an active key granting scope."""
    key = presented_key()
    if key is None:
        raise Unauthorized("Send an API key in X-API-Key or Authorization: Bearer.")
    key_id = apikeys.key_id_of(key)
    record = await app_state().store.get_api_key(key_id) if key_id else None
    # The id is public; the secret part is only ever compared by hash, in constant time.
    if record is None or not apikeys.key_matches(key, record) or not record.active:
        raise Unauthorized("The API key is not valid.")
    if record.expires_at is not None and record.is_expired(datetime.now(timezone.utc)):
        # Only the key's holder gets this far (the hash matched): telling them why is safe, and saves a puzzle.
        expired = record.expires_at.astimezone(timezone.utc)
        raise Unauthorized(f"The API key expired at {expired:%Y-%m-%dT%H:%M:%SZ}; ask for a new one.")
    if not apikeys.grants(record, scope):
        raise Forbidden(f"This API key lacks the '{scope}' scope.")
    g.api_key = record


def require_scope(scope: str) -> Callable[[F], F]:
    """Check the key before anything else runs (even body validation), and document 401/403."""

    def decorator(handler: F) -> F:
        @wraps(handler)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            await authenticate(scope)
            return await handler(*args, **kwargs)

        documented = document_response(Problem, 401)(wrapper)
        return document_response(Problem, 403)(documented)  # type: ignore[return-value]

    return decorator
