-- The validation transaction the issue's target refers to (update ticket, update guest, insert
-- scan row: BEGIN, three statements, COMMIT), as plain SQL for pgbench: the database's own limit
-- for those writes. The service does the same writes as one statement since then
-- (validation-one-statement.sql). Each transaction validates a ticket
-- no other transaction touches (distinct tickets: a per-client counter over a pool of
-- consecutive ticket ids).
--   pgbench -n -M prepared -c C -j 2 -T S -f validation.sql \
--           -D first_ticket=<lowest id of the pool> -D clients=C -D i=0 -D event_id=<the pool's event> DB
-- pgbench keeps each client's variables from one transaction to the next, so :i counts that
-- client's transactions; client k takes tickets first_ticket + k, + k + C, + k + 2C, ...
\set tid :first_ticket + :client_id + :clients * :i
\set i :i + 1
BEGIN;
UPDATE tickets t
   SET validated_at = now(), validated_by = 'pgbench-' || :client_id, validation_location = 'Entrance A', updated_at = now()
 WHERE t.id = :tid AND t.status = 'active' AND t.validated_at IS NULL
   AND EXISTS (SELECT 1 FROM events e WHERE e.id = t.event_id AND e.status = 'published')
RETURNING t.guest_id \gset
UPDATE guests SET status = 'checked_in', updated_at = now() WHERE id = :guest_id;
INSERT INTO ticket_scans (ticket_id, event_id, scanner_id, location, result)
     VALUES (:tid, :event_id, 'pgbench-' || :client_id, 'Entrance A', 'accepted');
COMMIT;
