-- Links, their tags and API keys. schema_migrations is created by the runner
-- (boltlink/store/schema.py), which needs it before any file can be applied.
-- No BEGIN/COMMIT here: the runner applies all pending files in one transaction.

CREATE TABLE links (
    -- Identity values are never reused, so click statistics of a deleted link
    -- can never attach to a newer one.
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- COLLATE "C": byte order, the same order SQLite and Python sort in, whatever
    -- the database locale; equality stays case-sensitive ("abc" <> "ABC").
    slug            text COLLATE "C" NOT NULL UNIQUE,
    url             text COLLATE "C" NOT NULL,
    title           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    max_clicks      integer,
    max_clicks_used integer NOT NULL DEFAULT 0,
    redirect_status smallint NOT NULL DEFAULT 302,
    forward_query   boolean NOT NULL DEFAULT false,
    clicks_total    bigint NOT NULL DEFAULT 0,
    clicks_humans   bigint NOT NULL DEFAULT 0,
    clicks_bots     bigint NOT NULL DEFAULT 0
);

-- One index per sort key, with id as the tie-breaker the queries use
-- (the slug sort is served by the UNIQUE index).
CREATE INDEX links_created_at_idx ON links (created_at, id);
CREATE INDEX links_url_idx ON links (url, id);
CREATE INDEX links_clicks_total_idx ON links (clicks_total, id);
CREATE INDEX links_expires_at_idx ON links (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE link_tags (
    link_id  bigint NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    tag      text NOT NULL,
    -- Tags come back in the order they were given.
    position integer NOT NULL,
    PRIMARY KEY (link_id, tag)
);

CREATE INDEX link_tags_tag_idx ON link_tags (tag, link_id);

CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    key_hash     text NOT NULL,
    scopes       text[] NOT NULL,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz
);

-- A name is unique among active keys only: a revoked key's name may be reused.
CREATE UNIQUE INDEX api_keys_active_name_idx ON api_keys (name) WHERE revoked_at IS NULL;
