-- Seat counters split over several rows ("shards"), so that registrations on one hot event or
-- ticket type stop queueing on a single row lock.
--
-- Before: every registration of an event updated events.registered_count and
-- ticket_types.sold, and held those two row locks until its commit; concurrent registrations
-- on one ticket type waited for each other's commit (WAL flush) one at a time. The harness
-- (infra/benchmarks/run.sh) measured that transaction at ~0.3x the same transaction with the
-- counters split over 16 rows (registration-sharded.sql).
--
-- Now each capacity (an event's max_attendees, each ticket type's quantity) is split into
-- up to 16 shards: `quota` is the shard's part of the capacity (the quotas add up to it) and
-- `taken` the seats held there (pending, confirmed and checked-in guests). A registration
-- takes one seat from one shard with a conditional UPDATE (`taken < quota`), starting at the
-- shard its guest id points to and going on to the next ones when that shard is full: seats
-- can never exceed the capacity (each shard is bounded by its quota, enforced by a CHECK too),
-- and "full" is only answered after every shard was found full. Concurrent registrations
-- start on different shards and lock different rows.
--
-- The seats taken of a capacity are the sum of its shards: seats_taken(event_id, type_id).
-- Capacity changes redistribute the shards (triggers below) under the event row lock
-- (FOR UPDATE), which the guest commands hold FOR SHARE: the shards never change under a
-- registration.

CREATE TABLE seat_shards (
    event_id       BIGINT   NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    -- NULL: the event's own capacity (max_attendees); else the ticket type's (quantity)
    ticket_type_id BIGINT   REFERENCES ticket_types (id) ON DELETE CASCADE,
    shard          SMALLINT NOT NULL CHECK (shard BETWEEN 0 AND 15),
    quota          INTEGER  NOT NULL,
    taken          INTEGER  NOT NULL DEFAULT 0,
    CONSTRAINT seat_shards_quota CHECK (taken BETWEEN 0 AND quota)
) WITH (fillfactor = 50); -- hot rows updated in place (HOT updates need free space on the page)

CREATE UNIQUE INDEX seat_shards_key ON seat_shards (event_id, (COALESCE(ticket_type_id, 0)), shard);
CREATE INDEX seat_shards_ticket_type ON seat_shards (ticket_type_id) WHERE ticket_type_id IS NOT NULL;

-- The number of shards of a capacity: one per 8 seats, at most 16 (small events need no
-- spreading, and a shard of a few seats would send registrations to the next one too often).
CREATE FUNCTION seat_shard_count(capacity INTEGER) RETURNS INTEGER
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT least(16, greatest(1, capacity / 8)) $$;

-- Seats held against one capacity (ticket type, or the event itself when p_type is NULL).
CREATE FUNCTION seats_taken(p_event BIGINT, p_type BIGINT) RETURNS INTEGER
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT COALESCE(sum(taken), 0)::integer FROM seat_shards
     WHERE event_id = p_event AND COALESCE(ticket_type_id, 0) = COALESCE(p_type, 0)
$$;

-- Lays a capacity out again: p_taken seats held out of p_capacity, spread evenly over
-- seat_shard_count(p_capacity) shards. Shard i gets capacity/n (+1 for the first
-- capacity % n shards) and taken/n likewise, so no shard holds more than its quota whenever
-- p_taken <= p_capacity (else the CHECK refuses it). The caller holds the event row
-- FOR UPDATE, so no seat is taken or given back meanwhile.
CREATE FUNCTION seat_shards_set(p_event BIGINT, p_type BIGINT, p_capacity INTEGER, p_taken INTEGER)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    n CONSTANT INTEGER := seat_shard_count(p_capacity);
BEGIN
    DELETE FROM seat_shards
     WHERE event_id = p_event AND COALESCE(ticket_type_id, 0) = COALESCE(p_type, 0) AND shard >= n;
    INSERT INTO seat_shards AS s (event_id, ticket_type_id, shard, quota, taken)
    SELECT p_event, p_type, i,
           p_capacity / n + (i < p_capacity % n)::integer,
           p_taken / n + (i < p_taken % n)::integer
      FROM generate_series(0, n - 1) AS i
        ON CONFLICT (event_id, (COALESCE(ticket_type_id, 0)), shard)
        DO UPDATE SET quota = excluded.quota, taken = excluded.taken;
END
$$;

-- Takes (p_delta = 1) or gives back (p_delta = -1) one seat of a capacity, starting at shard
-- p_start mod n and trying the others in turn. Each attempt is a conditional UPDATE: under
-- READ COMMITTED a concurrent change of the same shard makes it wait, and the condition is
-- evaluated again on the committed row, so no shard ever goes past its quota or below 0.
-- false: every shard was full (taking) or empty (giving back).
CREATE FUNCTION seat_shards_add(p_event BIGINT, p_type BIGINT, p_delta INTEGER, p_start BIGINT)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    n INTEGER;
BEGIN
    SELECT count(*) INTO n FROM seat_shards
     WHERE event_id = p_event AND COALESCE(ticket_type_id, 0) = COALESCE(p_type, 0);
    FOR i IN 0 .. n - 1 LOOP
        UPDATE seat_shards SET taken = taken + p_delta
         WHERE event_id = p_event AND COALESCE(ticket_type_id, 0) = COALESCE(p_type, 0)
           AND shard = (p_start + i) % n
           AND taken + p_delta BETWEEN 0 AND quota;
        IF FOUND THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END
$$;

-- The seats held today move into the shards.
SELECT seat_shards_set(id, NULL, max_attendees, registered_count) FROM events;
SELECT seat_shards_set(event_id, id, quantity, sold) FROM ticket_types;

ALTER TABLE events DROP COLUMN registered_count;
ALTER TABLE ticket_types DROP COLUMN sold;
COMMENT ON COLUMN events.ever_registered IS
    'set when a guest row of the event is deleted: with the guest rows (ON DELETE RESTRICT) it keeps an event that ever had a guest from being deleted';

-- A new capacity, or a changed one, is laid out again with the seats it holds.
CREATE FUNCTION seat_shards_follow_capacity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'events' THEN
        IF TG_OP = 'INSERT' THEN
            PERFORM seat_shards_set(NEW.id, NULL, NEW.max_attendees, 0);
        ELSIF NEW.max_attendees <> OLD.max_attendees THEN
            PERFORM seat_shards_set(NEW.id, NULL, NEW.max_attendees, seats_taken(NEW.id, NULL));
        END IF;
    ELSE
        IF TG_OP = 'INSERT' THEN
            PERFORM seat_shards_set(NEW.event_id, NEW.id, NEW.quantity, 0);
        ELSIF NEW.quantity <> OLD.quantity THEN
            PERFORM seat_shards_set(NEW.event_id, NEW.id, NEW.quantity, seats_taken(NEW.event_id, NEW.id));
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_seat_shards AFTER INSERT OR UPDATE OF max_attendees ON events
    FOR EACH ROW EXECUTE FUNCTION seat_shards_follow_capacity();
CREATE TRIGGER ticket_types_seat_shards AFTER INSERT OR UPDATE OF quantity ON ticket_types
    FOR EACH ROW EXECUTE FUNCTION seat_shards_follow_capacity();
