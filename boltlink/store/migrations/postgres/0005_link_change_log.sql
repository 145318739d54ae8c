-- Which link each change of link_changes.version was about, so an API worker's
-- link cache (boltlink/store/link_cache.py) forgets only the links that changed
-- instead of everything: before this, creating one link anywhere emptied every
-- worker's cache, and a cold cache sends every redirect to the database.
--
-- Every changed row now moves the version by one and logs its slug under the
-- new version (an update of the slug logs both), so version N is the Nth
-- change. Row triggers rather than 0003's statement triggers: boltlink writes
-- links one row per statement, so it costs the same. The counted columns are
-- 0003's: the aggregator's clicks_* and max_clicks_used updates are not changes
-- a redirect notices, and do not fire these triggers at all.
--
-- Versions come from the one link_changes row, whose lock the writer holds
-- until it commits: versions commit in order, so a reader that sees version N
-- sees every change up to N, and never a hole a later commit fills.
--
-- The log keeps the last 10,000 changes, trimmed by the same trigger that
-- writes it: the bound holds without any other process running, and it costs
-- one primary-key range delete per change. A cache that falls further behind
-- (10,000 changes within its half-second check) clears itself, as it always did.
CREATE TABLE link_change_log (
    version bigint PRIMARY KEY,
    slug    text COLLATE "C" NOT NULL
);

DROP TRIGGER link_changes_insert_delete ON links;
DROP TRIGGER link_changes_update ON links;
DROP FUNCTION link_changes_bump();

CREATE FUNCTION link_changes_log(changed text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    head bigint;
BEGIN
    UPDATE link_changes SET version = version + 1 WHERE id = 1 RETURNING version INTO head;
    INSERT INTO link_change_log (version, slug) VALUES (head, changed);
    DELETE FROM link_change_log WHERE version <= head - 10000;
END;
$$;

CREATE FUNCTION link_changes_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM link_changes_log(NEW.slug);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM link_changes_log(OLD.slug);
    ELSE
        PERFORM link_changes_log(NEW.slug);
        IF OLD.slug IS DISTINCT FROM NEW.slug THEN
            PERFORM link_changes_log(OLD.slug);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER link_changes_insert_delete AFTER INSERT OR DELETE ON links
    FOR EACH ROW EXECUTE FUNCTION link_changes_row();

CREATE TRIGGER link_changes_update
    AFTER UPDATE OF slug, url, expires_at, max_clicks, redirect_status, forward_query, do_not_track ON links
    FOR EACH ROW EXECUTE FUNCTION link_changes_row();
