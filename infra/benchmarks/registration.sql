-- The registration transaction as the service runs it (domain::guests::commands::register),
-- as plain SQL for pgbench: the database's own limit for the same transaction.
-- The event row is locked FOR SHARE (its status cannot change before the commit), the
-- guest, its ticket and their two jobs are written, and the seats are taken last, from the
-- seat shards (migrations/V4__seat_shards.sql), starting at the shard the guest id points to.
-- The ::bigint casts let pgbench run it with -M prepared, as the service runs prepared statements.
\set n random(1, 2000000000)
BEGIN;
SELECT organizer_id, status, event_date, requires_approval,
       EXISTS (SELECT 1 FROM ticket_types t WHERE t.event_id = e.id) AS has_types
  FROM events e WHERE id = :event_id FOR SHARE;
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
SELECT seat_shards_add(:event_id::bigint, NULL, 1, :guest_id::bigint),
       seat_shards_add(:event_id::bigint, :ticket_type_id::bigint, 1, :guest_id::bigint);
COMMIT;
