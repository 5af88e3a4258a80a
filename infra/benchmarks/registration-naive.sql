-- The registration transaction of registration.sql written the naive way: the two conditional
-- counter updates FIRST, so the hot event and ticket-type rows stay locked for the whole
-- transaction (four inserts and the commit). The issue's target for registrations on one hot
-- ticket type is a ratio to this transaction's rate (>= 1.3x at 16 clients).
\set n random(1, 2000000000)
BEGIN;
WITH e AS (UPDATE events SET registered_count = registered_count + 1, ever_registered = true
            WHERE id = :event_id AND registered_count < max_attendees RETURNING id),
     t AS (UPDATE ticket_types SET sold = sold + 1
            WHERE id = :ticket_type_id AND sold < quantity AND EXISTS (SELECT 1 FROM e) RETURNING id)
SELECT EXISTS (SELECT 1 FROM e), EXISTS (SELECT 1 FROM t);
INSERT INTO guests (event_id, ticket_type_id, first_name, last_name, email, status)
     VALUES (:event_id, :ticket_type_id, 'Bench', 'Guest', 'pg' || :n || '-' || :client_id || '@bench.example', 'confirmed')
  RETURNING id AS guest_id \gset
INSERT INTO job_outbox (job_id, queue, job_type, payload)
     VALUES (gen_random_uuid(), 'email', 'registration_confirmation', jsonb_build_object('guestId', :guest_id::bigint));
INSERT INTO tickets (guest_id, event_id, ticket_type_id, ticket_code, qr_payload)
     VALUES (:guest_id, :event_id, :ticket_type_id, 'TC-2027-' || upper(substr(md5(random()::text), 1, 10)), repeat('x', 140))
  RETURNING id AS ticket_id \gset
INSERT INTO job_outbox (job_id, queue, job_type, payload)
     VALUES (gen_random_uuid(), 'ticket-generation', 'generate_ticket', jsonb_build_object('ticketId', :ticket_id::bigint));
COMMIT;
