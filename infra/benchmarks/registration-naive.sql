-- The registration transaction of registration.sql written the naive way: each capacity is ONE
-- counter row (bench_event_counter / bench_type_counter, created by the harness in its own
-- database, as the service had them before migrations/V4__seat_shards.sql), and the two
-- conditional counter updates come FIRST, so the hot rows stay locked for the whole
-- transaction (four inserts and the commit). The issue's target for registrations on one hot
-- ticket type is a ratio to this transaction's rate (>= 1.3x at 16 clients).
\set n random(1, 2000000000)
BEGIN;
WITH e AS (UPDATE bench_event_counter SET registered = registered + 1
            WHERE event_id = :event_id AND registered < max_attendees RETURNING 1),
     t AS (UPDATE bench_type_counter SET sold = sold + 1
            WHERE ticket_type_id = :ticket_type_id AND sold < quantity AND EXISTS (SELECT 1 FROM e) RETURNING 1)
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
