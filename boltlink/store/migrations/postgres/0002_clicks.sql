-- Click statistics (boltlink/store/clicks.py describes the tables and how they are used).
--
-- Hours are timestamptz (the hour's UTC start), days are dates (UTC).
-- Deleting a link deletes its visits and counter rows in the same transaction
-- (the store's delete_link), while the ALL_LINKS rows (link_id 0, which has
-- no links row) keep counting its past clicks. No table here has a foreign key to
-- links: the counter tables hold link 0, and on visits the check cost PostgreSQL
-- ~10 us per inserted row (the RI trigger), ~40% of the insert; record_clicks
-- checks the batch's links once instead, under a lock that delete_link waits for.
-- The counter tables are updated in place all the time: fillfactor leaves room on
-- each page so those updates stay HOT (no index write).

ALTER TABLE links ADD COLUMN do_not_track boolean NOT NULL DEFAULT false;

CREATE TABLE visits (
    event_id      text COLLATE "C" PRIMARY KEY,
    link_id       bigint NOT NULL,
    at            timestamptz NOT NULL,
    referrer      text,
    referrer_host text,
    user_agent    text,
    browser       text,
    os            text,
    device        text,
    bot           boolean NOT NULL,
    ip            text,
    country       text,
    visitor       text NOT NULL
);

-- Paging a link's visits newest first; also serves delete_link and retention, which
-- delete link by link.
CREATE INDEX visits_link_at_idx ON visits (link_id, at DESC, event_id);

CREATE TABLE clicks_hourly (
    link_id  bigint NOT NULL,
    hour     timestamptz NOT NULL,
    total    bigint NOT NULL DEFAULT 0,
    humans   bigint NOT NULL DEFAULT 0,
    bots     bigint NOT NULL DEFAULT 0,
    visitors bigint NOT NULL DEFAULT 0,  -- visitors first seen that day in this hour
    PRIMARY KEY (link_id, hour)
) WITH (fillfactor = 80);

CREATE TABLE clicks_daily (
    link_id  bigint NOT NULL,
    day      date NOT NULL,
    total    bigint NOT NULL DEFAULT 0,
    humans   bigint NOT NULL DEFAULT 0,
    bots     bigint NOT NULL DEFAULT 0,
    visitors bigint NOT NULL DEFAULT 0,  -- the day's unique visitors
    PRIMARY KEY (link_id, day)
);

CREATE TABLE breakdown_hourly (
    link_id   bigint NOT NULL,
    hour      timestamptz NOT NULL,
    dimension text COLLATE "C" NOT NULL,  -- referrer, browser, os, device, country
    value     text COLLATE "C" NOT NULL,
    count     bigint NOT NULL,
    PRIMARY KEY (link_id, hour, dimension, value)
) WITH (fillfactor = 80);

CREATE TABLE breakdown_daily (
    link_id   bigint NOT NULL,
    day       date NOT NULL,
    dimension text COLLATE "C" NOT NULL,
    value     text COLLATE "C" NOT NULL,
    count     bigint NOT NULL,
    PRIMARY KEY (link_id, day, dimension, value)
);

CREATE TABLE visitors_daily (
    link_id bigint NOT NULL,
    day     date NOT NULL,
    visitor text COLLATE "C" NOT NULL,
    PRIMARY KEY (link_id, day, visitor)
);

CREATE TABLE consumer_offsets (
    source   text NOT NULL,
    name     text NOT NULL,
    position bigint NOT NULL CHECK (position >= 0),
    PRIMARY KEY (source, name)
);

-- One row. Days before the watermark are in the *_daily tables; NULL until the first rollup.
CREATE TABLE rollup_state (
    id        smallint PRIMARY KEY CHECK (id = 1),
    watermark date
);

INSERT INTO rollup_state (id, watermark) VALUES (1, NULL);
