-- PROPOSAL, measured by the harness (pgbench only; the service does not do this yet): the
-- registration transaction of registration.sql with its seat counters split over 16 rows per
-- event and per ticket type (bench_event_seats / bench_type_seats, created by the harness in
-- its own database; each row holds 1/16 of the seats). Concurrent registrations on one hot
-- ticket type then lock different rows, so they no longer wait for each other's commit (WAL
-- flush): many commits share one flush. Seats stay exact: a row never exceeds its quota, and
-- the quotas add up to the capacity. A full row makes the service try the next ones (not
-- needed here: the quotas are far from full).
\set n random(1, 2000000000)
\set shard random(0, 15)
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
WITH e AS (UPDATE bench_event_seats SET registered = registered + 1
            WHERE event_id = :event_id AND shard = :shard AND registered < quota RETURNING 1),
     t AS (UPDATE bench_type_seats SET sold = sold + 1
            WHERE ticket_type_id = :ticket_type_id AND shard = :shard AND sold < quota AND EXISTS (SELECT 1 FROM e) RETURNING 1)
SELECT EXISTS (SELECT 1 FROM e), EXISTS (SELECT 1 FROM t);
COMMIT;
