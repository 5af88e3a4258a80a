-- The waiting list (contract part 2, "Waiting list"), and a bulk seat taker for the CSV import.
--
-- An entry waits for a seat of its ticket type (or of the event, without ticket types). When a
-- seat frees up, the first waiting entry in position order gets an *offer*: the seat is held
-- for it, i.e. it stays taken in the seat shards (migrations/V4) exactly like a registration's,
-- so no registration or import can take it; a claim turns the hold into a guest without
-- touching the shards; an expiry or a removal hands the seat to the next entry or gives it back.
--
-- Locks, in the order every path takes them (so no two paths can deadlock):
--   event row (FOR SHARE by guest commands, FOR UPDATE by capacity changes)
--   → the guest's ticket → the guest → the event's `waitlists` row (FOR UPDATE)
--   → waitlist entries → seat shards.
-- Every path that offers seats holds the `waitlists` row, so offers of one event are made one
-- at a time, in position order, and a path holding shard locks never waits for an entry.
-- Registrations never touch it: a waiting list costs them nothing.

ALTER TABLE events
    ADD COLUMN waitlist_enabled BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN waitlist_offer_minutes INTEGER NOT NULL DEFAULT 1440
        CONSTRAINT events_waitlist_offer_minutes CHECK (waitlist_offer_minutes BETWEEN 5 AND 10080);

-- One row per event that ever had a waiting list: the serialization point of its offers and
-- the source of positions.
CREATE TABLE waitlists (
    event_id      BIGINT PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    last_position BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE waitlist_entries (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         BIGINT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    ticket_type_id   BIGINT REFERENCES ticket_types (id) ON DELETE CASCADE,
    first_name       TEXT NOT NULL,
    last_name        TEXT NOT NULL,
    email            TEXT NOT NULL,
    phone            TEXT,
    status           TEXT NOT NULL DEFAULT 'waiting'
        CONSTRAINT waitlist_entries_status CHECK (status IN ('waiting', 'offered', 'claimed', 'expired', 'removed')),
    position         BIGINT NOT NULL,
    offered_at       TIMESTAMPTZ,
    offer_expires_at TIMESTAMPTZ,
    -- SHA-256 of the claim token sent by email (the token itself is never stored)
    claim_token_hash BYTEA,
    guest_id         BIGINT REFERENCES guests (id) ON DELETE SET NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT waitlist_entries_offer CHECK (status <> 'offered' OR (offer_expires_at IS NOT NULL AND claim_token_hash IS NOT NULL))
);

-- One live entry per email and event.
CREATE UNIQUE INDEX waitlist_entries_active_email ON waitlist_entries (event_id, lower(email))
    WHERE status IN ('waiting', 'offered');
CREATE UNIQUE INDEX waitlist_entries_position ON waitlist_entries (event_id, position);
-- The head of each queue, and of the event's.
CREATE INDEX waitlist_entries_waiting_type ON waitlist_entries (event_id, (COALESCE(ticket_type_id, 0)), position)
    WHERE status = 'waiting';
CREATE INDEX waitlist_entries_waiting ON waitlist_entries (event_id, position) WHERE status = 'waiting';
-- Held seats (stats) and the expiry sweep.
CREATE INDEX waitlist_entries_offered ON waitlist_entries (event_id, ticket_type_id) WHERE status = 'offered';
CREATE INDEX waitlist_entries_due ON waitlist_entries (offer_expires_at) WHERE status = 'offered';
CREATE UNIQUE INDEX waitlist_entries_token ON waitlist_entries (claim_token_hash) WHERE claim_token_hash IS NOT NULL;
CREATE INDEX waitlist_entries_guest ON waitlist_entries (guest_id) WHERE guest_id IS NOT NULL;

-- Seats held by offers, per event (p_type NULL: all of them) or per ticket type.
CREATE FUNCTION seats_held(p_event BIGINT, p_type BIGINT) RETURNS INTEGER
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT count(*)::integer FROM waitlist_entries
     WHERE event_id = p_event AND status = 'offered'
       AND (p_type IS NULL OR ticket_type_id = p_type)
$$;

-- Takes up to p_n seats of one capacity in one call (the CSV import), shard by shard from
-- p_start; each shard's update is conditional like seat_shards_add's, so the quotas hold
-- whatever runs at the same time. Returns how many seats were taken (0..p_n). A negative p_n
-- gives back up to -p_n seats.
CREATE FUNCTION seat_shards_take(p_event BIGINT, p_type BIGINT, p_n INTEGER, p_start BIGINT)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    n     INTEGER;
    left_ INTEGER := abs(p_n);
    q     INTEGER;
    t     INTEGER;
    moved INTEGER;
BEGIN
    SELECT count(*) INTO n FROM seat_shards
     WHERE event_id = p_event AND COALESCE(ticket_type_id, 0) = COALESCE(p_type, 0);
    FOR i IN 0 .. n - 1 LOOP
        EXIT WHEN left_ = 0;
        -- the shard as committed, locked (READ COMMITTED: waits for a concurrent change)
        SELECT quota, taken INTO q, t FROM seat_shards
         WHERE event_id = p_event AND COALESCE(ticket_type_id, 0) = COALESCE(p_type, 0)
           AND shard = (p_start + i) % n
           FOR UPDATE;
        moved := CASE WHEN p_n > 0 THEN least(q - t, left_) ELSE least(t, left_) END;
        IF moved > 0 THEN
            UPDATE seat_shards SET taken = taken + sign(p_n)::integer * moved
             WHERE event_id = p_event AND COALESCE(ticket_type_id, 0) = COALESCE(p_type, 0)
               AND shard = (p_start + i) % n;
            left_ := left_ - moved;
        END IF;
    END LOOP;
    RETURN abs(p_n) - left_;
END
$$;
