-- A counter that moves whenever a link changes in a way a redirect would notice
-- (target, status, expiry, allowance, tracking, slug) or is created or deleted.
-- API workers cache links in memory and compare this one row every half second
-- (boltlink/store/link_cache.py), so every worker of every pod sees a change
-- within a second. The aggregator's clicks_* updates do not touch it: they would
-- empty every cache many times a second under load. Once per statement, so a
-- bulk insert moves it once.
CREATE TABLE link_changes (
    id      smallint PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL
);
INSERT INTO link_changes (id, version) VALUES (1, 0);

CREATE FUNCTION link_changes_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE link_changes SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER link_changes_insert_delete AFTER INSERT OR DELETE ON links
    FOR EACH STATEMENT EXECUTE FUNCTION link_changes_bump();

CREATE TRIGGER link_changes_update
    AFTER UPDATE OF slug, url, expires_at, max_clicks, redirect_status, forward_query, do_not_track ON links
    FOR EACH STATEMENT EXECUTE FUNCTION link_changes_bump();
