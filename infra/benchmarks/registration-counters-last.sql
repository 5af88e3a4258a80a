-- registration-naive.sql with its one-row counters updated LAST, just before the commit (the
-- service's previous design): the hot rows are locked only for the commit, but every
-- registration of the ticket type still waits for the previous one's commit (WAL flush).
\set n random(1, 2000000000)
BEGIN;
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
WITH e AS (UPDATE bench_event_counter SET registered = registered + 1
            WHERE event_id = :event_id AND registered < max_attendees RETURNING 1),
     t AS (UPDATE bench_type_counter SET sold = sold + 1
            WHERE ticket_type_id = :ticket_type_id AND sold < quantity AND EXISTS (SELECT 1 FROM e) RETURNING 1)
SELECT EXISTS (SELECT 1 FROM e), EXISTS (SELECT 1 FROM t);
COMMIT;
