-- Exact totals of GET /api/events without a count over the organizer's rows.
--
-- The list's `pagination.total` was a `count(*)` over every matching event: on 100 000 events
-- of one organizer that was 14–19 ms (a Seq Scan or an index scan of all of them), most of an
-- uncached list request (the page itself: 0.3–1.5 ms). See infra/benchmarks/RESULTS.md.
--
-- event_counts keeps, per (organizer, status), how many events there are. Triggers keep it in
-- step in the same transaction as the change, so it is exact at every snapshot: a list without
-- a search term and with no status or a plain status (draft/published/cancelled/completed)
-- reads one to four rows of it instead of counting. Creating, deleting an event or changing its
-- status is rare (never the hot path: registrations do not write the event row, and
-- the UPDATE trigger names its columns, so they do not fire it); the row lock these changes take
-- on their counter row until commit is the price.
CREATE TABLE event_counts (
    organizer_id TEXT   NOT NULL,
    status       TEXT   NOT NULL,
    n            BIGINT NOT NULL,
    PRIMARY KEY (organizer_id, status)
);

-- Inserts and deletes: statement-level with a transition table, so a bulk INSERT … SELECT (the
-- benchmark's seed: 110 000 rows in one statement) is one grouped upsert, not one per row.
-- Rows are upserted in key order, so two statements never lock counter rows in opposite orders.
CREATE FUNCTION event_counts_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_counts AS c (organizer_id, status, n)
    SELECT organizer_id, status, count(*) FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (organizer_id, status) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE FUNCTION event_counts_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_counts AS c (organizer_id, status, n)
    SELECT organizer_id, status, -count(*) FROM old_rows GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (organizer_id, status) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

-- Status (or owner) changes: row-level, because a trigger with a column list cannot have
-- transition tables, and the column list plus the WHEN clause is what keeps every other
-- UPDATE of events (edits) free of any trigger work.
CREATE FUNCTION event_counts_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_counts AS c (organizer_id, status, n)
    SELECT o, s, d
      FROM (VALUES (OLD.organizer_id, OLD.status, -1::bigint),
                   (NEW.organizer_id, NEW.status, 1::bigint)) v (o, s, d)
     ORDER BY o, s
    ON CONFLICT (organizer_id, status) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE FUNCTION event_counts_after_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM event_counts;
    RETURN NULL;
END $$;

-- No write to events may slip between the backfill and the triggers (migrations run in a
-- transaction: the lock is held until commit).
LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE;

CREATE TRIGGER events_count_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION event_counts_after_insert();
CREATE TRIGGER events_count_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION event_counts_after_delete();
CREATE TRIGGER events_count_update AFTER UPDATE OF organizer_id, status ON events
    FOR EACH ROW
    WHEN (OLD.organizer_id IS DISTINCT FROM NEW.organizer_id OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION event_counts_after_update();
CREATE TRIGGER events_count_truncate AFTER TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION event_counts_after_truncate();

INSERT INTO event_counts (organizer_id, status, n)
SELECT organizer_id, status, count(*) FROM events GROUP BY 1, 2;

-- status=upcoming and status=past keep a count over events, but of the smaller side, subtracted
-- from the counters in the same statement (so still one snapshot, still exact): upcoming =
-- published − published that have started; past = all − not yet started. History grows without
-- bound, the future does not. This index makes "published and started" of one organizer an
-- index-only range scan (idx_events_organizer_date already serves "not yet started").
CREATE INDEX idx_events_organizer_status_date ON events (organizer_id, status, event_date);
