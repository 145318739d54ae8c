-- An API key may expire: after expires_at it is refused (401) like a revoked
-- one. NULL, as every key made before this migration has: it never expires.
ALTER TABLE api_keys ADD COLUMN expires_at TEXT;
