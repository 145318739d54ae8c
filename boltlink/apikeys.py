"""API keys: how they look, how they are hashed, what their scopes allow.

A key reads `bl_<id>_<secret>`. The id is public (shown by `apikey list`,
used to find the record); only the SHA-256 of the whole key is stored, and
it is compared in constant time. The secret is 256 random bits, so a fast
unsalted hash is enough: there is no password to guess. A key may expire.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from datetime import datetime, timezone

from boltlink.errors import InvalidInput
from boltlink.store.base import SCOPES, ApiKey

PREFIX = "bl_"
ID_LENGTH = 8
_ID_ALPHABET = string.ascii_lowercase + string.digits

DEFAULT_SCOPES = ("links:read", "links:write", "stats:read")

# A scope grants itself and what is listed here; admin grants everything.
IMPLIED_SCOPES = {
    "admin": set(SCOPES),
    "links:write": {"links:read"},
}


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key(name: str, scopes: list[str] | tuple[str, ...],
                expires_at: datetime | None = None) -> tuple[str, ApiKey]:
    """A fresh key: the plaintext (shown once) and the record to store. Without expires_at it never expires."""
    now = datetime.now(timezone.utc)
    if expires_at is not None:
        expires_at = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=timezone.utc)
        if expires_at <= now:
            raise InvalidInput.field("expires_at", "must be in the future")
    name = name.strip()
    if not name or len(name) > 64:
        raise InvalidInput.field("name", "must be 1 to 64 characters")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise InvalidInput.field("scope", f"unknown scope '{unknown[0]}' (choose from {', '.join(SCOPES)})")
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKey(
        id=key_id,
        name=name,
        key_hash=hash_key(key),
        scopes=tuple(dict.fromkeys(scopes or DEFAULT_SCOPES)),
        created_at=now,
        expires_at=expires_at,
    )
    return key, record


def key_id_of(key: str) -> str | None:
    """The public id inside a presented key, or None when it is not shaped like one."""
    if not key.startswith(PREFIX) or len(key) < len(PREFIX) + ID_LENGTH + 2:
        return None
    key_id = key[len(PREFIX) : len(PREFIX) + ID_LENGTH]
    if key[len(PREFIX) + ID_LENGTH] != "_" or not set(key_id) <= set(_ID_ALPHABET):
        return None
    return key_id


def key_matches(key: str, record: ApiKey) -> bool:
    return hmac.compare_digest(hash_key(key), record.key_hash)


def grants(record: ApiKey, scope: str) -> bool:
    return any(scope == s or scope in IMPLIED_SCOPES.get(s, ()) for s in record.scopes)
