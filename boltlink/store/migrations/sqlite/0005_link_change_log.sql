-- Which link each change of link_changes.version was about, so an API worker's
-- link cache (boltlink/store/link_cache.py) forgets only the links that changed
-- instead of everything: before this, creating one link anywhere emptied every
-- worker's cache, and a cold cache sends every redirect to the database.
--
-- Every change now moves the version by one and logs the slug under the new
-- version (an update of the slug logs both), so version N is the Nth change.
-- The counted columns are 0003's: the aggregator's clicks_* and max_clicks_used
-- updates are not changes a redirect notices.
--
-- The log keeps the last 10,000 changes, trimmed by the same trigger that
-- writes it: the bound holds without any other process running, and it costs
-- one primary-key range delete per change. A cache that falls further behind
-- (10,000 changes within its half-second check) clears itself, as it always did.
CREATE TABLE link_change_log (
    version INTEGER PRIMARY KEY,
    slug    TEXT NOT NULL
);

DROP TRIGGER link_changes_insert;
DROP TRIGGER link_changes_delete;
DROP TRIGGER link_changes_update;

CREATE TRIGGER link_changes_insert AFTER INSERT ON links
BEGIN
    UPDATE link_changes SET version = version + 1 WHERE id = 1;
    INSERT INTO link_change_log (version, slug) SELECT version, NEW.slug FROM link_changes WHERE id = 1;
    DELETE FROM link_change_log WHERE version <= (SELECT version - 10000 FROM link_changes WHERE id = 1);
END;

CREATE TRIGGER link_changes_delete AFTER DELETE ON links
BEGIN
    UPDATE link_changes SET version = version + 1 WHERE id = 1;
    INSERT INTO link_change_log (version, slug) SELECT version, OLD.slug FROM link_changes WHERE id = 1;
    DELETE FROM link_change_log WHERE version <= (SELECT version - 10000 FROM link_changes WHERE id = 1);
END;

CREATE TRIGGER link_changes_update
AFTER UPDATE OF slug, url, expires_at, max_clicks, redirect_status, forward_query, do_not_track ON links
BEGIN
    UPDATE link_changes SET version = version + 1 WHERE id = 1;
    INSERT INTO link_change_log (version, slug) SELECT version, NEW.slug FROM link_changes WHERE id = 1;
    UPDATE link_changes SET version = version + 1 WHERE id = 1 AND OLD.slug IS NOT NEW.slug;
    INSERT INTO link_change_log (version, slug)
        SELECT version, OLD.slug FROM link_changes WHERE id = 1 AND OLD.slug IS NOT NEW.slug;
    DELETE FROM link_change_log WHERE version <= (SELECT version - 10000 FROM link_changes WHERE id = 1);
END;
