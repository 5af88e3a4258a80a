-- The registration transaction as the service runs it (shared::guests::commands::register),
-- as plain SQL for pgbench: the database's own limit for the same writes.
-- The ::bigint casts let pgbench run it with -M prepared, as the service runs prepared statements.
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
WITH e AS (UPDATE events SET registered_count = registered_count + 1, ever_registered = true
            WHERE id = :event_id AND registered_count < max_attendees RETURNING id),
     t AS (UPDATE ticket_types SET sold = sold + 1
            WHERE id = :ticket_type_id AND sold < quantity AND EXISTS (SELECT 1 FROM e) RETURNING id)
SELECT EXISTS (SELECT 1 FROM e), EXISTS (SELECT 1 FROM t);
COMMIT;
