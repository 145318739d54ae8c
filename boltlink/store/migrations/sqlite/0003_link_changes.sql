-- A counter that moves whenever a link changes in a way a redirect would notice
-- (target, status, expiry, allowance, tracking, slug) or is created or deleted.
-- API workers cache links in memory and compare this one row every half second
-- (boltlink/store/link_cache.py), so every worker sees a change within a second.
-- The aggregator's clicks_* updates do not touch it: they would empty every
-- cache many times a second under load.
CREATE TABLE link_changes (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO link_changes (id, version) VALUES (1, 0);

CREATE TRIGGER link_changes_insert AFTER INSERT ON links
BEGIN
    UPDATE link_changes SET version = version + 1 WHERE id = 1;
END;

CREATE TRIGGER link_changes_delete AFTER DELETE ON links
BEGIN
    UPDATE link_changes SET version = version + 1 WHERE id = 1;
END;

CREATE TRIGGER link_changes_update
AFTER UPDATE OF slug, url, expires_at, max_clicks, redirect_status, forward_query, do_not_track ON links
BEGIN
    UPDATE link_changes SET version = version + 1 WHERE id = 1;
END;
