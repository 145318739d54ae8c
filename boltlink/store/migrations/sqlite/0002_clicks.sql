-- Click statistics (boltlink/store/clicks.py describes the tables and how they are used).
--
-- Buckets (hour, day) are INTEGER unix seconds of the bucket's UTC start: an hour
-- is a multiple of 3600, a day of 86400. visits.at is text like every other time.
-- Deleting a link deletes its visits and counter rows in the same transaction
-- (the store's delete_link), while the ALL_LINKS rows (link_id 0, which has
-- no links row) keep counting its past clicks. No table here has a foreign key to
-- links: the counter tables hold link 0, and on visits the check cost PostgreSQL
-- ~10 us per inserted row (the RI trigger), ~40% of the insert; record_clicks
-- checks the batch's links once instead, under a lock that delete_link waits for.

ALTER TABLE links ADD COLUMN do_not_track INTEGER NOT NULL DEFAULT 0;

CREATE TABLE visits (
    id            INTEGER PRIMARY KEY,  -- rowid: new visits append at the end of the table
    event_id      TEXT    NOT NULL UNIQUE,
    link_id       INTEGER NOT NULL,
    at            TEXT    NOT NULL,
    referrer      TEXT,
    referrer_host TEXT,
    user_agent    TEXT,
    browser       TEXT,
    os            TEXT,
    device        TEXT,
    bot           INTEGER NOT NULL,
    ip            TEXT,
    country       TEXT,
    visitor       TEXT    NOT NULL
);

-- Paging a link's visits newest first; also serves delete_link and retention, which
-- delete link by link.
CREATE INDEX visits_link_at_idx ON visits (link_id, at DESC, event_id);

CREATE TABLE clicks_hourly (
    link_id  INTEGER NOT NULL,
    hour     INTEGER NOT NULL,
    total    INTEGER NOT NULL DEFAULT 0,
    humans   INTEGER NOT NULL DEFAULT 0,
    bots     INTEGER NOT NULL DEFAULT 0,
    visitors INTEGER NOT NULL DEFAULT 0,  -- visitors first seen that day in this hour
    PRIMARY KEY (link_id, hour)
) WITHOUT ROWID;

CREATE TABLE clicks_daily (
    link_id  INTEGER NOT NULL,
    day      INTEGER NOT NULL,
    total    INTEGER NOT NULL DEFAULT 0,
    humans   INTEGER NOT NULL DEFAULT 0,
    bots     INTEGER NOT NULL DEFAULT 0,
    visitors INTEGER NOT NULL DEFAULT 0,  -- the day's unique visitors
    PRIMARY KEY (link_id, day)
) WITHOUT ROWID;

CREATE TABLE breakdown_hourly (
    link_id   INTEGER NOT NULL,
    hour      INTEGER NOT NULL,
    dimension TEXT    NOT NULL,  -- referrer, browser, os, device, country
    value     TEXT    NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (link_id, hour, dimension, value)
) WITHOUT ROWID;

CREATE TABLE breakdown_daily (
    link_id   INTEGER NOT NULL,
    day       INTEGER NOT NULL,
    dimension TEXT    NOT NULL,
    value     TEXT    NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (link_id, day, dimension, value)
) WITHOUT ROWID;

CREATE TABLE visitors_daily (
    link_id INTEGER NOT NULL,
    day     INTEGER NOT NULL,
    visitor TEXT    NOT NULL,
    PRIMARY KEY (link_id, day, visitor)
) WITHOUT ROWID;

CREATE TABLE consumer_offsets (
    source   TEXT    NOT NULL,
    name     TEXT    NOT NULL,
    position INTEGER NOT NULL CHECK (position >= 0),
    PRIMARY KEY (source, name)
) WITHOUT ROWID;

-- One row. Days before the watermark are in the *_daily tables; NULL until the first rollup.
CREATE TABLE rollup_state (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    watermark INTEGER
);

INSERT INTO rollup_state (id, watermark) VALUES (1, NULL);
