-- Links, their tags and API keys. schema_migrations is created by the runner
-- (boltlink/store/schema.py), which needs it before any file can be applied.
--
-- Times are UTC ISO-8601 text with microseconds and a +00:00 offset, always the
-- same width, so text order is time order and indexes serve the sorts.
-- No BEGIN/COMMIT here: the runner applies all pending files in one transaction.

CREATE TABLE links (
    -- AUTOINCREMENT: an id is never reused, so click statistics of a deleted
    -- link can never attach to a newer one.
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    -- BINARY collation (the default): "abc" and "ABC" are two slugs.
    slug            TEXT    NOT NULL UNIQUE,
    url             TEXT    NOT NULL,
    title           TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    expires_at      TEXT,
    max_clicks      INTEGER,
    max_clicks_used INTEGER NOT NULL DEFAULT 0,
    redirect_status INTEGER NOT NULL DEFAULT 302,
    forward_query   INTEGER NOT NULL DEFAULT 0,
    clicks_total    INTEGER NOT NULL DEFAULT 0,
    clicks_humans   INTEGER NOT NULL DEFAULT 0,
    clicks_bots     INTEGER NOT NULL DEFAULT 0
);

-- One index per sort key, with id as the tie-breaker the queries use
-- (the slug sort is served by the UNIQUE index).
CREATE INDEX links_created_at_idx ON links (created_at, id);
CREATE INDEX links_url_idx ON links (url, id);
CREATE INDEX links_clicks_total_idx ON links (clicks_total, id);
CREATE INDEX links_expires_at_idx ON links (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE link_tags (
    link_id  INTEGER NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    tag      TEXT    NOT NULL,
    -- Tags come back in the order they were given.
    position INTEGER NOT NULL,
    PRIMARY KEY (link_id, tag)
) WITHOUT ROWID;

CREATE INDEX link_tags_tag_idx ON link_tags (tag, link_id);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL,
    scopes       TEXT NOT NULL,  -- JSON array of scope names
    created_at   TEXT NOT NULL,
    revoked_at   TEXT,
    last_used_at TEXT
);

-- A name is unique among active keys only: a revoked key's name may be reused.
CREATE UNIQUE INDEX api_keys_active_name_idx ON api_keys (name) WHERE revoked_at IS NULL;
