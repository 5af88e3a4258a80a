-- A delivery of the hot paths stores what happened, not its JSON (issue 17: what a check-in
-- and a registration pay for their webhooks).
--
-- The one-statement paths (a registration's guest.registered, a first entry's
-- guest.checked_in) wrote each delivery's body in their own transaction: a JSON object built
-- from the guest with three timestamps formatted as text. Measured with pgbench on the entry
-- statement (infra/benchmarks/RESULTS.md), building that body was over half of what the
-- delivery cost the check-in. They now store the guest as it was at the change, a typed row
-- (`guest_snapshot`: the guest's columns, its ticket and the time of its check-in), and the body
-- is rendered from it when it is read: by the worker that sends it, by the personal-data
-- export. The body is the same as before, byte for byte what `webhook_guest` builds, and the
-- same at every attempt (it depends on the stored row only); its `timestamp` is the
-- delivery's `created_at`, the time of the change's transaction.
--
-- Every other delivery (written by `webhook_write`: events, approvals, offers, exports, scan
-- conflicts, offline uploads) keeps its JSON `payload`. A delivery has one or the other.
-- An erasure replaces either with the erased placeholder and clears the snapshot.
--
-- A type of its own, not the `guests` row type: a column of a table's row type would forbid
-- altering that table.
CREATE TYPE guest_snapshot AS (
    id             BIGINT,
    event_id       BIGINT,
    first_name     TEXT,
    last_name      TEXT,
    email          TEXT,
    phone          TEXT,
    status         TEXT,
    ticket_type_id BIGINT,
    ticket_id      BIGINT,
    created_at     TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ,
    checked_in_at  TIMESTAMPTZ
);

-- `guest IS NULL` is true only when the whole snapshot is (a composite with some null fields is
-- neither NULL nor NOT NULL): read "has no snapshot". NOT VALID: the rows already there satisfy
-- it (their payload was NOT NULL, the column is new), and validating would scan the table under
-- the ALTER's exclusive lock, holding up every change that writes a delivery meanwhile.
ALTER TABLE webhook_deliveries
    ALTER COLUMN payload DROP NOT NULL,
    ADD COLUMN guest guest_snapshot,
    ADD CONSTRAINT webhook_deliveries_body CHECK ((payload IS NULL) <> (guest IS NULL)) NOT VALID;

-- The guest `g` with its ticket and its check-in time, as a delivery stores it.
CREATE FUNCTION guest_snapshot(g guests, ticket_id bigint, checked_in_at timestamptz)
RETURNS guest_snapshot LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(g.id, g.event_id, g.first_name, g.last_name, g.email, g.phone, g.status,
               g.ticket_type_id, ticket_id, g.created_at, g.updated_at, checked_in_at)::guest_snapshot
$$;

-- A guest as the API shows it (domain::guests::Guest; status and updatedAt derived as
-- migrations/V22 says), from a snapshot: the one definition of a guest webhook's `data`.
CREATE FUNCTION webhook_guest_json(s guest_snapshot) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', s.id, 'eventId', s.event_id, 'firstName', s.first_name, 'lastName', s.last_name,
        'email', s.email, 'phone', s.phone,
        'status', CASE WHEN s.status = 'confirmed' AND s.checked_in_at IS NOT NULL
                       THEN 'checked_in' ELSE s.status END,
        'ticketTypeId', s.ticket_type_id, 'ticketId', s.ticket_id,
        'createdAt', webhook_time(s.created_at),
        'updatedAt', webhook_time(GREATEST(s.updated_at, s.checked_in_at)))
$$;

-- The same for the callers of `webhook_write` (unchanged output).
CREATE OR REPLACE FUNCTION webhook_guest(g guests, ticket_id bigint, checked_in_at timestamptz)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT webhook_guest_json(guest_snapshot(g, ticket_id, checked_in_at))
$$;

-- The body a delivery sends: its stored JSON, or the one rendered from its snapshot.
CREATE FUNCTION delivery_payload(d webhook_deliveries) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT COALESCE(d.payload,
                    jsonb_build_object('type', d.event_type, 'timestamp', webhook_time(d.created_at),
                                       'data', webhook_guest_json(d.guest)))
$$;

-- The id of what a delivery is about, as text (a guest's for guest.* deliveries: the
-- personal-data export and the erasure find a guest's deliveries by it).
CREATE FUNCTION delivery_data_id(d webhook_deliveries) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT COALESCE((d.guest).id::text, d.payload -> 'data' ->> 'id')
$$;
