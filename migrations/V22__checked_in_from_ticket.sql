-- A check-in writes no guest row (issue 15: PostgreSQL's own work per check-in).
--
-- Until now a ticket's first accepted entry also ran `UPDATE guests SET status = 'checked_in',
-- updated_at = now()`. Both columns are indexed (idx_guests_event_status, the predicate of
-- guests_event_email_active_key, idx_guests_event_updated), so that update was never HOT: a new
-- row version with an entry in each of the guest's seven indexes, the trigram GIN among them.
-- Measured with pgbench on the service's entry statement (infra/benchmarks/RESULTS.md), it was
-- 26 % of the database's work per entry.
--
-- Now the ticket carries the fact: `tickets.checked_in_at`, the server's time of the first
-- accepted entry, set by the ticket update that entry makes anyway (validated_at & co).
-- `validated_at` keeps its meaning (when the entry happened: an offline scan dates it back);
-- `checked_in_at` is when the server learnt it, the time a sync must order it by.
--
-- A guest's status and updatedAt, as the API, exports and webhooks show them, are derived
-- (shared/domain/src/guests/model.rs, GUEST_STATUS and GUEST_UPDATED_AT):
--   status    = 'checked_in' when the stored status is 'confirmed' and the ticket has
--               checked_in_at, else the stored status;
--   updatedAt = the later of the guest row's updated_at and the ticket's checked_in_at.
-- The guest's ETag covers both (GUEST_VERSION). Reverting the first entry clears checked_in_at
-- and touches the guest row (rare; it then shows the revert's time).
--
-- 'checked_in' stays a valid stored value only so that a function still running the previous
-- code during a deployment can check a guest in without a constraint violation; the reads
-- treat a stored 'checked_in' as checked in. This code never writes it.
ALTER TABLE tickets ADD COLUMN checked_in_at TIMESTAMPTZ;
-- Room on each page for the updates a ticket gets (its QR image, its validation), so the new
-- version stays on the page.
ALTER TABLE tickets SET (fillfactor = 80);

UPDATE tickets t
   SET checked_in_at = g.updated_at
  FROM guests g
 WHERE g.id = t.guest_id AND g.status = 'checked_in';
UPDATE guests SET status = 'confirmed' WHERE status = 'checked_in';

-- The checked-in tickets of an event, in check-in order: the counts of checked-in guests (per
-- event and per ticket type, an index-only scan over the checked-in ones instead of a visit of
-- every guest of the event), the guest list's status filter, and the guest sync's second source
-- (`updatedSince`: a guest changed since T when its row did, idx_guests_event_updated, or when
-- its ticket was checked in since T). A checked-in guest stays confirmed (it cannot be
-- cancelled, deleted or moved, and an event's cancellation keeps it), so the index alone counts
-- them. It makes the entry's ticket update a non-HOT one (five ticket indexes instead of the
-- guest's seven with the trigram GIN): the price of exact counts that stay cheap.
CREATE INDEX idx_tickets_checked_in ON tickets (event_id, checked_in_at) INCLUDE (ticket_type_id, guest_id)
    WHERE checked_in_at IS NOT NULL;

-- A guest as the API shows it, for the webhooks the SQL paths write: the ticket's
-- checked_in_at is an argument, not read here, because a statement that sets it and writes the
-- webhook in one go would not see its own change.
DROP FUNCTION webhook_guest(guests, bigint);
CREATE FUNCTION webhook_guest(g guests, ticket_id bigint, checked_in_at timestamptz)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', g.id, 'eventId', g.event_id, 'firstName', g.first_name, 'lastName', g.last_name,
        'email', g.email, 'phone', g.phone,
        'status', CASE WHEN g.status = 'confirmed' AND checked_in_at IS NOT NULL
                       THEN 'checked_in' ELSE g.status END,
        'ticketTypeId', g.ticket_type_id, 'ticketId', ticket_id,
        'createdAt', webhook_time(g.created_at),
        'updatedAt', webhook_time(GREATEST(g.updated_at, checked_in_at)))
$$;
